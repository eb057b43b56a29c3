//! `cfinv replay <batch-id>`: a FAILED batch's stored paths, submitted again as a new batch.
//!
//! Step Functions redrives a failed execution only within 14 days of the failure (README,
//! "Redrive"); after that, or when the failed execution is gone, this is how a failed batch is
//! recovered. The new batch goes through the same machine as any other (debounce skipped,
//! plan, CreateInvalidation with its own caller references `<new batch id>#<n>`, poll), and the
//! audit links the two: `replayedBy` on the failed batch, `replayOf` on the new one. The failed
//! batch stays FAILED (its history is what happened); claiming it is conditional, so it is
//! replayed once. A replay that stopped between its claim and its start (a lost connection, a
//! killed process) is resumed by running it again: the claim names the new batch, every write
//! is idempotent, and the execution is named after the new batch, so it starts once.

use std::time::Duration;

use cfinv_core::collect::PathChange;
use cfinv_core::event::ChangeKind;
use cfinv_core::model::{BatchRef, BatchStatus, FlushRequest, new_batch_id};
use cfinv_core::store::JoinStore;
use serde::Serialize;
use time::OffsetDateTime;

use crate::queries::AuditTable;
use crate::records::PathRecord;
use crate::report::Answer;
use crate::{Error, Result, error_chain};

/// What a replay did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Replayed {
    pub batch_id: String,
    pub replay_batch_id: String,
    pub distribution_id: String,
    pub paths: usize,
    pub execution_arn: String,
}

impl Answer for Replayed {
    fn text(&self) -> String {
        format!(
            "batch {} replayed as {} on {}: {} path(s)\nexecution {}\nfollow it with: cfinv audit batch {}\n",
            self.batch_id,
            self.replay_batch_id,
            self.distribution_id,
            self.paths,
            self.execution_arn,
            self.replay_batch_id
        )
    }
}

/// Replays FAILED batch `batch_id` as a new batch and starts its execution.
pub async fn replay(
    table: &AuditTable,
    batch_id: &str,
    retention: Duration,
    now: OffsetDateTime,
) -> Result<Replayed> {
    let items = table
        .batch_items(batch_id)
        .await?
        .ok_or_else(|| Error::NoSuchBatch {
            batch_id: batch_id.to_owned(),
            table: table.target().table.clone(),
        })?;
    let batch = items.batch;
    if batch.status != BatchStatus::Failed {
        return Err(Error::Usage(format!(
            "batch {batch_id} is {}, not FAILED: only a failed batch is replayed",
            batch.status
        )));
    }
    let machine = batch
        .execution_arn
        .as_deref()
        .and_then(state_machine_of)
        .ok_or_else(|| {
            Error::Usage(format!(
                "batch {batch_id} names no execution, so its state machine is unknown"
            ))
        })?;
    let changes = items
        .paths
        .iter()
        .map(|p| change_of(p, &batch.distribution_id))
        .collect::<Result<Vec<_>>>()?;
    if changes.is_empty() {
        return Err(Error::Usage(format!(
            "batch {batch_id} holds no path: nothing to replay"
        )));
    }

    let replay = BatchRef {
        batch_id: match &batch.replayed_by {
            // Claimed by an earlier replay that may have stopped before it started its
            // execution: resume it (every write below is idempotent), unless it got further.
            Some(claimed) => {
                let started = table.batch_items(claimed).await?.map(|items| items.batch);
                if let Some(started) = started.filter(|b| b.status != BatchStatus::Open) {
                    return Err(replayed_already(batch_id, claimed, started.status.as_str()));
                }
                claimed.clone()
            }
            None => {
                let fresh = new_batch_id(&batch.distribution_id, now);
                if !table.claim_replay(batch_id, &fresh).await? {
                    return Err(Error::Usage(format!(
                        "batch {batch_id} was claimed by another replay just now, or is no longer \
                         FAILED (see cfinv audit batch {batch_id})"
                    )));
                }
                fresh
            }
        },
        distribution_id: batch.distribution_id.clone(),
    };
    let store = table.store(retention);
    let stored = |e: cfinv_core::Error| Error::Dynamo(e.to_string());
    store.create_batch(&replay, now).await.map_err(stored)?;
    for change in &changes {
        store
            .put_path(&replay.batch_id, change, now)
            .await
            .map_err(stored)?;
    }
    table.mark_replay_of(&replay.batch_id, batch_id).await?;

    // Flush at once: the paths are all in, there is nothing to wait for.
    let input = serde_json::to_string(&FlushRequest::new(replay.clone(), now, Duration::ZERO))
        .expect("a flush request is JSON");
    let sfn = aws_sdk_sfn::Client::new(table.sdk_config());
    let started = sfn
        .start_execution()
        .state_machine_arn(&machine)
        .name(&replay.batch_id)
        .input(&input)
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error()
                .is_some_and(|e| e.is_execution_already_exists())
            {
                return replayed_already(batch_id, &replay.batch_id, "its execution started");
            }
            Error::Usage(format!(
                "batch {} holds the paths, but its execution did not start ({}); start it with \
                 aws stepfunctions start-execution --state-machine-arn {machine} --name {} \
                 --input '{input}'",
                replay.batch_id,
                error_chain(&e),
                replay.batch_id,
            ))
        })?;
    Ok(Replayed {
        batch_id: batch_id.to_owned(),
        replay_batch_id: replay.batch_id,
        distribution_id: batch.distribution_id,
        paths: changes.len(),
        execution_arn: started.execution_arn().to_owned(),
    })
}

