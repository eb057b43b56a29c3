use cfinv_core::routes::MappingConfig;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cfinv_core::setup::serve(
        || async { MappingConfig::from_env() },
        |config, event: Value| std::future::ready(collect_keys::handle(&event, config)),
    )
    .await
}
