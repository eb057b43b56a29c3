use cfinv_core::cdn::CloudFront;
use cfinv_core::distribution::CloudFrontConfigs;
use cfinv_core::dynamo::DynamoStore;
use cfinv_core::metrics::Metrics;
use cfinv_core::model::SystemClock;
use create_invalidation::{Settings, SubmitInput, submit};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cfinv_core::setup::serve(
        || async {
            let aws = aws_config::load_from_env().await;
            let store = DynamoStore::from_env(aws_sdk_dynamodb::Client::new(&aws))?;
            let cloudfront = aws_sdk_cloudfront::Client::new(&aws);
            let configs = CloudFrontConfigs::new(cloudfront.clone());
            let cdn = CloudFront::new(cloudfront);
            Ok((
                store,
                cdn,
                configs,
                Settings::from_env()?,
                Metrics::from_env()?,
            ))
        },
        |(store, cdn, configs, settings, metrics), input: SubmitInput| {
            submit(store, cdn, configs, &SystemClock, settings, metrics, input)
        },
    )
    .await
}
