//! dockmaster: deploy Docker Compose descriptors safely, and know at once
//! whether they came up healthy.
//!
//! One pipeline, thin ways in: see `ARCHITECTURE.md` in the design folder and
//! `docs/` for users. Every way in builds a [`request::Request`], the
//! [`pipeline`] runs the stages in order, and the way in renders the
//! [`request::Outcome`].

pub mod descriptor;
pub mod engine;
pub mod error;
pub mod plan;
pub mod stack;
