//! The audit's reads: DynamoDB Query on the table and its three indexes (never Scan), every one
//! paginated. Names, keys and indexes come from `cfinv_core::schema`, so they are the ones the
//! functions write.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use cfinv_core::distribution::PlanBasis;
use cfinv_core::model::{BatchStatus, timestamp};
use cfinv_core::schema::item::{key, s, text};
use cfinv_core::schema::{
    BY_DISTRIBUTION, BY_DISTRIBUTION_PK, BY_DISTRIBUTION_SK, BY_PATH, BY_PATH_PK, BY_STATUS,
    BY_STATUS_PK, BY_STATUS_SK, attr, keys,
};
use time::OffsetDateTime;

use crate::config::{self, Target};
use crate::records::{
    BatchRecord, ChunkRecord, FailedEvent, Item, PathRecord, RequestRecord, is_failed_event,
    plan_basis,
};
use crate::{Error, Result, error_chain};

pub struct AuditTable {
    client: Client,
    target: Target,
    conf: aws_config::SdkConfig,
}

/// A batch with the chunks of its committed plan (none before planning).
pub struct Planned {
    pub batch: BatchRecord,
    pub chunks: Vec<ChunkRecord>,
}

/// Everything stored under `BATCH#<id>`.
pub struct BatchItems {
    pub batch: BatchRecord,
    /// What the plan was made from, when it followed the distribution's configuration.
    pub plan_basis: Option<PlanBasis>,
    /// The chunks of the committed plan.
    pub chunks: Vec<ChunkRecord>,
    pub paths: Vec<PathRecord>,
}

