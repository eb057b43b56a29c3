//! The store scenarios of `store/scenarios.rs` against a DynamoDB-compatible endpoint
//! (DynamoDB Local, a moto server, or DynamoDB itself). Ignored unless asked for:
//!
//! ```text
//! CFINV_DDB_ENDPOINT=http://127.0.0.1:8000 cargo test -p cfinv-core --features dynamodb \
//!   dynamodb_store -- --ignored
//! ```
//!
//! The test creates its own table, with the keys and indexes `template.yaml` declares (from
//! `schema/`), and deletes it afterwards. Credentials and region are dummies unless
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_REGION` are set.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use time::OffsetDateTime;

use super::{DynamoStore, store_error};
use crate::Result;
use crate::model::{Batch, BatchStatus};
use crate::schema::item::{self, Item, key};
use crate::schema::{
    BY_DISTRIBUTION, BY_DISTRIBUTION_PK, BY_DISTRIBUTION_SK, BY_PATH, BY_PATH_PK, BY_PATH_SK,
    BY_STATUS, BY_STATUS_PK, BY_STATUS_SK, attr, keys,
};
use crate::store::scenarios::{Audited, AuditedEvent, Inspect, run};

impl DynamoStore {
    async fn meta(&self, pk: String) -> Result<Option<Item>> {
        let out = self
            .read_consistent(key(pk, keys::META))
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.item)
    }
}

/// The `byStatus` entry of an item.
fn waiting(item: &Item) -> Option<(BatchStatus, OffsetDateTime)> {
    let status = item::text(item, BY_STATUS_PK)?.parse().ok()?;
    Some((
        status,
        keys::index_sk_time(item::text(item, BY_STATUS_SK)?)?,
    ))
}

impl Inspect for DynamoStore {
    async fn audited(&self, batch_id: &str) -> Result<Option<Audited>> {
        let Some(item) = self.meta(keys::batch_pk(batch_id)).await? else {
            return Ok(None);
        };
        let batch = Batch::try_from(&item)?;
        Ok(Some(Audited {
            status: batch.status,
            opened_at: batch.opened_at,
            last_error: item::text(&item, attr::LAST_ERROR).map(Into::into),
            attempts: item::number(&item, attr::ATTEMPTS).unwrap_or(0),
            waiting: waiting(&item),
            listed: item.contains_key(BY_DISTRIBUTION_PK),
            failed_at: item::at(&item, attr::FAILED_AT),
        }))
    }

    async fn audited_event(&self, execution_name: &str) -> Result<Option<AuditedEvent>> {
        let Some(item) = self.meta(keys::exec_pk(execution_name)).await? else {
            return Ok(None);
        };
        Ok(Some(AuditedEvent {
            last_error: item::text(&item, attr::LAST_ERROR)
                .unwrap_or_default()
                .into(),
            failed: waiting(&item).is_some(),
        }))
    }
}

fn key_schema(pk: &str, sk: &str) -> [KeySchemaElement; 2] {
    [(pk, KeyType::Hash), (sk, KeyType::Range)].map(|(name, key_type)| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .expect("name and type are set")
    })
}

/// A table as `template.yaml` declares it.
async fn create_table(client: &Client, table: &str) {
    let keys = [
        attr::PK,
        attr::SK,
        BY_DISTRIBUTION_PK,
        BY_DISTRIBUTION_SK,
        BY_PATH_PK,
        BY_PATH_SK,
        BY_STATUS_PK,
        BY_STATUS_SK,
    ];
    let indexes = [
        (BY_DISTRIBUTION, BY_DISTRIBUTION_PK, BY_DISTRIBUTION_SK),
        (BY_PATH, BY_PATH_PK, BY_PATH_SK),
        (BY_STATUS, BY_STATUS_PK, BY_STATUS_SK),
    ];
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(
            keys.iter()
                .map(|name| {
                    AttributeDefinition::builder()
                        .attribute_name(*name)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .expect("name and type are set")
                })
                .collect(),
        ))
        .set_key_schema(Some(key_schema(attr::PK, attr::SK).into()))
        .set_global_secondary_indexes(Some(
            indexes
                .iter()
                .map(|(name, pk, sk)| {
                    GlobalSecondaryIndex::builder()
                        .index_name(*name)
                        .set_key_schema(Some(key_schema(pk, sk).into()))
                        .projection(
                            Projection::builder()
                                .projection_type(ProjectionType::All)
                                .build(),
                        )
                        .build()
                        .expect("name and keys are set")
                })
                .collect(),
        ))
        .send()
        .await
        .expect("create the scenario table");
    client
        .wait_until_table_exists()
        .table_name(table)
        .wait(Duration::from_secs(120))
        .await
        .expect("the scenario table becomes active");
}

#[tokio::test]
#[ignore = "needs CFINV_DDB_ENDPOINT, a DynamoDB-compatible endpoint"]
async fn dynamodb_store() {
    let endpoint = std::env::var("CFINV_DDB_ENDPOINT").expect("CFINV_DDB_ENDPOINT is set");
    let env = |name, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(env("AWS_REGION", "us-east-1")))
        .credentials_provider(Credentials::new(
            env("AWS_ACCESS_KEY_ID", "test"),
            env("AWS_SECRET_ACCESS_KEY", "test"),
            None,
            None,
            "scenarios",
        ))
        .build();
    let client = Client::from_conf(config);
    let table = format!("cfinv-scenarios-{}", uuid::Uuid::now_v7().simple());
    create_table(&client, &table).await;
    run(&DynamoStore::new(
        client.clone(),
        &table,
        Duration::from_secs(86_400),
    ))
    .await;
    client
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .expect("delete the scenario table");
}
