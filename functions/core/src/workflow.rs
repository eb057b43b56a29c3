//! Starting a batch's flush execution (the sweep's one Step Functions call).

use std::future::Future;

use crate::Result;
use crate::model::FlushRequest;

/// What asking for a flush found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushStart {
    /// A new execution started, or the running one with the same input was returned.
    Started,
    /// An execution of that name exists and has ended (failed ones wait for a redrive).
    AlreadyExists,
}

pub trait Workflow: Send + Sync {
    /// Starts the batch machine, named by the batch id, with the request as input.
    fn start_flush(
        &self,
        request: &FlushRequest,
    ) -> impl Future<Output = Result<FlushStart>> + Send;
}

#[cfg(feature = "sfn")]
pub use sdk::StepFunctions;

#[cfg(feature = "sfn")]
mod sdk {
    use aws_sdk_sfn::Client;
    use aws_sdk_sfn::error::ProvideErrorMetadata;

    use super::{FlushStart, Workflow};
    use crate::model::FlushRequest;
    use crate::{Error, Result};

    #[derive(Debug, Clone)]
    pub struct StepFunctions {
        client: Client,
        state_machine_arn: String,
    }

    impl StepFunctions {
        pub fn new(client: Client, state_machine_arn: impl Into<String>) -> Self {
            Self {
                client,
                state_machine_arn: state_machine_arn.into(),
            }
        }
    }

    impl Workflow for StepFunctions {
        async fn start_flush(&self, request: &FlushRequest) -> Result<FlushStart> {
            let input =
                serde_json::to_string(request).map_err(|e| Error::InvalidInput(e.to_string()))?;
            let res = self
                .client
                .start_execution()
                .state_machine_arn(&self.state_machine_arn)
                .name(&request.batch.batch_id)
                .input(input)
                .send()
                .await;
            match res {
                Ok(_) => Ok(FlushStart::Started),
                Err(e) if e.code() == Some("ExecutionAlreadyExists") => {
                    Ok(FlushStart::AlreadyExists)
                }
                Err(e) => Err(Error::WorkflowError(
                    aws_sdk_sfn::error::DisplayErrorContext(&e).to_string(),
                )),
            }
        }
    }
}
