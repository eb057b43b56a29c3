use cfinv_core::cdn::CloudFront;
use cfinv_core::dynamo::DynamoStore;
use cfinv_core::metrics::Metrics;
use cfinv_core::model::SystemClock;
use poll_status::{PollInput, Settings, poll};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cfinv_core::setup::serve(
        || async {
            let aws = aws_config::load_from_env().await;
            let store = DynamoStore::from_env(aws_sdk_dynamodb::Client::new(&aws))?;
            let cdn = CloudFront::new(aws_sdk_cloudfront::Client::new(&aws));
            Ok((store, cdn, Settings::from_env()?, Metrics::from_env()?))
        },
        |(store, cdn, settings, metrics), input: PollInput| {
            poll(store, cdn, &SystemClock, settings, metrics, input)
        },
    )
    .await
}
