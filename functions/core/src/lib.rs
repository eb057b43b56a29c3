//! The shared core of cf-invalidator: pure logic (event parsing, key -> path mapping, planning),
//! the batch data model, and narrow traits over the AWS calls with SDK adapters behind cargo
//! features, so each function links only the SDK clients it calls.

/// `as_str`, `FromStr` and `Display` for an enum whose variants each have one string form
/// (what the table and the task inputs hold); parsing anything else is `$error`.
macro_rules! string_forms {
    ($type:ident, $error:path, $what:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $type {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($type::$variant => $text),+
                }
            }
        }

        impl std::str::FromStr for $type {
            type Err = crate::Error;

            fn from_str(s: &str) -> crate::Result<Self> {
                match s {
                    $($text => Ok($type::$variant),)+
                    _ => Err($error(format!(concat!("unknown ", $what, " {:?}"), s))),
                }
            }
        }

        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod cdn;
pub mod collect;
pub mod distribution;
#[cfg(feature = "dynamodb")]
pub mod dynamo;
pub mod error;
pub mod event;
pub mod join;
pub mod lifecycle;
pub mod manual;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
pub mod metrics;
pub mod model;
pub mod object_key;
pub mod object_tags;
pub mod path;
pub mod plan;
pub mod routes;
pub mod schema;
pub mod setup;
pub mod store;
pub mod tags;
pub mod workflow;

pub use error::{Error, Result};
