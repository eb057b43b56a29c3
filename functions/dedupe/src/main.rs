use std::time::Duration;

use cfinv_core::dynamo::DynamoStore;
use cfinv_core::model::SystemClock;
use cfinv_core::setup::{env_number, init_tracing};
use cfinv_core::{Error, Result};
use dedupe::{EnqueueInput, Settings, enqueue};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let aws = aws_config::load_from_env().await;
    let setup = (|| -> Result<(DynamoStore, Settings)> {
        let store = DynamoStore::from_env(aws_sdk_dynamodb::Client::new(&aws))?;
        let settings = Settings {
            debounce: Duration::from_secs(env_number("DEBOUNCE_SECONDS", 30)?),
            grace: Duration::from_secs(env_number("GRACE_SECONDS", 60)?),
        };
        Ok((store, settings))
    })();
    let setup = &setup;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let (store, settings) = setup.as_ref().map_err(Error::clone)?;
        let input: EnqueueInput = serde_json::from_value(event.payload)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        enqueue(store, &SystemClock, *settings, input).await
    }))
    .await
}
