// The S3 client's futures nest deeper than the default limit lets rustc lay out.
#![recursion_limit = "256"]

use cfinv_core::dynamo::DynamoStore;
use cfinv_core::metrics::Metrics;
use cfinv_core::model::SystemClock;
use cfinv_core::object_tags::S3Metadata;
use dedupe::{Config, DedupeInput, handle};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cfinv_core::setup::serve(
        || async {
            let aws = aws_config::load_from_env().await;
            let store = DynamoStore::from_env(aws_sdk_dynamodb::Client::new(&aws))?;
            // Called only with CACHE_TAG_METADATA set; building the client costs no request.
            let objects = S3Metadata::new(aws_sdk_s3::Client::new(&aws));
            Ok((store, objects, Config::from_env()?, Metrics::from_env()?))
        },
        |(store, objects, config, metrics), input: DedupeInput| {
            handle(store, objects, &SystemClock, config, metrics, input)
        },
    )
    .await
}
