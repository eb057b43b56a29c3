//! The two CloudFront calls the product makes, behind a trait so the planner and the state
//! transitions are testable without AWS.

use std::future::Future;

use crate::Result;

/// Polls come this often during the first [`FAST_POLL_WINDOW_SECONDS`] of a poll window, then
/// every `PollSeconds`. CloudFront announced in April 2026 that invalidations complete in under
/// 25 seconds at p95 (no developer-guide page states a figure): polling every 60 s from the start
/// would leave most batches `InProgress` in the audit for most of a minute after they completed.
/// Twelve extra rounds at most per window, each a free GetInvalidation call per pending chunk.
pub const FAST_POLL_SECONDS: u64 = 5;
pub const FAST_POLL_WINDOW_SECONDS: u64 = 60;

/// The wait between fast polls: [`FAST_POLL_SECONDS`], or `poll_seconds` when that is shorter
/// (a stack that asks for quicker polls keeps them).
pub fn fast_poll_seconds(poll_seconds: u64) -> u64 {
    FAST_POLL_SECONDS.min(poll_seconds)
}

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
pub(crate) use sdk::cloudfront_error;

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

/// Adapter tests: real CloudFront XML error bodies through the SDK's own parser, so the
/// mapping is checked against what the wire says, not against hand-built SDK errors.
#[cfg(all(test, feature = "cloudfront"))]
mod tests {
    use aws_sdk_cloudfront::Client;
    use aws_sdk_cloudfront::operation::get_invalidation::GetInvalidationOutput;
    use aws_sdk_cloudfront::types::Invalidation;
    use aws_smithy_mocks::{mock, mock_client};
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn error_xml(status: u16, code: &str) -> Response<SdkBody> {
        let body = format!(
            r#"<?xml version="1.0"?><ErrorResponse xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{code} happened</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"#
        );
        Response::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
    }

    async fn create_fails_with(status: u16, code: &'static str) -> crate::Error {
        let rule =
            mock!(Client::create_invalidation).then_http_response(move || error_xml(status, code));
        let client = mock_client!(aws_sdk_cloudfront, [&rule]);
        CloudFront::new(client)
            .create_invalidation("E1", "b#0", &["/a".to_owned()])
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn errors_are_named_by_their_code() {
        for (status, code, name) in [
            (
                400,
                "TooManyInvalidationsInProgress",
                "TooManyInvalidationsInProgress",
            ),
            (400, "Throttling", "Throttling"),
            (503, "ServiceUnavailable", "ServiceUnavailable"),
            (404, "NoSuchDistribution", "NoSuchDistribution"),
            (403, "AccessDenied", "AccessDenied"),
            (
                409,
                "InvalidationBatchAlreadyExists",
                "InvalidationBatchAlreadyExists",
            ),
            (400, "InvalidArgument", "CloudFrontRejected"),
            (500, "SomethingNew", "ServiceUnavailable"),
        ] {
            let err = create_fails_with(status, code).await;
            assert_eq!(err.name(), name, "{code} -> {err}");
        }
    }

    #[tokio::test]
    async fn create_sends_the_caller_reference_and_paths() {
        let rule = mock!(Client::create_invalidation)
            .match_requests(|r| {
                let batch = r.invalidation_batch().unwrap();
                r.distribution_id() == Some("E1")
                    && batch.caller_reference() == "b#3"
                    && batch.paths().unwrap().quantity() == 2
                    && batch.paths().unwrap().items() == ["/a", "/b%20c"]
            })
            .then_output(|| {
                aws_sdk_cloudfront::operation::create_invalidation::CreateInvalidationOutput::builder()
                    .invalidation(invalidation("I1", "InProgress"))
                    .build()
            });
        let client = mock_client!(aws_sdk_cloudfront, [&rule]);
        let id = CloudFront::new(client)
            .create_invalidation("E1", "b#3", &["/a".to_owned(), "/b%20c".to_owned()])
            .await
            .unwrap();
        assert_eq!(id, "I1");
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn status_maps_completed_and_everything_else_is_in_progress() {
        for (status, expected) in [
            ("Completed", InvalidationStatus::Completed),
            ("InProgress", InvalidationStatus::InProgress),
        ] {
            let rule = mock!(Client::get_invalidation).then_output(move || {
                GetInvalidationOutput::builder()
                    .invalidation(invalidation("I1", status))
                    .build()
            });
            let client = mock_client!(aws_sdk_cloudfront, [&rule]);
            assert_eq!(
                CloudFront::new(client)
                    .invalidation_status("E1", "I1")
                    .await
                    .unwrap(),
                expected
            );
        }
    }

    fn invalidation(id: &str, status: &str) -> Invalidation {
        Invalidation::builder()
            .id(id)
            .status(status)
            .create_time(aws_smithy_types::DateTime::from_secs(0))
            .invalidation_batch(
                aws_sdk_cloudfront::types::InvalidationBatch::builder()
                    .caller_reference("b#0")
                    .paths(
                        aws_sdk_cloudfront::types::Paths::builder()
                            .quantity(0)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }
}
