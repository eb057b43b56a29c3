//! What a batch's flush execution writes: its close, its plan, the invalidations submitted
//! and their completion (create-invalidation and poll-status).

use std::collections::HashSet;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::ReturnValue;
use time::OffsetDateTime;

use super::update::{self, Update};
use super::{DynamoStore, conditional, store_error};
use crate::distribution::PlanBasis;
use crate::lifecycle::{self, Transition};
use crate::model::{Batch, BatchRef, BatchStatus, Chunk, PlanRef};
use crate::plan::Plan;
use crate::schema::item::{chunk_item, n, number, s, string_set, text, time};
use crate::schema::{ChunkStatus, attr, keys};
use crate::store::{BatchPaths, JoinStore, PlanStore, PollStore, SubmitStore};
use crate::{Error, Result};

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
                &[attr::SK, attr::PATHS, attr::INVALIDATION_ID, attr::STATUS],
            )
            .await?;
        let mut out = items
            .iter()
            .map(Chunk::try_from)
            .collect::<Result<Vec<_>>>()?;
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
        let update = Update::default()
            .set(attr::LAST_ERROR, ":e", s(lifecycle::task_error(error)))
            .set(attr::LAST_ERROR_AT, ":now", time(now))
            .add(attr::ATTEMPTS, ":one", n(1));
        let res = self
            .update_batch(batch_id, update)
            .condition_expression(format!("attribute_exists({})", attr::PK))
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
        // Creates the item too if the opener died before writing it: the batch still closes,
        // and its opening time comes from its id, not from the close.
        let update = Update::default()
            .set(attr::CLOSED_AT, ":now", time(now))
            .set(attr::EXECUTION_ARN, ":arn", s(execution_arn))
            .writes(update::transition(
                &Transition::to(BatchStatus::Closed, now),
                &batch.batch_id,
                Some(self.identity(batch, now)),
            ));
        let res = self
            .update_batch(&batch.batch_id, update)
            .condition_expression(format!("attribute_not_exists({})", attr::CLOSED_AT))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => Batch::try_from(&out.attributes.unwrap_or_default()),
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
                &[attr::PATH, attr::EVENT_IDS, attr::MORE_EVENTS],
            )
            .await?;
        let mut events = HashSet::new();
        let mut more = 0;
        let mut paths = Vec::with_capacity(items.len());
        for item in &items {
            let path = text(item, attr::PATH).ok_or_else(|| {
                Error::StoreError(format!("a path item of {batch_id} has no path"))
            })?;
            paths.push(path.to_owned());
            events.extend(string_set(item, attr::EVENT_IDS).iter().cloned());
            more += number::<usize>(item, attr::MORE_EVENTS).unwrap_or(0);
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
        basis: Option<&PlanBasis>,
        now: OffsetDateTime,
    ) -> Result<Vec<Chunk>> {
        let plan_id = uuid::Uuid::now_v7().simple().to_string()[24..].to_owned();
        let chunks = Chunk::planned(&plan_id, plan);
        for chunk in &chunks {
            let mut item = chunk_item(batch_id, chunk);
            item.insert(attr::EXPIRES_AT.to_owned(), self.expires_at(now));
            self.put(item).await?;
        }
        let update = Update::default()
            .set(attr::PLAN_ID, ":plan", s(&plan_id))
            .set(attr::PLANNED_CHUNKS, ":chunks", n(chunks.len()))
            .set(attr::PATHS_RECEIVED, ":received", n(received.paths.len()))
            .set(attr::EVENTS_RECEIVED, ":events", n(received.events))
            .set(attr::PATHS_PLANNED, ":planned", n(plan.billed_paths()))
            .set(attr::PLANNED_AT, ":now", time(now));
        let update = match basis {
            Some(basis) => update.set(attr::PLAN_BASIS, ":basis", s(&basis_json(basis)?)),
            None => update,
        };
        let res = self
            .update_batch(batch_id, update)
            .condition_expression(format!(
                "attribute_exists({}) AND attribute_not_exists({})",
                attr::PK,
                attr::PLAN_ID
            ))
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
        let update = Update::default()
            .set(attr::INVALIDATION_ID, ":id", s(invalidation_id))
            .set(attr::STATUS, ":s", s(ChunkStatus::InProgress.as_str()))
            .set_if_absent(attr::CREATED_AT, ":now", time(now));
        self.update_chunk(batch_id, chunk, update).await
    }

    async fn mark_submitted(
        &self,
        batch_id: &str,
        billed: usize,
        now: OffsetDateTime,
    ) -> Result<()> {
        let update = Update::default()
            .set_if_absent(attr::SUBMITTED_AT, ":now", time(now))
            .set(attr::PATHS_BILLED, ":billed", n(billed))
            .writes(update::transition(
                &Transition::to(BatchStatus::Submitted, now),
                batch_id,
                None,
            ));
        let res = self
            .update_batch(batch_id, update)
            .condition_expression(format!(
                "attribute_exists({}) AND attribute_not_exists({})",
                attr::PK,
                attr::COMPLETED_AT
            ))
            .send()
            .await;
        conditional(res).map(|_| ())
    }

    async fn mark_empty(&self, batch_id: &str, now: OffsetDateTime) -> Result<()> {
        let update = Update::default()
            .writes(update::transition(
                &Transition::to(BatchStatus::Empty, now),
                batch_id,
                None,
            ))
            .set_if_absent(attr::EMPTY_AT, ":now", time(now));
        let res = self
            .update_batch(batch_id, update)
            .condition_expression(format!(
                "attribute_exists({}) AND (attribute_not_exists({}) OR {} = :none)",
                attr::PK,
                attr::PLAN_ID,
                attr::PLANNED_CHUNKS,
            ))
            .expression_attribute_values(":none", n(0))
            .send()
            .await;
        conditional(res).map(|_| ())
    }
}

fn basis_json(basis: &PlanBasis) -> Result<String> {
    serde_json::to_string(basis)
        .map_err(|e| Error::StoreError(format!("cannot write the plan's basis: {e}")))
}

impl PollStore for DynamoStore {
    async fn poll_window(
        &self,
        batch_id: &str,
        epoch: u32,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime> {
        let update = Update::default().set(attr::POLL_EPOCH, ":e", n(epoch)).set(
            attr::POLL_SINCE,
            ":now",
            time(now),
        );
        let res = self
            .update_batch(batch_id, update)
            .condition_expression(format!(
                "attribute_exists({pk}) AND (attribute_not_exists({e}) OR {e} < :e)",
                pk = attr::PK,
                e = attr::POLL_EPOCH
            ))
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
        let update = Update::default()
            .set(attr::STATUS, ":s", s(ChunkStatus::Completed.as_str()))
            .set_if_absent(attr::COMPLETED_AT, ":now", time(now));
        self.update_chunk(batch_id, chunk, update).await
    }

    async fn mark_completed(&self, batch_id: &str, now: OffsetDateTime) -> Result<()> {
        let update = Update::default()
            .writes(update::transition(
                &Transition::to(BatchStatus::Completed, now),
                batch_id,
                None,
            ))
            .set_if_absent(attr::COMPLETED_AT, ":now", time(now));
        self.update_batch(batch_id, update)
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
