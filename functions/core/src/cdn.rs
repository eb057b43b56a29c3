//! The two CloudFront calls the product makes, behind a trait so the planner and the state
//! transitions are testable without AWS.

use std::future::Future;

use crate::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidationStatus {
    InProgress,
    Completed,
}

pub trait Cdn: Send + Sync {
    /// Creates an invalidation, or returns the existing one when `caller_reference` was already
    /// used with the same paths (CloudFront's own idempotency). Returns the invalidation id.
    fn create_invalidation(
        &self,
        distribution_id: &str,
        caller_reference: &str,
        paths: &[String],
    ) -> impl Future<Output = Result<String>> + Send;

    fn invalidation_status(
        &self,
        distribution_id: &str,
        invalidation_id: &str,
    ) -> impl Future<Output = Result<InvalidationStatus>> + Send;
}

#[cfg(feature = "cloudfront")]
pub use sdk::CloudFront;

#[cfg(feature = "cloudfront")]
mod sdk {
    use aws_sdk_cloudfront::Client;
    use aws_sdk_cloudfront::error::{ProvideErrorMetadata, SdkError};
    use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};

    use super::{Cdn, InvalidationStatus};
    use crate::{Error, Result};

    #[derive(Debug, Clone)]
    pub struct CloudFront {
        client: Client,
    }

    impl CloudFront {
        pub fn new(client: Client) -> Self {
            Self { client }
        }
    }

    impl Cdn for CloudFront {
        async fn create_invalidation(
            &self,
            distribution_id: &str,
            caller_reference: &str,
            paths: &[String],
        ) -> Result<String> {
            let paths = Paths::builder()
                .quantity(paths.len() as i32)
                .set_items(Some(paths.to_vec()))
                .build()
                .map_err(|e| Error::InvalidInput(e.to_string()))?;
            let batch = InvalidationBatch::builder()
                .caller_reference(caller_reference)
                .paths(paths)
                .build()
                .map_err(|e| Error::InvalidInput(e.to_string()))?;
            let out = self
                .client
                .create_invalidation()
                .distribution_id(distribution_id)
                .invalidation_batch(batch)
                .send()
                .await
                .map_err(cloudfront_error)?;
            out.invalidation.map(|i| i.id).ok_or_else(|| {
                Error::ServiceUnavailable("CreateInvalidation returned no invalidation".into())
            })
        }

        async fn invalidation_status(
            &self,
            distribution_id: &str,
            invalidation_id: &str,
        ) -> Result<InvalidationStatus> {
            let out = self
                .client
                .get_invalidation()
                .distribution_id(distribution_id)
                .id(invalidation_id)
                .send()
                .await
                .map_err(cloudfront_error)?;
            match out.invalidation.map(|i| i.status) {
                Some(s) if s == "Completed" => Ok(InvalidationStatus::Completed),
                Some(_) => Ok(InvalidationStatus::InProgress),
                None => Err(Error::ServiceUnavailable(
                    "GetInvalidation returned no invalidation".into(),
                )),
            }
        }
    }

    /// Maps CloudFront's error *codes* to named errors. `Throttling`, `ServiceUnavailable` and
    /// `InvalidationBatchAlreadyExists` are not variants of the SDK's operation errors, so the
    /// code is the only reliable signal.
    pub(crate) fn cloudfront_error<E>(
        e: SdkError<E, aws_sdk_cloudfront::config::http::HttpResponse>,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = e.code().map(str::to_owned);
        let message = e
            .message()
            .map(str::to_owned)
            .unwrap_or_else(|| aws_sdk_cloudfront::error::DisplayErrorContext(&e).to_string());
        let status = match &e {
            SdkError::ServiceError(se) => Some(se.raw().status().as_u16()),
            // Timeouts, dispatch and parse failures: nothing was decided, try again.
            _ => return Error::ServiceUnavailable(message),
        };
        match code.as_deref() {
            Some("TooManyInvalidationsInProgress") => {
                Error::TooManyInvalidationsInProgress(message)
            }
            Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded") => {
                Error::Throttling(message)
            }
            Some("ServiceUnavailable" | "InternalError" | "InternalFailure") => {
                Error::ServiceUnavailable(message)
            }
            Some("NoSuchDistribution") => Error::NoSuchDistribution(message),
            Some("AccessDenied" | "AccessDeniedException") => Error::AccessDenied(message),
            Some("InvalidationBatchAlreadyExists") => {
                Error::InvalidationBatchAlreadyExists(message)
            }
            _ if status.is_some_and(|s| s >= 500) => Error::ServiceUnavailable(message),
            Some(other) => Error::CloudFrontRejected(format!("{other}: {message}")),
            None => Error::CloudFrontRejected(message),
        }
    }
}