fn replayed_already(batch_id: &str, replay_id: &str, state: &str) -> Error {
    Error::Usage(format!(
        "batch {batch_id} was replayed already as {replay_id} ({state}): see cfinv audit batch {replay_id}"
    ))
}

/// The state machine of an execution ARN
/// (`arn:aws:states:<region>:<account>:execution:<machine>:<name>`).
pub fn state_machine_of(execution_arn: &str) -> Option<String> {
    let (head, rest) = execution_arn.split_once(":execution:")?;
    let (machine, _name) = rest.split_once(':')?;
    (!machine.is_empty()).then(|| format!("{head}:stateMachine:{machine}"))
}

/// A stored path item as the change it records, for the new batch.
pub fn change_of(p: &PathRecord, distribution_id: &str) -> Result<PathChange> {
    let change = match p.change.as_deref() {
        Some(stored) => stored.parse().map_err(|_| {
            Error::BadItem(format!(
                "path {} of batch {} has change {stored:?}",
                p.path, p.batch_id
            ))
        })?,
        None => ChangeKind::Created,
    };
    Ok(PathChange {
        distribution_id: distribution_id.to_owned(),
        path: p.path.clone(),
        bucket: p.bucket.clone().unwrap_or_default(),
        key: p.key.clone().unwrap_or_default(),
        version_id: p.version_id.clone(),
        etag: p.etag.clone(),
        sequencer: p.sequencer.clone(),
        event_time: p.event_time.clone(),
        event_id: None,
        change,
        reason: p.reason.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_machine_is_read_from_the_execution_arn() {
        assert_eq!(
            state_machine_of(
                "arn:aws:states:eu-west-1:123456789012:execution:cf-invalidator-InvalidateBatch:E1-20261130T010203Z-0a1b"
            )
            .as_deref(),
            Some("arn:aws:states:eu-west-1:123456789012:stateMachine:cf-invalidator-InvalidateBatch")
        );
        assert_eq!(
            state_machine_of("arn:aws:states:eu-west-1:1:stateMachine:m"),
            None
        );
        assert_eq!(state_machine_of("arn:aws:states:r:1:execution::n"), None);
    }

    fn record(change: Option<&str>) -> PathRecord {
        PathRecord {
            path: "/a%20b".into(),
            batch_id: "E1-b".into(),
            bucket: Some("site".into()),
            key: Some("a b".into()),
            change: change.map(str::to_owned),
            version_id: None,
            etag: Some("e".into()),
            sequencer: Some("01".into()),
            event_time: None,
            event_ids: vec!["ev".into()],
            first_seen_at: None,
            last_seen_at: None,
            reason: None,
        }
    }

    #[test]
    fn a_stored_path_becomes_the_same_change_without_its_event_ids() {
        let c = change_of(&record(Some("Deleted")), "E1").unwrap();
        assert_eq!(
            (c.path.as_str(), c.key.as_str(), c.change, c.event_id),
            ("/a%20b", "a b", ChangeKind::Deleted, None)
        );
        assert_eq!(c.etag.as_deref(), Some("e"));
        let err = change_of(&record(Some("Moved")), "E1").unwrap_err();
        assert!(err.to_string().contains("Moved"), "{err}");
    }
}
