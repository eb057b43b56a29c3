//! The store roles of `store.rs` on DynamoDB (the table layout of docs/design.md §4).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use time::OffsetDateTime;

use crate::collect::PathChange;
use crate::model::{
    Batch, BatchRef, BatchStatus, Chunk, MAX_EVENT_IDS_PER_PATH, OpenPointer, PlanRef,
    batch_opened_at, keys, parse_timestamp, timestamp,
};
use crate::plan::Plan;
use crate::store::{
    BatchPaths, JoinStore, Outcome, OutcomeStore, PlanStore, PointerStore, PollStore, SubmitStore,
    SweepStore,
};
use crate::{Error, Result};

/// Index names, shared with `template.yaml` and the audit CLI.
pub const INDEX_BY_DISTRIBUTION: &str = "byDistribution";
pub const INDEX_BY_PATH: &str = "byPath";
pub const INDEX_BY_STATUS: &str = "byStatus";

/// Inputs and error texts are kept well below the 400 KB item limit.
const MAX_TEXT: usize = 16 * 1024;

type Item = HashMap<String, AttributeValue>;

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
        n((now.unix_timestamp() as u64 + self.retention.as_secs()).to_string())
    }

    fn key(pk: String, sk: impl Into<String>) -> Item {
        HashMap::from([("PK".to_owned(), s(pk)), ("SK".to_owned(), s(sk))])
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
        let names: HashMap<String, String> = attributes
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
                .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
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
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::dist_pk(distribution_id), keys::OPEN)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        Ok(Some(OpenPointer {
            batch_id: req_str(&item, "batchId")?,
            opened_at: req_time(&item, "openedAt")?,
        }))
    }

    async fn swap_pointer(
        &self,
        distribution_id: &str,
        new: &OpenPointer,
        replacing: Option<&str>,
    ) -> Result<bool> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::key(keys::dist_pk(distribution_id), keys::OPEN)))
            .item("batchId", s(&new.batch_id))
            .item("openedAt", s(timestamp(new.opened_at)))
            .item("distributionId", s(distribution_id));
        put = match replacing {
            None => put.condition_expression("attribute_not_exists(PK)"),
            Some(old) => put
                .condition_expression("batchId = :old")
                .expression_attribute_values(":old", s(old)),
        };
        conditional(put.send().await)
    }

    async fn delete_pointer(&self, distribution_id: &str, batch_id: &str) -> Result<()> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::dist_pk(distribution_id), keys::OPEN)))
            .condition_expression("batchId = :b")
            .expression_attribute_values(":b", s(batch_id))
            .send()
            .await;
        conditional(res).map(|_| ())
    }
}

