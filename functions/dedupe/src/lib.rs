//! dedupe: joins each path of one S3 event's collected paths to the open batch of its
//! distribution, with the join protocol of `functions/core/src/join.rs` (shared with
//! `cfinv invalidate`).

pub use cfinv_core::join::{EnqueueInput, EnqueueOutput, Settings, enqueue};
