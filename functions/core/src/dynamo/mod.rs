//! The store roles of `store.rs` on DynamoDB: the table of `schema/`, written as
//! `lifecycle.rs` decides (docs/design.md §4).

mod flush;
mod manual;
mod object_tags;
mod update;

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::get_item::builders::GetItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use crate::collect::PathChange;
use crate::lifecycle::{self, Transition};
use crate::model::{Batch, BatchRef, BatchStatus, MAX_EVENT_IDS_PER_PATH, OpenPointer};
use crate::schema::item::{Item, key, n, pointer_item, s, time};
use crate::schema::{BY_PATH_PK, BY_PATH_SK, BY_STATUS, BY_STATUS_PK, BY_STATUS_SK};
use crate::schema::{ItemType, attr, bounded, keys};
use crate::store::{JoinStore, Outcome, OutcomeStore, PointerStore, SweepStore};
use crate::{Error, Result};
use update::{Update, Write};

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    retention: Duration,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, retention: Duration) -> Self {
        Self {
            client,
            table: table.into(),
            retention,
        }
    }

    /// `TABLE_NAME` and `RETENTION_DAYS` (default 90) from the environment.
    pub fn from_env(client: Client) -> Result<Self> {
        let table = std::env::var("TABLE_NAME")
            .map_err(|_| Error::InvalidConfig("TABLE_NAME is not set".into()))?;
        let days = match std::env::var("RETENTION_DAYS") {
            Ok(v) => v.parse::<u64>().map_err(|_| {
                Error::InvalidConfig(format!("RETENTION_DAYS is not a number: {v:?}"))
            })?,
            Err(_) => 90,
        };
        Ok(Self::new(client, table, Duration::from_secs(days * 86_400)))
    }

    fn expires_at(&self, now: OffsetDateTime) -> AttributeValue {
        n(now.unix_timestamp() as u64 + self.retention.as_secs())
    }

    /// `batch` as a write at `at` that may create its item writes it: opened when its id
    /// says, else at `at` (see `lifecycle::opened_at_of`), and expiring as of `at`.
    fn identity<'a>(&self, batch: &'a BatchRef, at: OffsetDateTime) -> update::Identity<'a> {
        update::Identity {
            batch,
            opened_at: lifecycle::opened_at_of(&batch.batch_id, at),
            ttl: self.expires_at(at),
        }
    }

    /// A strongly consistent read of the item at `key`: what is decided from it must see every
    /// write that succeeded before. A request builder, not an `async fn`: one more async layer
    /// puts poll-status's release build over rustc's query depth limit.
    fn read_consistent(&self, key: Item) -> GetItemFluentBuilder {
        self.client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
    }

    /// An update of batch `batch_id`'s item.
    fn update_batch(&self, batch_id: &str, update: Update) -> UpdateItemFluentBuilder {
        update.on(self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::batch_pk(batch_id), keys::META))))
    }

    /// All items of one partition under a sort-key prefix, strongly consistent and paginated.
    /// Every projected attribute is aliased: `path` and `status` are reserved words.
    async fn query_all(
        &self,
        pk: String,
        sk_prefix: &str,
        attributes: &[&str],
    ) -> Result<Vec<Item>> {
        let projection: Vec<String> = (0..attributes.len()).map(|i| format!("#a{i}")).collect();
        let names: std::collections::HashMap<String, String> = attributes
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("#a{i}"), (*a).to_owned()))
            .collect();
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression(format!(
                    "{} = :pk AND begins_with({}, :prefix)",
                    attr::PK,
                    attr::SK
                ))
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":prefix", s(sk_prefix))
                .projection_expression(projection.join(", "))
                .set_expression_attribute_names(Some(names.clone()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// Writes `item` unconditionally (a chunk, a failed event: each has one writer).
    async fn put(&self, item: Item) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Applies `update` to chunk `chunk` of the batch's committed plan.
    async fn update_chunk(&self, batch_id: &str, chunk: u32, update: Update) -> Result<()> {
        let plan_id = self.committed_plan_id(batch_id).await?;
        let key = key(keys::batch_pk(batch_id), keys::plan_sk(&plan_id, chunk));
        update
            .on(self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key)))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn committed_plan_id(&self, batch_id: &str) -> Result<String> {
        self.get_batch(batch_id)
            .await?
            .and_then(|b| b.plan)
            .map(|p| p.plan_id)
            .ok_or_else(|| Error::StoreError(format!("batch {batch_id} has no committed plan")))
    }
}

