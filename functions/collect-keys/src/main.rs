use cfinv_core::routes::MappingConfig;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cfinv_core::setup::init_tracing();
    let config = MappingConfig::from_env();
    if let Err(e) = &config {
        tracing::error!(error = %e, "configuration is invalid; every event will fail until it is fixed");
    }
    let config = &config;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        collect_keys::handle(&event.payload, config)
    }))
    .await
}