impl AuditTable {
    pub async fn connect(mut target: Target) -> Result<Self> {
        let conf = config::sdk_config(&mut target).await?;
        let client = Client::new(&conf);
        Ok(Self {
            client,
            target,
            conf,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The AWS configuration the table's client uses, for the other clients of a command.
    pub fn sdk_config(&self) -> &aws_config::SdkConfig {
        &self.conf
    }

    /// The functions' own store on this table, for a command that writes batches (replay).
    pub fn store(&self, retention: std::time::Duration) -> cfinv_core::dynamo::DynamoStore {
        cfinv_core::dynamo::DynamoStore::new(self.client.clone(), &self.target.table, retention)
    }

    /// Marks FAILED batch `batch_id` as replayed by `replay_id`, unless it is no longer FAILED
    /// or was replayed already (then `false`): two operators replaying at once make one batch.
    pub async fn claim_replay(&self, batch_id: &str, replay_id: &str) -> Result<bool> {
        let out = self
            .client
            .update_item()
            .table_name(&self.target.table)
            .set_key(Some(key(keys::batch_pk(batch_id), keys::META)))
            .update_expression(format!("SET {} = :new", attr::REPLAYED_BY))
            .condition_expression(format!(
                "#status = :failed AND attribute_not_exists({})",
                attr::REPLAYED_BY
            ))
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_values(":new", s(replay_id))
            .expression_attribute_values(":failed", s(BatchStatus::Failed.as_str()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.error(e)),
        }
    }

    /// Records on batch `replay_id` which batch it replays.
    pub async fn mark_replay_of(&self, replay_id: &str, batch_id: &str) -> Result<()> {
        self.client
            .update_item()
            .table_name(&self.target.table)
            .set_key(Some(key(keys::batch_pk(replay_id), keys::META)))
            .update_expression(format!("SET {} = :old", attr::REPLAY_OF))
            .condition_expression(format!("attribute_exists({})", attr::PK))
            .expression_attribute_values(":old", s(batch_id))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// The `byPath` items of one path, newest first: one per batch the path was in.
    pub async fn path_history(&self, distribution_id: &str, path: &str) -> Result<Vec<PathRecord>> {
        let query = self
            .query()
            .index_name(BY_PATH)
            .key_condition_expression(format!("{BY_PATH_PK} = :pk"))
            .expression_attribute_values(":pk", s(keys::path_index_pk(distribution_id, path)))
            .scan_index_forward(false);
        self.all(query)
            .await?
            .iter()
            .map(PathRecord::from_item)
            .collect()
    }

    /// The batches of a distribution opened in `[from, to)` (`to`: open-ended), newest first.
    pub async fn batches(
        &self,
        distribution_id: &str,
        from: OffsetDateTime,
        to: Option<OffsetDateTime>,
    ) -> Result<Vec<BatchRecord>> {
        let query = self.by_distribution(keys::dist_pk(distribution_id), from, to);
        self.all(query)
            .await?
            .iter()
            .map(BatchRecord::from_item)
            .collect()
    }

    /// The manual requests of every distribution made in `[from, to)` (`to`: open-ended),
    /// newest first.
    pub async fn requests(
        &self,
        from: OffsetDateTime,
        to: Option<OffsetDateTime>,
    ) -> Result<Vec<RequestRecord>> {
        let query = self.by_distribution(keys::MANUAL_REQUESTS.to_owned(), from, to);
        self.all(query)
            .await?
            .iter()
            .map(RequestRecord::from_item)
            .collect()
    }

    /// A `byDistribution` partition in `[from, to)` (`to`: open-ended), newest first.
    fn by_distribution(
        &self,
        pk: String,
        from: OffsetDateTime,
        to: Option<OffsetDateTime>,
    ) -> QueryFluentBuilder {
        // The sort key is `<time>#<id>`: a bare time sorts before every item of that time.
        let query = self
            .query()
            .index_name(BY_DISTRIBUTION)
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":from", s(timestamp(from)))
            .scan_index_forward(false);
        match to {
            Some(to) => query
                .key_condition_expression(format!(
                    "{BY_DISTRIBUTION_PK} = :pk AND {BY_DISTRIBUTION_SK} BETWEEN :from AND :to"
                ))
                .expression_attribute_values(":to", s(timestamp(to))),
            None => query.key_condition_expression(format!(
                "{BY_DISTRIBUTION_PK} = :pk AND {BY_DISTRIBUTION_SK} >= :from"
            )),
        }
    }

    /// Whether the table holds any batch of `distribution_id`, of any time.
    pub async fn knows_distribution(&self, distribution_id: &str) -> Result<bool> {
        let out = self
            .query()
            .index_name(BY_DISTRIBUTION)
            .key_condition_expression(format!("{BY_DISTRIBUTION_PK} = :pk"))
            .expression_attribute_values(":pk", s(keys::dist_pk(distribution_id)))
            .limit(1)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(out.count() > 0)
    }

    /// FAILED batches and failed object-changed executions, newest first.
    pub async fn failed(
        &self,
        since: Option<OffsetDateTime>,
    ) -> Result<(Vec<BatchRecord>, Vec<FailedEvent>)> {
        let query = self
            .query()
            .index_name(BY_STATUS)
            .expression_attribute_values(":s", s(BatchStatus::Failed.as_str()))
            .scan_index_forward(false);
        let query = match since {
            Some(since) => query
                .key_condition_expression(format!(
                    "{BY_STATUS_PK} = :s AND {BY_STATUS_SK} >= :since"
                ))
                .expression_attribute_values(":since", s(timestamp(since))),
            None => query.key_condition_expression(format!("{BY_STATUS_PK} = :s")),
        };
        let (mut batches, mut events) = (Vec::new(), Vec::new());
        for item in self.all(query).await? {
            if is_failed_event(&item) {
                events.push(FailedEvent::from_item(&item)?);
            } else {
                batches.push(BatchRecord::from_item(&item)?);
            }
        }
        Ok((batches, events))
    }

    /// Batches OPEN, CLOSED or SUBMITTED since before `before`, longest-waiting first.
    pub async fn stuck(&self, before: OffsetDateTime) -> Result<Vec<BatchRecord>> {
        let mut out = Vec::new();
        for status in [
            BatchStatus::Open,
            BatchStatus::Closed,
            BatchStatus::Submitted,
        ] {
            let query = self
                .query()
                .index_name(BY_STATUS)
                .key_condition_expression(format!(
                    "{BY_STATUS_PK} = :s AND {BY_STATUS_SK} < :before"
                ))
                .expression_attribute_values(":s", s(status.as_str()))
                .expression_attribute_values(":before", s(timestamp(before)));
            for item in self.all(query).await? {
                out.push(BatchRecord::from_item(&item)?);
            }
        }
        out.sort_by_key(|b| b.status_since);
        Ok(out)
    }

    /// A batch item and its committed plan; `None` if the table has no such batch.
    pub async fn planned(&self, batch_id: &str) -> Result<Option<Planned>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.target.table)
            .set_key(Some(key(keys::batch_pk(batch_id), keys::META)))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let batch = BatchRecord::from_item(&item)?;
        let chunks = match &batch.plan_id {
            Some(plan_id) => {
                let query = self
                    .query()
                    .key_condition_expression(format!(
                        "{} = :pk AND begins_with({}, :plan)",
                        attr::PK,
                        attr::SK
                    ))
                    .expression_attribute_values(":pk", s(keys::batch_pk(batch_id)))
                    .expression_attribute_values(":plan", s(keys::plan_prefix(plan_id)));
                self.all(query)
                    .await?
                    .iter()
                    .map(ChunkRecord::from_item)
                    .collect::<Result<_>>()?
            }
            None => Vec::new(),
        };
        Ok(Some(Planned { batch, chunks }))
    }

    /// The whole `BATCH#<id>` partition: the batch, its paths, and the chunks of its committed
    /// plan (an attempt that lost the commit race may have left chunks of another plan id).
    pub async fn batch_items(&self, batch_id: &str) -> Result<Option<BatchItems>> {
        let query = self
            .query()
            .key_condition_expression(format!("{} = :pk", attr::PK))
            .expression_attribute_values(":pk", s(keys::batch_pk(batch_id)));
        let (mut meta, mut paths, mut plan_items) = (None, Vec::new(), Vec::new());
        for item in self.all(query).await? {
            let sk = text(&item, attr::SK).map(str::to_owned);
            match sk {
                Some(sk) if sk == keys::META => {
                    meta = Some((BatchRecord::from_item(&item)?, plan_basis(&item)?))
                }
                Some(sk) if sk.starts_with(keys::PATH_PREFIX) => {
                    paths.push(PathRecord::from_item(&item)?)
                }
                Some(sk) if sk.starts_with(keys::PLAN_PREFIX) => plan_items.push((sk, item)),
                _ => {}
            }
        }
        let Some((batch, plan_basis)) = meta else {
            return Ok(None);
        };
        let committed = batch.plan_id.as_deref().map(keys::plan_prefix);
        let chunks = plan_items
            .iter()
            .filter(|(sk, _)| {
                committed
                    .as_ref()
                    .is_some_and(|p| sk.starts_with(p.as_str()))
            })
            .map(|(_, item)| ChunkRecord::from_item(item))
            .collect::<Result<_>>()?;
        // Path items sort by the hash of their path: sort them by the path itself.
        paths.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Some(BatchItems {
            batch,
            plan_basis,
            chunks,
            paths,
        }))
    }

