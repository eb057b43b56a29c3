//! create-invalidation: closes a batch, plans the cheapest valid path set, stores the plan, and
//! submits one CreateInvalidation per chunk.
//!
//! Idempotent end to end: the close is conditional, the plan is committed once and replayed as
//! stored on every retry or redrive, and each chunk's `CallerReference` is `<batchId>#<n>`, so
//! CloudFront itself returns the existing invalidation when a retry repeats a request.

use cfinv_core::cdn::Cdn;
use cfinv_core::model::{BatchRef, Clock, keys};
use cfinv_core::plan::{PlanOptions, plan};
use cfinv_core::store::BatchStore;
use cfinv_core::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub plan: PlanOptions,
    /// How long the state machine waits before the first poll (`waitSeconds` in the output).
    pub poll_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitInput {
    #[serde(flatten)]
    pub batch: BatchRef,
    /// `$$.Execution.Id`, recorded on the batch so the audit trail links to the console.
    #[serde(default)]
    pub execution_arn: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitOutput {
    pub batch_id: String,
    pub distribution_id: String,
    pub invalidation_ids: Vec<String>,
    pub billed_paths: usize,
    pub wait_seconds: u64,
}

/// Submits the batch; on failure the error is written to the batch item before it is returned.
pub async fn submit<S: BatchStore, C: Cdn>(
    store: &S,
    cdn: &C,
    clock: &dyn Clock,
    settings: &Settings,
    input: SubmitInput,
) -> Result<SubmitOutput> {
    match submit_batch(store, cdn, clock, settings, &input).await {
        Ok(out) => Ok(out),
        Err(error) => {
            tracing::error!(batch = %input.batch.batch_id, error = %error, kind = error.name(), "submit failed");
            if let Err(e) = store
                .record_error(&input.batch.batch_id, &error, clock.now())
                .await
            {
                tracing::error!(batch = %input.batch.batch_id, error = %e, "could not record the error on the batch");
            }
            Err(error)
        }
    }
}

async fn submit_batch<S: BatchStore, C: Cdn>(
    store: &S,
    cdn: &C,
    clock: &dyn Clock,
    settings: &Settings,
    input: &SubmitInput,
) -> Result<SubmitOutput> {
    let SubmitInput {
        batch: batch_ref,
        execution_arn,
    } = input;
    let batch = store
        .close_batch(batch_ref, clock.now(), execution_arn)
        .await?;
    if batch.distribution_id != batch_ref.distribution_id {
        return Err(Error::InvalidInput(format!(
            "batch {} belongs to {}, not {}",
            batch.batch_id, batch.distribution_id, batch_ref.distribution_id
        )));
    }
    store
        .delete_pointer(&batch.distribution_id, &batch.batch_id)
        .await?;

    let chunks = match batch.plan {
        Some(_) => store.load_plan(&batch.batch_id).await?,
        None => {
            let received = store.batch_paths(&batch.batch_id).await?;
            let planned = plan(received.paths.iter().cloned(), &settings.plan);
            tracing::info!(
                batch = %batch.batch_id,
                received = received.paths.len(),
                events = received.events,
                planned = planned.billed_paths(),
                chunks = planned.chunks.len(),
                "planned"
            );
            store
                .commit_plan(&batch.batch_id, &planned, &received, clock.now())
                .await?
        }
    };

    let mut invalidation_ids = Vec::with_capacity(chunks.len());
    for chunk in &chunks {
        let id = match &chunk.invalidation_id {
            Some(id) => id.clone(),
            None => {
                let reference = keys::caller_reference(&batch.batch_id, chunk.index);
                let id = cdn
                    .create_invalidation(&batch.distribution_id, &reference, &chunk.paths)
                    .await?;
                tracing::info!(batch = %batch.batch_id, invalidation = %id, caller_reference = %reference, paths = chunk.paths.len(), "invalidation created");
                store
                    .record_invalidation(&batch.batch_id, chunk.index, &id, clock.now())
                    .await?;
                id
            }
        };
        invalidation_ids.push(id);
    }
    let billed_paths = chunks.iter().map(|c| c.paths.len()).sum();
    store
        .mark_submitted(&batch.batch_id, billed_paths, clock.now())
        .await?;
    Ok(SubmitOutput {
        batch_id: batch.batch_id,
        distribution_id: batch.distribution_id,
        invalidation_ids,
        billed_paths,
        wait_seconds: settings.poll_seconds,
    })
}
