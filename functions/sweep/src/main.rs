use std::time::Duration;

use cfinv_core::dynamo::DynamoStore;
use cfinv_core::model::SystemClock;
use cfinv_core::setup::{env_number, env_required, init_tracing};
use cfinv_core::workflow::StepFunctions;
use cfinv_core::{Error, Result};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let aws = aws_config::load_from_env().await;
    let stack = std::env::var("STACK_NAME").unwrap_or_default();
    let setup = (|| -> Result<(DynamoStore, StepFunctions, Duration, Duration)> {
        let store = DynamoStore::from_env(aws_sdk_dynamodb::Client::new(&aws))?;
        let workflow = StepFunctions::new(
            aws_sdk_sfn::Client::new(&aws),
            env_required("BATCH_STATE_MACHINE_ARN")?,
        );
        let debounce = Duration::from_secs(env_number("DEBOUNCE_SECONDS", 30)?);
        let grace = Duration::from_secs(env_number("GRACE_SECONDS", 60)?);
        Ok((store, workflow, debounce, grace))
    })();
    let (setup, stack) = (&setup, &stack);
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
        let (store, workflow, debounce, grace) = setup.as_ref().map_err(Error::clone)?;
        let report = sweep::sweep(store, workflow, &SystemClock, *debounce, *grace).await?;
        let now_millis =
            (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        println!("{}", sweep::metric_line(stack, &report, now_millis));
        Ok::<_, Error>(report)
    }))
    .await
}
