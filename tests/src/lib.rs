//! Harness for the end-to-end tests: the stack that `make e2e` started (described by
//! `.local/stack.json`), SDK clients pointed at it, its control API, and waits with deadlines.
//!
//! Tests share one stack and run in parallel; each test owns one distribution and its key
//! prefix (`d<i>/`, routed by the stack), so faults and counts never cross tests.
//!
//! Each module's `//!` says what it holds. They are private but for `matrix` (which the
//! fault-table binary uses too): tests import the items re-exported here.

mod batches;
mod control;
mod coverage;
mod edge;
mod http;
pub mod matrix;
mod stack;
mod staging;
mod viewers;
mod wait;

pub use batches::describe;
pub use coverage::{Call, Coverage, Invalidation, covers};
pub use edge::is_hit;
pub use http::Response;
pub use stack::{Change, Lane, Settings, Stack, StackInfo, change_body, now_epoch, stack_file};
pub use viewers::{Freshness, READ_EVERY, Viewers, percentile};
pub use wait::poll_progress;
