use cfinv_core::dynamo::DynamoStore;
use cfinv_core::metrics::Metrics;
use cfinv_core::model::{OpenWindow, SystemClock};
use cfinv_core::setup::env_required;
use cfinv_core::workflow::StepFunctions;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cfinv_core::setup::serve(
        || async {
            let aws = aws_config::load_from_env().await;
            let store = DynamoStore::from_env(aws_sdk_dynamodb::Client::new(&aws))?;
            let workflow = StepFunctions::new(
                aws_sdk_sfn::Client::new(&aws),
                env_required("BATCH_STATE_MACHINE_ARN")?,
            );
            Ok((
                store,
                workflow,
                OpenWindow::from_env()?,
                Metrics::from_env()?,
            ))
        },
        |(store, workflow, window, metrics), _: Value| {
            sweep::run(store, workflow, &SystemClock, *window, metrics)
        },
    )
    .await
}
