//! One error type for every function. Each variant's name is the `errorType` that Lambda reports,
//! so the state machines' `Retry`/`Catch` blocks match on these names (see `statemachine/`).

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The task input is not an S3 event we understand (missing or mistyped fields).
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// An object key that S3 cannot have produced (empty, over 1,024 bytes, bad encoding).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The function's configuration (environment) is wrong; fix the stack parameters.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The state machine handed a task input this function cannot use.
    #[error("invalid task input: {0}")]
    InvalidInput(String),
    /// CloudFront answered `Throttling` (rate exceeded): retry soon.
    #[error("CloudFront throttled the request: {0}")]
    Throttling(String),
    /// CloudFront or the network failed transiently: retry soon.
    #[error("service unavailable: {0}")]
    ServiceUnavailable(String),
    /// The distribution is at its in-progress limit (3,000 paths / 15 wildcards): retry later.
    #[error("too many invalidations in progress: {0}")]
    TooManyInvalidationsInProgress(String),
    /// Permanent until an operator fixes the configuration; redrive afterwards.
    #[error("no such distribution: {0}")]
    NoSuchDistribution(String),
    /// Permanent until an operator fixes IAM; redrive afterwards.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// The caller reference was used with different paths: the stored plan was changed by hand.
    #[error("invalidation batch already exists with other paths: {0}")]
    InvalidationBatchAlreadyExists(String),
    /// Any other CloudFront rejection (bad path, too many paths): not retried.
    #[error("CloudFront rejected the request: {0}")]
    CloudFrontRejected(String),
    /// DynamoDB throttled or failed transiently: retry soon.
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    /// DynamoDB rejected the call for good (missing table, access denied): not retried.
    #[error("store error: {0}")]
    StoreError(String),
    /// Starting a Step Functions execution failed.
    #[error("workflow error: {0}")]
    WorkflowError(String),
    /// The batch's invalidations did not complete before the poll deadline.
    #[error("invalidation not completed in time: {0}")]
    InvalidationNotCompleted(String),
    /// A manual request (an EventBridge event) was refused by a bound; the refusal is in the
    /// audit. Not retried: a redrive asks again.
    #[error("manual request refused: {0}")]
    ManualRequestRefused(String),
}

impl Error {
    /// The name Step Functions sees as the error (`errorType`).
    pub fn name(&self) -> &'static str {
        match self {
            Error::InvalidEvent(_) => "InvalidEvent",
            Error::InvalidKey(_) => "InvalidKey",
            Error::InvalidConfig(_) => "InvalidConfig",
            Error::InvalidInput(_) => "InvalidInput",
            Error::Throttling(_) => "Throttling",
            Error::ServiceUnavailable(_) => "ServiceUnavailable",
            Error::TooManyInvalidationsInProgress(_) => "TooManyInvalidationsInProgress",
            Error::NoSuchDistribution(_) => "NoSuchDistribution",
            Error::AccessDenied(_) => "AccessDenied",
            Error::InvalidationBatchAlreadyExists(_) => "InvalidationBatchAlreadyExists",
            Error::CloudFrontRejected(_) => "CloudFrontRejected",
            Error::StoreUnavailable(_) => "StoreUnavailable",
            Error::StoreError(_) => "StoreError",
            Error::WorkflowError(_) => "WorkflowError",
            Error::InvalidationNotCompleted(_) => "InvalidationNotCompleted",
            Error::ManualRequestRefused(_) => "ManualRequestRefused",
        }
    }
}

#[cfg(feature = "lambda")]
impl From<Error> for lambda_runtime::Diagnostic {
    fn from(e: Error) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.name().to_owned(),
            error_message: e.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(all(test, feature = "lambda"))]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_carries_the_variant_name_not_the_rust_type() {
        let d: lambda_runtime::Diagnostic =
            Error::TooManyInvalidationsInProgress("E123".into()).into();
        assert_eq!(d.error_type, "TooManyInvalidationsInProgress");
        assert!(d.error_message.contains("E123"));
    }
}