impl JoinStore for DynamoStore {
    async fn create_batch(&self, batch: &BatchRef, opened_at: OffsetDateTime) -> Result<()> {
        let opened = timestamp(opened_at);
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::key(keys::batch_pk(&batch.batch_id), keys::META)))
            .item("type", s("batch"))
            .item("batchId", s(&batch.batch_id))
            .item("distributionId", s(&batch.distribution_id))
            .item("status", s(BatchStatus::Open.as_str()))
            .item("openedAt", s(&opened))
            .item("gsi1pk", s(keys::dist_pk(&batch.distribution_id)))
            .item("gsi1sk", s(format!("{opened}#{}", batch.batch_id)))
            .item("statusPk", s(BatchStatus::Open.as_str()))
            .item("statusSk", s(format!("{opened}#{}", batch.batch_id)))
            .item("expiresAt", self.expires_at(opened_at))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        conditional(res).map(|_| ())
    }

    async fn get_batch(&self, batch_id: &str) -> Result<Option<Batch>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::batch_pk(batch_id), keys::META)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        out.item.as_ref().map(parse_batch).transpose()
    }

    async fn put_path(
        &self,
        batch_id: &str,
        change: &PathChange,
        now: OffsetDateTime,
    ) -> Result<()> {
        let seen = timestamp(now);
        let mut sets: Vec<String> = [
            "#path = :path",
            "distributionId = :dist",
            "batchId = :batch",
            "#bucket = :bucket",
            "#key = :key",
            "#change = :change",
            "lastSeenAt = :now",
            "firstSeenAt = if_not_exists(firstSeenAt, :now)",
            "gsi2pk = :gpk",
            "gsi2sk = :gsk",
            "expiresAt = :ttl",
        ]
        .map(String::from)
        .to_vec();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                keys::batch_pk(batch_id),
                keys::path_sk(&change.path),
            )))
            .expression_attribute_names("#path", "path")
            .expression_attribute_names("#key", "key")
            .expression_attribute_names("#bucket", "bucket")
            .expression_attribute_names("#change", "change")
            .expression_attribute_values(":path", s(&change.path))
            .expression_attribute_values(":dist", s(&change.distribution_id))
            .expression_attribute_values(":batch", s(batch_id))
            .expression_attribute_values(":bucket", s(&change.bucket))
            .expression_attribute_values(":key", s(&change.key))
            .expression_attribute_values(":change", s(format!("{:?}", change.change)))
            .expression_attribute_values(":now", s(&seen))
            .expression_attribute_values(
                ":gpk",
                s(keys::path_index_pk(&change.distribution_id, &change.path)),
            )
            .expression_attribute_values(":gsk", s(format!("{seen}#{batch_id}")))
            .expression_attribute_values(":ttl", self.expires_at(now));
        // What the event told about the object, when it told it (deletes carry no etag).
        for (attr, value) in [
            ("versionId", &change.version_id),
            ("etag", &change.etag),
            ("sequencer", &change.sequencer),
            ("eventTime", &change.event_time),
            ("reason", &change.reason),
        ] {
            if let Some(v) = value {
                sets.push(format!("{attr} = :{attr}"));
                update = update.expression_attribute_values(format!(":{attr}"), s(v));
            }
        }
        let expression = format!("SET {}", sets.join(", "));
        let Some(id) = &change.event_id else {
            update
                .update_expression(expression)
                .send()
                .await
                .map_err(store_error)?;
            return Ok(());
        };
        // A set of event ids (a duplicate delivery of the same event adds nothing), bounded:
        // once full, a new event is only counted.
        let added = update
            .clone()
            .update_expression(format!("{expression} ADD eventIds :ids"))
            .condition_expression(
                "attribute_not_exists(eventIds) OR size(eventIds) < :max OR contains(eventIds, :id)",
            )
            .expression_attribute_values(":ids", AttributeValue::Ss(vec![id.clone()]))
            .expression_attribute_values(":id", s(id))
            .expression_attribute_values(":max", n(MAX_EVENT_IDS_PER_PATH.to_string()))
            .send()
            .await;
        if conditional(added)? {
            return Ok(());
        }
        update
            .update_expression(format!("{expression} ADD moreEvents :one"))
            .expression_attribute_values(":one", n("1"))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

impl PlanStore for DynamoStore {
    async fn load_plan(&self, batch_id: &str) -> Result<Vec<Chunk>> {
        let batch = self
            .get_batch(batch_id)
            .await?
            .ok_or_else(|| Error::StoreError(format!("batch {batch_id} not found")))?;
        let Some(PlanRef { plan_id, chunks }) = batch.plan else {
            return Err(Error::StoreError(format!(
                "batch {batch_id} has no committed plan"
            )));
        };
        let items = self
            .query_all(
                keys::batch_pk(batch_id),
                &keys::plan_prefix(&plan_id),
                &["SK", "paths", "invalidationId", "status"],
            )
            .await?;
        let mut out = Vec::with_capacity(items.len());
        for item in &items {
            let sk = req_str(item, "SK")?;
            let index = sk
                .rsplit('#')
                .next()
                .and_then(|i| i.parse().ok())
                .ok_or_else(|| Error::StoreError(format!("bad plan key {sk}")))?;
            let paths = match item.get("paths") {
                Some(AttributeValue::L(l)) => {
                    l.iter().filter_map(|v| v.as_s().ok().cloned()).collect()
                }
                _ => return Err(Error::StoreError(format!("plan chunk {sk} has no paths"))),
            };
            out.push(Chunk {
                plan_id: plan_id.clone(),
                index,
                paths,
                invalidation_id: opt_str(item, "invalidationId"),
                completed: opt_str(item, "status").as_deref() == Some("Completed"),
            });
        }
        if out.len() != chunks as usize {
            return Err(Error::StoreError(format!(
                "batch {batch_id}: plan {plan_id} has {} of {chunks} chunks",
                out.len()
            )));
        }
        out.sort_by_key(|c| c.index);
        Ok(out)
    }

