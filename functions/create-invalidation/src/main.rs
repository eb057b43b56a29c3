use cfinv_core::cdn::CloudFront;
use cfinv_core::dynamo::DynamoStore;
use cfinv_core::model::SystemClock;
use cfinv_core::plan::PlanOptions;
use cfinv_core::setup::{env_number, init_tracing};
use cfinv_core::{Error, Result};
use create_invalidation::{Settings, SubmitInput, submit};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let aws = aws_config::load_from_env().await;
    let cdn = CloudFront::new(aws_sdk_cloudfront::Client::new(&aws));
    let setup = (|| -> Result<(DynamoStore, Settings)> {
        let store = DynamoStore::from_env(aws_sdk_dynamodb::Client::new(&aws))?;
        let settings = Settings {
            plan: PlanOptions {
                collapse_threshold: env_number(
                    "COLLAPSE_THRESHOLD",
                    PlanOptions::default().collapse_threshold,
                )?,
                ..PlanOptions::default()
            },
            poll_seconds: env_number("POLL_SECONDS", 60)?,
        };
        Ok((store, settings))
    })();
    let (setup, cdn) = (&setup, &cdn);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let (store, settings) = setup.as_ref().map_err(Error::clone)?;
        let input: SubmitInput = serde_json::from_value(event.payload)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        submit(store, cdn, &SystemClock, settings, input).await
    }))
    .await
}
