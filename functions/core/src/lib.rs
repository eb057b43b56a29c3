//! The shared core of cf-invalidator: pure logic (event parsing, key -> path mapping, planning),
//! the batch data model, and narrow traits over the AWS calls with SDK adapters behind cargo
//! features, so each function links only the SDK clients it calls.

pub mod cdn;
pub mod collect;
#[cfg(feature = "dynamodb")]
pub mod dynamo;
pub mod error;
pub mod event;
pub mod lifecycle;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
pub mod model;
pub mod object_key;
pub mod path;
pub mod plan;
pub mod routes;
pub mod schema;
pub mod setup;
pub mod store;
pub mod workflow;

pub use error::{Error, Result};