    async fn record_error(&self, batch_id: &str, error: &Error, now: OffsetDateTime) -> Result<()> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::batch_pk(batch_id), keys::META)))
            .update_expression("SET lastError = :e, lastErrorAt = :now ADD attempts :one")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":e", s(truncate(&format!("{}: {error}", error.name()))))
            .expression_attribute_values(":now", s(timestamp(now)))
            .expression_attribute_values(":one", n("1"))
            .send()
            .await;
        conditional(res).map(|_| ())
    }
}

impl SubmitStore for DynamoStore {
    async fn close_batch(
        &self,
        batch: &BatchRef,
        now: OffsetDateTime,
        execution_arn: &str,
    ) -> Result<Batch> {
        let at = timestamp(now);
        // Creates the item too if the opener died before writing it: the batch still closes,
        // and its opening time comes from its id, not from the close.
        let opened = batch_opened_at(&batch.batch_id).map_or_else(|| at.clone(), timestamp);
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::batch_pk(&batch.batch_id), keys::META)))
            .update_expression(
                "SET #status = :closed, closedAt = :now, executionArn = :arn, statusPk = :closed, \
                 statusSk = :ssk, batchId = :b, distributionId = :d, #type = :batch, \
                 openedAt = if_not_exists(openedAt, :opened), gsi1pk = :g1, \
                 gsi1sk = if_not_exists(gsi1sk, :gsk), expiresAt = if_not_exists(expiresAt, :ttl)",
            )
            .condition_expression("attribute_not_exists(closedAt)")
            .expression_attribute_values(":opened", s(&opened))
            .expression_attribute_values(":gsk", s(format!("{opened}#{}", batch.batch_id)))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#type", "type")
            .expression_attribute_values(":closed", s(BatchStatus::Closed.as_str()))
            .expression_attribute_values(":now", s(&at))
            .expression_attribute_values(":arn", s(execution_arn))
            .expression_attribute_values(":ssk", s(format!("{at}#{}", batch.batch_id)))
            .expression_attribute_values(":b", s(&batch.batch_id))
            .expression_attribute_values(":d", s(&batch.distribution_id))
            .expression_attribute_values(":batch", s("batch"))
            .expression_attribute_values(":g1", s(keys::dist_pk(&batch.distribution_id)))
            .expression_attribute_values(":ttl", self.expires_at(now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => parse_batch(&out.attributes.unwrap_or_default()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                self.get_batch(&batch.batch_id).await?.ok_or_else(|| {
                    Error::StoreError(format!("batch {} vanished while closing", batch.batch_id))
                })
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn batch_paths(&self, batch_id: &str) -> Result<BatchPaths> {
        let items = self
            .query_all(
                keys::batch_pk(batch_id),
                keys::PATH_PREFIX,
                &["path", "eventIds", "moreEvents"],
            )
            .await?;
        let mut events = HashSet::new();
        let mut more = 0;
        let mut paths = Vec::with_capacity(items.len());
        for item in &items {
            paths.push(req_str(item, "path")?);
            if let Some(AttributeValue::Ss(ids)) = item.get("eventIds") {
                events.extend(ids.iter().cloned());
            }
            more += opt_num(item, "moreEvents").map_or(0, |n| n as usize);
        }
        Ok(BatchPaths {
            paths,
            events: events.len() + more,
        })
    }

    async fn commit_plan(
        &self,
        batch_id: &str,
        plan: &Plan,
        received: &BatchPaths,
        now: OffsetDateTime,
    ) -> Result<Vec<Chunk>> {
        let plan_id = uuid::Uuid::now_v7().simple().to_string()[24..].to_owned();
        let chunks = Chunk::planned(&plan_id, plan);
        for chunk in &chunks {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(Self::key(
                    keys::batch_pk(batch_id),
                    keys::plan_sk(&plan_id, chunk.index),
                )))
                .item(
                    "paths",
                    AttributeValue::L(chunk.paths.iter().map(s).collect()),
                )
                .item(
                    "callerReference",
                    s(keys::caller_reference(batch_id, chunk.index)),
                )
                .item("status", s("PLANNED"))
                .item("expiresAt", self.expires_at(now))
                .send()
                .await
                .map_err(store_error)?;
        }
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::batch_pk(batch_id), keys::META)))
            .update_expression(
                "SET planId = :plan, plannedChunks = :chunks, pathsReceived = :received, \
                 eventsReceived = :events, pathsPlanned = :planned, plannedAt = :now",
            )
            .condition_expression("attribute_exists(PK) AND attribute_not_exists(planId)")
            .expression_attribute_values(":plan", s(&plan_id))
            .expression_attribute_values(":chunks", n(chunks.len().to_string()))
            .expression_attribute_values(":received", n(received.paths.len().to_string()))
            .expression_attribute_values(":events", n(received.events.to_string()))
            .expression_attribute_values(":planned", n(plan.billed_paths().to_string()))
            .expression_attribute_values(":now", s(timestamp(now)))
            .send()
            .await;
        if conditional(res)? {
            Ok(chunks)
        } else {
            self.load_plan(batch_id).await
        }
    }

    async fn record_invalidation(
        &self,
        batch_id: &str,
        chunk: u32,
        invalidation_id: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        let plan_id = self.committed_plan_id(batch_id).await?;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::batch_pk(batch_id), keys::plan_sk(&plan_id, chunk))))
            .update_expression("SET invalidationId = :id, #status = :s, createdAt = if_not_exists(createdAt, :now)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":id", s(invalidation_id))
            .expression_attribute_values(":s", s("InProgress"))
            .expression_attribute_values(":now", s(timestamp(now)))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn mark_submitted(
        &self,
        batch_id: &str,
        billed: usize,
        now: OffsetDateTime,
    ) -> Result<()> {
        let at = timestamp(now);
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::batch_pk(batch_id), keys::META)))
            .update_expression(
                "SET #status = :submitted, submittedAt = if_not_exists(submittedAt, :now), \
                 pathsBilled = :billed, statusPk = :submitted, statusSk = :ssk",
            )
            .condition_expression("attribute_exists(PK) AND attribute_not_exists(completedAt)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":submitted", s(BatchStatus::Submitted.as_str()))
            .expression_attribute_values(":now", s(&at))
            .expression_attribute_values(":billed", n(billed.to_string()))
            .expression_attribute_values(":ssk", s(format!("{at}#{batch_id}")))
            .send()
            .await;
        conditional(res).map(|_| ())
    }

    async fn mark_empty(&self, batch_id: &str, now: OffsetDateTime) -> Result<()> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::batch_pk(batch_id), keys::META)))
            .update_expression(
                "SET #status = :empty, emptyAt = if_not_exists(emptyAt, :now) \
                 REMOVE statusPk, statusSk, gsi1pk, gsi1sk, failedAt",
            )
            .condition_expression("attribute_exists(PK) AND attribute_not_exists(planId)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":empty", s(BatchStatus::Empty.as_str()))
            .expression_attribute_values(":now", s(timestamp(now)))
            .send()
            .await;
        conditional(res).map(|_| ())
    }
}

