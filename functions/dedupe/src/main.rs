use cfinv_core::dynamo::DynamoStore;
use cfinv_core::metrics::Metrics;
use cfinv_core::model::SystemClock;
use dedupe::{EnqueueInput, Settings, enqueue};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cfinv_core::setup::serve(
        || async {
            let aws = aws_config::load_from_env().await;
            let store = DynamoStore::from_env(aws_sdk_dynamodb::Client::new(&aws))?;
            Ok((store, Settings::from_env()?, Metrics::from_env()?))
        },
        |(store, settings, metrics), input: EnqueueInput| {
            enqueue(store, &SystemClock, *settings, metrics, input)
        },
    )
    .await
}
