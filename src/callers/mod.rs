//! The ways in. Each turns what its caller sent into a `Request` and renders
//! the `Outcome` in its caller's format; none talks to the engine itself.

pub mod cli;
pub mod generate;
pub mod history;
pub mod options;
pub mod review;
pub mod rundeck;
pub mod schedules;
pub mod state;