impl PollStore for DynamoStore {
    async fn poll_window(
        &self,
        batch_id: &str,
        epoch: u32,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::batch_pk(batch_id), keys::META)))
            .update_expression("SET pollEpoch = :e, pollSince = :now")
            .condition_expression(
                "attribute_exists(PK) AND (attribute_not_exists(pollEpoch) OR pollEpoch < :e)",
            )
            .expression_attribute_values(":e", n(epoch.to_string()))
            .expression_attribute_values(":now", s(timestamp(now)))
            .send()
            .await;
        if conditional(res)? {
            return Ok(now);
        }
        let batch = self
            .get_batch(batch_id)
            .await?
            .ok_or_else(|| Error::StoreError(format!("batch {batch_id} not found")))?;
        Ok(batch.poll_since.unwrap_or(now))
    }

    async fn mark_chunk_completed(
        &self,
        batch_id: &str,
        chunk: u32,
        now: OffsetDateTime,
    ) -> Result<()> {
        let plan_id = self.committed_plan_id(batch_id).await?;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                keys::batch_pk(batch_id),
                keys::plan_sk(&plan_id, chunk),
            )))
            .update_expression("SET #status = :s, completedAt = if_not_exists(completedAt, :now)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":s", s("Completed"))
            .expression_attribute_values(":now", s(timestamp(now)))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn mark_completed(&self, batch_id: &str, now: OffsetDateTime) -> Result<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::batch_pk(batch_id), keys::META)))
            .update_expression(
                "SET #status = :completed, completedAt = if_not_exists(completedAt, :now) \
                 REMOVE statusPk, statusSk, failedAt",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", s(BatchStatus::Completed.as_str()))
            .expression_attribute_values(":now", s(timestamp(now)))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

impl OutcomeStore for DynamoStore {
    async fn record_outcome(&self, batch: &BatchRef, outcome: &Outcome) -> Result<()> {
        let at = timestamp(outcome.at);
        let failed = outcome.status != "SUCCEEDED";
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::batch_pk(&batch.batch_id), keys::META)))
            // A late event never overrides a newer one, and a completed batch is never failed.
            .condition_expression("(attribute_not_exists(outcomeAt) OR outcomeAt <= :at) AND attribute_not_exists(completedAt)")
            .expression_attribute_values(":at", s(&at))
            .expression_attribute_values(":exec", s(&outcome.status))
            .expression_attribute_values(":arn", s(&outcome.execution_arn));
        let mut expression =
            String::from("SET outcomeAt = :at, executionStatus = :exec, executionArn = :arn");
        if failed {
            expression.push_str(
                ", #status = :failed, failedAt = :at, statusPk = :failed, statusSk = :ssk, \
                 lastError = :err, batchId = :b, distributionId = :d, #type = :batch, \
                 openedAt = if_not_exists(openedAt, :at), gsi1pk = :g1, gsi1sk = if_not_exists(gsi1sk, :ssk)",
            );
            let error = match (&outcome.error, &outcome.cause) {
                (Some(e), Some(c)) => format!("{e}: {c}"),
                (Some(e), None) => e.clone(),
                (None, Some(c)) => c.clone(),
                (None, None) => format!("execution {}", outcome.status),
            };
            update = update
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#type", "type")
                .expression_attribute_values(":failed", s(BatchStatus::Failed.as_str()))
                .expression_attribute_values(":ssk", s(format!("{at}#{}", batch.batch_id)))
                .expression_attribute_values(":err", s(truncate(&error)))
                .expression_attribute_values(":b", s(&batch.batch_id))
                .expression_attribute_values(":d", s(&batch.distribution_id))
                .expression_attribute_values(":batch", s("batch"))
                .expression_attribute_values(":g1", s(keys::dist_pk(&batch.distribution_id)));
        }
        conditional(update.update_expression(expression).send().await).map(|_| ())
    }

    async fn record_failed_event(&self, outcome: &Outcome, input: &str) -> Result<()> {
        let name = outcome
            .execution_arn
            .rsplit(':')
            .next()
            .unwrap_or(&outcome.execution_arn);
        let key = Self::key(format!("EXEC#{name}"), keys::META);
        if outcome.status == "SUCCEEDED" {
            // A redriven execution that now succeeded: drop it from the failures index.
            let res = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key))
                .update_expression(
                    "SET executionStatus = :s, outcomeAt = :at REMOVE statusPk, statusSk",
                )
                .condition_expression("attribute_exists(PK) AND outcomeAt <= :at")
                .expression_attribute_values(":s", s(&outcome.status))
                .expression_attribute_values(":at", s(timestamp(outcome.at)))
                .send()
                .await;
            return conditional(res).map(|_| ());
        }
        let at = timestamp(outcome.at);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(key))
            .item("type", s("event"))
            .item("executionArn", s(&outcome.execution_arn))
            .item("executionStatus", s(&outcome.status))
            .item("status", s(BatchStatus::Failed.as_str()))
            .item(
                "lastError",
                s(truncate(&format!(
                    "{}: {}",
                    outcome.error.as_deref().unwrap_or(&outcome.status),
                    outcome.cause.as_deref().unwrap_or("")
                ))),
            )
            .item("input", s(truncate(input)))
            .item("outcomeAt", s(&at))
            .item("failedAt", s(&at))
            .item("statusPk", s(BatchStatus::Failed.as_str()))
            .item("statusSk", s(format!("{at}#{name}")))
            .item("expiresAt", self.expires_at(outcome.at))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
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
                .index_name(INDEX_BY_STATUS)
                .key_condition_expression("statusPk = :open AND statusSk < :before")
                .expression_attribute_values(":open", s(BatchStatus::Open.as_str()))
                .expression_attribute_values(":before", s(timestamp(before)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error)?;
            for item in page.items() {
                let batch = BatchRef {
                    batch_id: req_str(item, "batchId")?,
                    distribution_id: req_str(item, "distributionId")?,
                };
                out.push((batch, req_time(item, "openedAt")?));
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl Into<String>) -> AttributeValue {
    AttributeValue::N(v.into())
}

fn opt_str(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn opt_num(item: &Item, name: &str) -> Option<u32> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn req_str(item: &Item, name: &str) -> Result<String> {
    opt_str(item, name)
        .ok_or_else(|| Error::StoreError(format!("item lacks string attribute {name}")))
}

fn req_time(item: &Item, name: &str) -> Result<OffsetDateTime> {
    let raw = req_str(item, name)?;
    parse_timestamp(&raw)
        .ok_or_else(|| Error::StoreError(format!("attribute {name} is not a timestamp: {raw}")))
}

fn opt_time(item: &Item, name: &str) -> Option<OffsetDateTime> {
    opt_str(item, name).as_deref().and_then(parse_timestamp)
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn parse_batch(item: &Item) -> Result<Batch> {
    let status = req_str(item, "status")?;
    Ok(Batch {
        batch_id: req_str(item, "batchId")?,
        distribution_id: req_str(item, "distributionId")?,
        status: BatchStatus::parse(&status)
            .ok_or_else(|| Error::StoreError(format!("unknown batch status {status}")))?,
        opened_at: req_time(item, "openedAt")?,
        plan: opt_str(item, "planId").map(|plan_id| PlanRef {
            plan_id,
            chunks: opt_num(item, "plannedChunks").unwrap_or(0),
        }),
        submitted_at: opt_time(item, "submittedAt"),
        poll_epoch: opt_num(item, "pollEpoch"),
        poll_since: opt_time(item, "pollSince"),
    })
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
mod tests {
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use time::macros::datetime;

    use super::*;

    fn store(client: Client) -> DynamoStore {
        DynamoStore::new(client, "t", Duration::from_secs(86_400))
    }

    /// A DynamoDB error as it comes over the wire (JSON 1.0 protocol).
    fn wire_error(code: &str) -> Response<SdkBody> {
        Response::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"{code}"}}"#
            )),
        )
    }

    fn pointer() -> OpenPointer {
        OpenPointer {
            batch_id: "E1-b".into(),
            opened_at: datetime!(2026-11-25 00:00 UTC),
        }
    }

    #[tokio::test]
    async fn a_lost_pointer_race_is_false_not_an_error() {
        let rule = mock!(Client::put_item)
            .match_requests(|r| r.condition_expression() == Some("attribute_not_exists(PK)"))
            .then_http_response(|| wire_error("ConditionalCheckFailedException"));
        let client = mock_client!(aws_sdk_dynamodb, [&rule]);
        assert!(
            !store(client)
                .swap_pointer("E1", &pointer(), None)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn rotation_is_conditional_on_the_stale_batch() {
        let rule = mock!(Client::put_item)
            .match_requests(|r| {
                r.condition_expression() == Some("batchId = :old")
                    && r.expression_attribute_values().and_then(|v| v.get(":old"))
                        == Some(&s("E1-old"))
                    && r.item().and_then(|i| i.get("PK")) == Some(&s("DIST#E1"))
            })
            .then_output(|| {
                aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build()
            });
        let client = mock_client!(aws_sdk_dynamodb, [&rule]);
        assert!(
            store(client)
                .swap_pointer("E1", &pointer(), Some("E1-old"))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn throttling_is_retryable_and_access_denied_is_not() {
        let throttled = mock!(Client::put_item)
            .then_http_response(|| wire_error("ProvisionedThroughputExceededException"));
        // No SDK-level retries: the state machine owns retrying, with jitter.
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&throttled], |c| c
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()));
        let err = store(client)
            .swap_pointer("E1", &pointer(), None)
            .await
            .unwrap_err();
        assert_eq!(err.name(), "StoreUnavailable");

        let denied =
            mock!(Client::put_item).then_http_response(|| wire_error("AccessDeniedException"));
        let client = mock_client!(aws_sdk_dynamodb, [&denied]);
        let err = store(client)
            .swap_pointer("E1", &pointer(), None)
            .await
            .unwrap_err();
        assert_eq!(err.name(), "StoreError", "{err}");
    }

    #[tokio::test]
    async fn closing_an_already_closed_batch_reads_it_back() {
        let update = mock!(Client::update_item)
            .match_requests(|r| r.condition_expression() == Some("attribute_not_exists(closedAt)"))
            .then_http_response(|| wire_error("ConditionalCheckFailedException"));
        let get = mock!(Client::get_item)
            .match_requests(|r| r.consistent_read() == Some(true))
            .then_output(|| {
                GetItemOutput::builder()
                    .set_item(Some(HashMap::from([
                        ("batchId".to_owned(), s("E1-b")),
                        ("distributionId".to_owned(), s("E1")),
                        ("status".to_owned(), s("SUBMITTED")),
                        ("openedAt".to_owned(), s("2026-11-25T00:00:00.000Z")),
                        ("planId".to_owned(), s("p1")),
                        ("plannedChunks".to_owned(), n("2")),
                    ])))
                    .build()
            });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update, &get]);
        let batch_ref = BatchRef {
            batch_id: "E1-b".into(),
            distribution_id: "E1".into(),
        };
        let batch = store(client)
            .close_batch(&batch_ref, datetime!(2026-11-25 00:01 UTC), "arn")
            .await
            .unwrap();
        assert_eq!(batch.status, BatchStatus::Submitted);
        assert_eq!(
            batch.plan,
            Some(PlanRef {
                plan_id: "p1".into(),
                chunks: 2
            })
        );
    }

    #[tokio::test]
    async fn a_batch_whose_opener_never_wrote_it_closes_with_the_opening_time_of_its_id() {
        let update = mock!(Client::update_item)
            .match_requests(|r| {
                let values = r.expression_attribute_values().cloned().unwrap_or_default();
                r.update_expression()
                    .is_some_and(|e| e.contains("openedAt = if_not_exists(openedAt, :opened)"))
                    && values.get(":opened") == Some(&s("2026-11-25T03:04:05.000Z"))
                    && values.get(":now") == Some(&s("2026-11-25T03:10:00.000Z"))
            })
            .then_output(|| {
                UpdateItemOutput::builder()
                    .set_attributes(Some(HashMap::from([
                        ("batchId".to_owned(), s("E1-20261125T030405Z-0a1b2c3d")),
                        ("distributionId".to_owned(), s("E1")),
                        ("status".to_owned(), s("CLOSED")),
                        ("openedAt".to_owned(), s("2026-11-25T03:04:05.000Z")),
                    ])))
                    .build()
            });
        let client = mock_client!(aws_sdk_dynamodb, [&update]);
        let batch_ref = BatchRef {
            batch_id: "E1-20261125T030405Z-0a1b2c3d".into(),
            distribution_id: "E1".into(),
        };
        let batch = store(client)
            .close_batch(&batch_ref, datetime!(2026-11-25 03:10 UTC), "arn")
            .await
            .unwrap();
        assert_eq!(batch.opened_at, datetime!(2026-11-25 03:04:05 UTC));
        assert_eq!(update.num_calls(), 1);
    }

    #[tokio::test]
    async fn an_empty_batch_leaves_the_listing_and_the_failures_index() {
        let update = mock!(Client::update_item)
            .match_requests(|r| {
                r.update_expression()
                    .is_some_and(|e| e.contains("REMOVE statusPk, statusSk, gsi1pk, gsi1sk"))
                    && r.condition_expression()
                        == Some("attribute_exists(PK) AND attribute_not_exists(planId)")
                    && r.expression_attribute_values()
                        .and_then(|v| v.get(":empty"))
                        == Some(&s("EMPTY"))
            })
            .then_output(|| UpdateItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, [&update]);
        store(client)
            .mark_empty("E1-b", datetime!(2026-11-25 00:01 UTC))
            .await
            .unwrap();
        assert_eq!(update.num_calls(), 1);
    }

    fn path_change(path: &str, key: &str, event_id: &str) -> PathChange {
        PathChange {
            distribution_id: "E1".into(),
            path: path.into(),
            bucket: "site".into(),
            key: key.into(),
            version_id: None,
            etag: None,
            sequencer: None,
            event_time: None,
            event_id: Some(event_id.into()),
            change: crate::event::ChangeKind::Created,
            reason: None,
        }
    }

    #[tokio::test]
    async fn a_hot_key_whose_id_set_is_full_is_only_counted() {
        let full = mock!(Client::update_item)
            .match_requests(|r| {
                r.update_expression()
                    .is_some_and(|e| e.contains("ADD eventIds :ids"))
                    && r.condition_expression()
                        .is_some_and(|c| c.contains("size(eventIds) < :max"))
                    && r.expression_attribute_values().and_then(|v| v.get(":max"))
                        == Some(&n(MAX_EVENT_IDS_PER_PATH.to_string()))
            })
            .then_http_response(|| wire_error("ConditionalCheckFailedException"));
        let counted = mock!(Client::update_item)
            .match_requests(|r| {
                r.update_expression()
                    .is_some_and(|e| e.contains("ADD moreEvents :one") && !e.contains("eventIds"))
                    && r.condition_expression().is_none()
            })
            .then_output(|| UpdateItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&full, &counted]);
        store(client)
            .put_path(
                "E1-b",
                &path_change("/hot", "hot", "ev-101"),
                datetime!(2026-11-25 00:00 UTC),
            )
            .await
            .unwrap();
        assert_eq!((full.num_calls(), counted.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_duplicate_event_adds_its_id_to_a_set() {
        let rule = mock!(Client::update_item)
            .match_requests(|r| {
                let expr = r.update_expression().unwrap_or_default();
                expr.contains("ADD eventIds :ids")
                    && expr.contains("firstSeenAt = if_not_exists(firstSeenAt, :now)")
                    && r.key().and_then(|k| k.get("SK")) == Some(&s(keys::path_sk("/a%20b")))
                    && r.expression_attribute_values().and_then(|v| v.get(":ids"))
                        == Some(&AttributeValue::Ss(vec!["ev-1".into()]))
            })
            .then_output(|| UpdateItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, [&rule]);
        let change = PathChange {
            etag: Some("e".into()),
            sequencer: Some("01".into()),
            ..path_change("/a%20b", "a b", "ev-1")
        };
        store(client)
            .put_path("E1-b", &change, datetime!(2026-11-25 00:00 UTC))
            .await
            .unwrap();
        assert_eq!(rule.num_calls(), 1);
    }
}
