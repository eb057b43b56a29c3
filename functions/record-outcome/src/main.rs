use cfinv_core::dynamo::DynamoStore;
use cfinv_core::setup::{env_required, init_tracing};
use cfinv_core::{Error, Result};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let aws = aws_config::load_from_env().await;
    let setup = (|| -> Result<(DynamoStore, String)> {
        let store = DynamoStore::from_env(aws_sdk_dynamodb::Client::new(&aws))?;
        Ok((store, env_required("BATCH_STATE_MACHINE_ARN")?))
    })();
    let setup = &setup;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let (store, batch_machine) = setup.as_ref().map_err(Error::clone)?;
        record_outcome::record(store, batch_machine, &event.payload).await
    }))
    .await
}