impl PointerStore for DynamoStore {
    async fn get_pointer(&self, distribution_id: &str) -> Result<Option<OpenPointer>> {
        let out = self
            .read_consistent(key(keys::dist_pk(distribution_id), keys::OPEN))
            .send()
            .await
            .map_err(store_error)?;
        out.item.as_ref().map(OpenPointer::try_from).transpose()
    }

    async fn swap_pointer(
        &self,
        distribution_id: &str,
        new: &OpenPointer,
        replacing: Option<&str>,
    ) -> Result<bool> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(pointer_item(distribution_id, new)));
        let put = match replacing {
            None => put.condition_expression(format!("attribute_not_exists({})", attr::PK)),
            Some(old) => put
                .condition_expression(format!("{} = :old", attr::BATCH_ID))
                .expression_attribute_values(":old", s(old)),
        };
        conditional(put.send().await)
    }

    async fn delete_pointer(&self, distribution_id: &str, batch_id: &str) -> Result<()> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::dist_pk(distribution_id), keys::OPEN)))
            .condition_expression(format!("{} = :b", attr::BATCH_ID))
            .expression_attribute_values(":b", s(batch_id))
            .send()
            .await;
        conditional(res).map(|_| ())
    }
}

impl JoinStore for DynamoStore {
    async fn create_batch(&self, batch: &BatchRef, opened_at: OffsetDateTime) -> Result<()> {
        let mut item = Item::from(&Batch::opened(batch, opened_at));
        update::into_item(
            &mut item,
            update::transition(
                &Transition::to(BatchStatus::Open, opened_at),
                &batch.batch_id,
                Some(update::Identity {
                    batch,
                    opened_at,
                    ttl: self.expires_at(opened_at),
                }),
            ),
        );
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(format!("attribute_not_exists({})", attr::PK))
            .send()
            .await;
        conditional(res).map(|_| ())
    }

    async fn get_batch(&self, batch_id: &str) -> Result<Option<Batch>> {
        let out = self
            .read_consistent(key(keys::batch_pk(batch_id), keys::META))
            .send()
            .await
            .map_err(store_error)?;
        out.item.as_ref().map(Batch::try_from).transpose()
    }

    async fn put_path(
        &self,
        batch_id: &str,
        change: &PathChange,
        now: OffsetDateTime,
    ) -> Result<()> {
        let mut update = Update::default()
            .set(attr::PATH, ":path", s(&change.path))
            .set(attr::DISTRIBUTION_ID, ":dist", s(&change.distribution_id))
            .set(attr::BATCH_ID, ":batch", s(batch_id))
            .set(attr::BUCKET, ":bucket", s(&change.bucket))
            .set(attr::KEY, ":key", s(&change.key))
            .set(attr::CHANGE, ":change", s(change.change.as_str()))
            .set(attr::LAST_SEEN_AT, ":now", time(now))
            .set_if_absent(attr::FIRST_SEEN_AT, ":now", time(now))
            .set(
                BY_PATH_PK,
                ":gpk",
                s(keys::path_index_pk(&change.distribution_id, &change.path)),
            )
            .set(BY_PATH_SK, ":gsk", s(keys::index_sk(now, batch_id)))
            .set(attr::EXPIRES_AT, ":ttl", self.expires_at(now));
        // What the event told about the object, when it told it (deletes carry no etag).
        for (attr, placeholder, value) in [
            (attr::VERSION_ID, ":versionId", &change.version_id),
            (attr::ETAG, ":etag", &change.etag),
            (attr::SEQUENCER, ":sequencer", &change.sequencer),
            (attr::EVENT_TIME, ":eventTime", &change.event_time),
            (attr::REASON, ":reason", &change.reason),
        ] {
            if let Some(v) = value {
                update = update.set(attr, placeholder, s(v));
            }
        }
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                keys::batch_pk(batch_id),
                keys::path_sk(&change.path),
            )));
        let Some(id) = &change.event_id else {
            update.on(request).send().await.map_err(store_error)?;
            return Ok(());
        };
        // A set of event ids (a duplicate delivery of the same event adds nothing), bounded:
        // once full, a new event is only counted.
        let ids = attr::EVENT_IDS;
        let added = update
            .clone()
            .add(ids, ":ids", AttributeValue::Ss(vec![id.clone()]))
            .value(":id", s(id))
            .value(":max", n(MAX_EVENT_IDS_PER_PATH))
            .on(request.clone())
            .condition_expression(format!(
                "attribute_not_exists({ids}) OR size({ids}) < :max OR contains({ids}, :id)"
            ))
            .send()
            .await;
        if conditional(added)? {
            return Ok(());
        }
        update
            .add(attr::MORE_EVENTS, ":one", n(1))
            .on(request)
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

