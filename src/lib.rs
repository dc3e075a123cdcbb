//! dockmaster: deploy Docker Compose descriptors safely, and know at once
//! whether they came up healthy.
//!
//! One pipeline, thin ways in: every way in builds a [`request::Request`],
//! the [`pipeline`] runs the stages in order, and the way in renders the
//! [`request::Outcome`]. See `docs/` for users.

pub mod access;
pub mod apply;
pub mod audit;
pub mod callers;
pub mod chat;
pub mod cli;
pub mod config;
pub mod descriptor;
pub mod engine;
pub mod error;
pub mod health;
pub mod identity;
pub mod lock;
pub mod metrics;
pub mod notify;
pub mod ownership;
pub mod pipeline;
pub mod plan;
pub mod policy;
pub mod redact;
pub mod registry;
pub mod replay;
pub mod report;
pub mod request;
pub mod schedule;
pub mod secrets;
pub mod serve;
pub mod shutdown;
pub mod stack;
pub mod state;
pub mod swarm;
pub mod target;
pub mod tls;