    fn query(&self) -> QueryFluentBuilder {
        self.client.query().table_name(&self.target.table)
    }

    /// Every page of `query`.
    async fn all(&self, query: QueryFluentBuilder) -> Result<Vec<Item>> {
        let mut pages = query.into_paginator().send();
        let mut items = Vec::new();
        while let Some(page) = pages.next().await {
            items.extend(page.map_err(|e| self.error(e))?.items.unwrap_or_default());
        }
        Ok(items)
    }

    /// DynamoDB's errors in the operator's terms.
    fn error<E>(&self, e: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let t = &self.target;
        match &e {
            SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => Error::Unreachable {
                endpoint: t.endpoint_or_default(),
                hint: t.unreachable_hint(),
            },
            SdkError::TimeoutError(_) => Error::Unreachable {
                endpoint: t.endpoint_or_default(),
                hint: t.unreachable_hint(),
            },
            _ => match (e.code(), e.message()) {
                (Some("ResourceNotFoundException"), _) => Error::TableNotFound {
                    table: t.table.clone(),
                    region: t.region().to_owned(),
                    endpoint: t
                        .endpoint
                        .as_ref()
                        .map(|e| format!(" (endpoint {e})"))
                        .unwrap_or_default(),
                },
                (Some("ValidationException"), Some(m)) if m.contains("index") => {
                    Error::Dynamo(format!(
                        "{m} (table {}: is it a cf-invalidator audit table?)",
                        t.table
                    ))
                }
                (Some(code), Some(m)) => Error::Dynamo(format!("{code}: {m}")),
                _ => Error::Dynamo(error_chain(&e)),
            },
        }
    }
}