impl OutcomeStore for DynamoStore {
    async fn record_outcome(&self, batch: &BatchRef, outcome: &Outcome) -> Result<()> {
        let mut update = Update::default()
            .set(attr::OUTCOME_AT, ":at", time(outcome.at))
            .set(attr::EXECUTION_STATUS, ":exec", s(outcome.status.as_str()))
            .set(attr::EXECUTION_ARN, ":arn", s(&outcome.execution_arn));
        if let Some(error) = lifecycle::execution_error(outcome) {
            update = update
                .writes(update::transition(
                    &Transition::to(BatchStatus::Failed, outcome.at),
                    &batch.batch_id,
                    Some(self.identity(batch, outcome.at)),
                ))
                .set(attr::LAST_ERROR, ":err", s(error));
        }
        let res = self
            .update_batch(&batch.batch_id, update)
            // A late event never overrides a newer one, and a completed batch is never failed.
            .condition_expression(format!(
                "(attribute_not_exists({at}) OR {at} <= :at) AND attribute_not_exists({done})",
                at = attr::OUTCOME_AT,
                done = attr::COMPLETED_AT
            ))
            .send()
            .await;
        conditional(res).map(|_| ())
    }

    async fn record_failed_event(&self, name: &str, outcome: &Outcome, input: &str) -> Result<()> {
        let item_key = key(keys::exec_pk(name), keys::META);
        let Some(error) = lifecycle::execution_error(outcome) else {
            // A redriven execution that now succeeded: drop it from the failures index.
            let res = Update::default()
                .set(attr::EXECUTION_STATUS, ":s", s(outcome.status.as_str()))
                .set(attr::OUTCOME_AT, ":at", time(outcome.at))
                .write(Write::Remove(BY_STATUS_PK))
                .write(Write::Remove(BY_STATUS_SK))
                .on(self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(item_key)))
                .condition_expression(format!(
                    "attribute_exists({}) AND {} <= :at",
                    attr::PK,
                    attr::OUTCOME_AT
                ))
                .send()
                .await;
            return conditional(res).map(|_| ());
        };
        let mut item = item_key;
        let failed = BatchStatus::Failed.as_str();
        item.extend(
            [
                (attr::TYPE, s(ItemType::Event.as_str())),
                (attr::EXECUTION_ARN, s(&outcome.execution_arn)),
                (attr::EXECUTION_STATUS, s(outcome.status.as_str())),
                (attr::STATUS, s(failed)),
                (attr::LAST_ERROR, s(error)),
                (attr::INPUT, s(bounded(input))),
                (attr::OUTCOME_AT, time(outcome.at)),
                (attr::FAILED_AT, time(outcome.at)),
                (BY_STATUS_PK, s(failed)),
                (BY_STATUS_SK, s(keys::index_sk(outcome.at, name))),
                (attr::EXPIRES_AT, self.expires_at(outcome.at)),
            ]
            .map(|(name, value)| (name.to_owned(), value)),
        );
        self.put(item).await
    }
}

impl SweepStore for DynamoStore {
    async fn open_batches_before(
        &self,
        before: OffsetDateTime,
    ) -> Result<Vec<(BatchRef, OffsetDateTime)>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_STATUS)
                .key_condition_expression(format!(
                    "{BY_STATUS_PK} = :open AND {BY_STATUS_SK} < :before"
                ))
                .expression_attribute_values(":open", s(BatchStatus::Open.as_str()))
                .expression_attribute_values(":before", time(before))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error)?;
            for item in page.items() {
                let batch = Batch::try_from(item)?;
                let opened_at = batch.opened_at;
                out.push((batch.into(), opened_at));
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

/// Ok(true) when the write happened, Ok(false) when its condition did not hold.
fn conditional<T, E>(
    res: std::result::Result<T, SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
) -> Result<bool>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match res {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(store_error(e)),
    }
}

/// Throttling and server-side faults are retryable (`StoreUnavailable`); the rest is not.
fn store_error<E>(e: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = match e.message() {
        Some(m) => format!("{}: {m}", e.code().unwrap_or("DynamoDB")),
        None => aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
    };
    match &e {
        SdkError::ServiceError(_) => match e.code() {
            Some(
                "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
                | "ThrottlingException"
                | "InternalServerError"
                | "ServiceUnavailable"
                | "TransactionConflictException",
            ) => Error::StoreUnavailable(message),
            _ => Error::StoreError(message),
        },
        // Timeouts, connection failures, unparseable responses: transient.
        _ => Error::StoreUnavailable(message),
    }
}

/// Adapter tests: the requests the store sends and how it reads DynamoDB's answers, including
/// the conditional failures the join and close protocols depend on.
#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod tests;
