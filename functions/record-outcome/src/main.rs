use cfinv_core::dynamo::DynamoStore;
use cfinv_core::metrics::Metrics;
use cfinv_core::setup::env_required;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cfinv_core::setup::serve(
        || async {
            let aws = aws_config::load_from_env().await;
            let store = DynamoStore::from_env(aws_sdk_dynamodb::Client::new(&aws))?;
            Ok((
                store,
                env_required("BATCH_STATE_MACHINE_ARN")?,
                Metrics::from_env()?,
            ))
        },
        |(store, batch_machine, metrics), event: Value| async move {
            record_outcome::record(store, batch_machine, metrics, &event).await
        },
    )
    .await
}
