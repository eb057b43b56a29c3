//! poll-status: asks CloudFront how each invalidation of a batch is doing, and completes the
//! batch when all are done.
//!
//! The poll loop is bounded by a window stored in the table, not by a counter in the execution
//! input: a redrive resumes with the failed state's original input, so an input-borne bound
//! would fail again at once. Each redrive (`$$.Execution.RedriveCount`) opens a new window.

use std::time::Duration;

use cfinv_core::cdn::{
    Cdn, FAST_POLL_SECONDS, FAST_POLL_WINDOW_SECONDS, InvalidationStatus, fast_poll_seconds,
};
use cfinv_core::metrics::{BATCHES_COMPLETED, Metrics, OPEN_TO_COMPLETED_SECONDS};
use cfinv_core::model::{BatchRef, Clock, batch_opened_at};
use cfinv_core::setup::env_number;
use cfinv_core::store::PollStore;
use cfinv_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Poll rounds one window may take. A Standard execution's history holds at most 25,000 events
/// ("If the execution history reaches this quota, the execution will fail", Step Functions
/// quotas), and a redrive adds to the same history. One round (Wait, Poll task, Choice) writes
/// 9 events, so 400 rounds are 3,600 events: room for the submit, its retries and several
/// redriven windows.
pub const MAX_ROUNDS_PER_WINDOW: u64 = 400;

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long one poll window may last before the execution fails for an operator to look.
    pub max_wait: Duration,
    /// How long the state machine waits between polls (`waitSeconds` in the output) once the
    /// window's fast polls are over, unless the window would then take more than
    /// [`MAX_ROUNDS_PER_WINDOW`] rounds.
    pub poll_seconds: u64,
}

impl Settings {
    /// `MAX_POLL_MINUTES` (default 60) and `POLL_SECONDS` (default 60).
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            max_wait: Duration::from_secs(60 * env_number("MAX_POLL_MINUTES", 60)?),
            poll_seconds: env_number("POLL_SECONDS", 60)?,
        })
    }

    /// The wait before the next poll, `polling_for` into the window: [`FAST_POLL_SECONDS`] in
    /// its first [`FAST_POLL_WINDOW_SECONDS`] (never longer than `poll_seconds`), then
    /// `poll_seconds`, stretched so the window has at most [`MAX_ROUNDS_PER_WINDOW`] rounds, the
    /// fast ones included.
    pub fn wait_seconds(&self, polling_for: Duration) -> u64 {
        let fast_rounds = FAST_POLL_WINDOW_SECONDS.div_ceil(FAST_POLL_SECONDS);
        let steady = self.poll_seconds.max(
            self.max_wait
                .as_secs()
                .div_ceil(MAX_ROUNDS_PER_WINDOW - fast_rounds),
        );
        if polling_for.as_secs() < FAST_POLL_WINDOW_SECONDS {
            fast_poll_seconds(steady)
        } else {
            steady
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollInput {
    #[serde(flatten)]
    pub batch: BatchRef,
    #[serde(default)]
    pub redrive_count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PollOutput {
    pub batch_id: String,
    pub distribution_id: String,
    pub done: bool,
    pub pending: usize,
    pub wait_seconds: u64,
}

pub async fn poll<S: PollStore, C: Cdn>(
    store: &S,
    cdn: &C,
    clock: &dyn Clock,
    settings: &Settings,
    metrics: &Metrics,
    input: PollInput,
) -> Result<PollOutput> {
    let PollInput {
        batch,
        redrive_count,
    } = input;
    let result = poll_batch(store, cdn, clock, settings, metrics, &batch, redrive_count).await;
    if let Err(error) = &result
        && let Err(e) = store
            .record_error(&batch.batch_id, error, clock.now())
            .await
    {
        tracing::error!(batch = %batch.batch_id, error = %e, "could not record the error on the batch");
    }
    result
}

async fn poll_batch<S: PollStore, C: Cdn>(
    store: &S,
    cdn: &C,
    clock: &dyn Clock,
    settings: &Settings,
    metrics: &Metrics,
    batch: &BatchRef,
    redrive_count: u32,
) -> Result<PollOutput> {
    let chunks = store.load_plan(&batch.batch_id).await?;
    let mut pending = 0;
    for chunk in chunks.iter().filter(|c| !c.completed) {
        let id = chunk.invalidation_id.as_deref().ok_or_else(|| {
            Error::InvalidInput(format!(
                "chunk {} of batch {} was never submitted",
                chunk.index, batch.batch_id
            ))
        })?;
        match cdn.invalidation_status(&batch.distribution_id, id).await? {
            InvalidationStatus::Completed => {
                store
                    .mark_chunk_completed(&batch.batch_id, chunk.index, clock.now())
                    .await?;
                tracing::info!(batch = %batch.batch_id, invalidation = id, "invalidation completed");
            }
            InvalidationStatus::InProgress => pending += 1,
        }
    }
    let out = |done, wait_seconds| PollOutput {
        batch_id: batch.batch_id.clone(),
        distribution_id: batch.distribution_id.clone(),
        done,
        pending,
        wait_seconds,
    };
    if pending == 0 {
        let now = clock.now();
        store.mark_completed(&batch.batch_id, now).await?;
        tracing::info!(batch = %batch.batch_id, "batch completed");
        let mut figures = vec![(BATCHES_COMPLETED, 1)];
        match batch_opened_at(&batch.batch_id) {
            Some(opened) => figures.push((
                OPEN_TO_COMPLETED_SECONDS,
                (now - opened).whole_seconds().max(0) as u64,
            )),
            None => {
                tracing::warn!(batch = %batch.batch_id, "batch id holds no opening time: no OpenToCompletedSeconds")
            }
        }
        metrics.publish_for(&batch.distribution_id, now, &figures);
        return Ok(out(true, 0));
    }
    let now = clock.now();
    let since = store
        .poll_window(&batch.batch_id, redrive_count, now)
        .await?;
    let polling_for = now - since;
    if polling_for > settings.max_wait {
        return Err(Error::InvalidationNotCompleted(format!(
            "{pending} invalidation(s) of batch {} still in progress after {}s; redrive to keep polling",
            batch.batch_id,
            settings.max_wait.as_secs()
        )));
    }
    let polling_for = Duration::try_from(polling_for).unwrap_or_default();
    Ok(out(false, settings.wait_seconds(polling_for)))
}

#[cfg(test)]
mod tests {
    use cfinv_core::cdn::Cdn;
    use cfinv_core::memory::{FakeCdn, ManualClock, MemoryStore};
    use cfinv_core::model::BatchStatus;
    use cfinv_core::plan::Plan;
    use cfinv_core::store::{BatchPaths, JoinStore, SubmitStore};
    use time::macros::datetime;

    use super::*;

    /// Opened 10 s before the tests' clock starts (the opening time is read from the id).
    const BATCH: &str = "E1-20261125T095950Z-0a1b2c3d";

    const SETTINGS: Settings = Settings {
        max_wait: Duration::from_secs(600),
        poll_seconds: 5,
    };

    async fn submitted(store: &MemoryStore, cdn: &FakeCdn, clock: &ManualClock) -> PollInput {
        let batch = BatchRef {
            batch_id: BATCH.into(),
            distribution_id: "E1".into(),
        };
        store.create_batch(&batch, clock.now()).await.unwrap();
        let plan = Plan {
            chunks: vec![vec!["/a".into()], vec!["/b".into()]],
        };
        let chunks = store
            .commit_plan(BATCH, &plan, &BatchPaths::default(), None, clock.now())
            .await
            .unwrap();
        for c in chunks {
            let id = cdn
                .create_invalidation("E1", &format!("{BATCH}#{}", c.index), &c.paths)
                .await
                .unwrap();
            store
                .record_invalidation(BATCH, c.index, &id, clock.now())
                .await
                .unwrap();
        }
        PollInput {
            batch,
            redrive_count: 0,
        }
    }

    /// The rounds a window takes when nothing completes: polls until `max_wait` has passed.
    fn rounds(settings: &Settings) -> (u64, Vec<u64>) {
        let (mut at, mut waits) = (0, Vec::new());
        while at <= settings.max_wait.as_secs() {
            let wait = settings.wait_seconds(Duration::from_secs(at));
            waits.push(wait);
            at += wait;
        }
        (waits.len() as u64, waits)
    }

    #[test]
    fn a_window_never_takes_more_rounds_than_the_history_allows() {
        // The template's bounds: PollSeconds >= 1, MaxPollMinutes up to a day.
        for (minutes, poll_seconds) in [(60, 1), (60, 60), (1440, 1), (1, 1), (1440, 60)] {
            let settings = Settings {
                max_wait: Duration::from_secs(60 * minutes),
                poll_seconds,
            };
            let (rounds, waits) = rounds(&settings);
            assert!(
                rounds <= MAX_ROUNDS_PER_WINDOW,
                "{minutes} min / {poll_seconds} s: {rounds}"
            );
            assert!(
                waits
                    .iter()
                    .all(|w| *w >= poll_seconds.min(FAST_POLL_SECONDS))
            );
        }
        let every_second_for_an_hour = Settings {
            max_wait: Duration::from_secs(3600),
            poll_seconds: 1,
        };
        assert_eq!(
            every_second_for_an_hour.wait_seconds(Duration::from_secs(90)),
            10
        );
    }

    #[test]
    fn the_first_minute_is_polled_every_five_seconds_then_every_poll_seconds() {
        let deployed = Settings {
            max_wait: Duration::from_secs(3600),
            poll_seconds: 60,
        };
        let (_, waits) = rounds(&deployed);
        assert_eq!(waits[..12], [5; 12]);
        assert!(waits[12..].iter().all(|w| *w == 60), "{waits:?}");
        // PollSeconds shorter than the fast polls' wait keeps its own.
        let quick = Settings {
            max_wait: Duration::from_secs(600),
            poll_seconds: 2,
        };
        assert_eq!(quick.wait_seconds(Duration::ZERO), 2);
    }

    #[tokio::test]
    async fn in_progress_keeps_waiting_and_completed_completes_the_batch() {
        let (store, cdn, clock) = (
            MemoryStore::new(),
            FakeCdn::default(),
            ManualClock::at(datetime!(2026-11-25 10:00 UTC)),
        );
        let input = submitted(&store, &cdn, &clock).await;
        let metrics = Metrics::recording("prod");
        let out = poll(&store, &cdn, &clock, &SETTINGS, &metrics, input.clone())
            .await
            .unwrap();
        assert_eq!((out.done, out.pending, out.wait_seconds), (false, 2, 5));
        cdn.complete_all();
        let out = poll(&store, &cdn, &clock, &SETTINGS, &metrics, input)
            .await
            .unwrap();
        assert!(out.done);
        assert_eq!(
            store.batch(BATCH).unwrap().batch.status,
            BatchStatus::Completed
        );
        let lines = metrics.lines();
        assert_eq!(lines.len(), 1, "only the completing poll publishes");
        assert_eq!(lines[0]["DistributionId"], "E1");
        assert_eq!(lines[0]["BatchesCompleted"], 1);
        assert_eq!(lines[0]["OpenToCompletedSeconds"], 10);
        let definition = &lines[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][1];
        assert_eq!(
            (&definition["Name"], &definition["Unit"]),
            (&"OpenToCompletedSeconds".into(), &"Seconds".into())
        );
    }

    #[tokio::test]
    async fn the_poll_window_ends_in_a_named_error_and_a_redrive_opens_a_new_one() {
        let (store, cdn, clock) = (
            MemoryStore::new(),
            FakeCdn::default(),
            ManualClock::at(datetime!(2026-11-25 10:00 UTC)),
        );
        let input = submitted(&store, &cdn, &clock).await;
        let metrics = Metrics::recording("prod");
        poll(&store, &cdn, &clock, &SETTINGS, &metrics, input.clone())
            .await
            .unwrap();
        clock.advance(601);
        let err = poll(&store, &cdn, &clock, &SETTINGS, &metrics, input.clone())
            .await
            .unwrap_err();
        assert_eq!(err.name(), "InvalidationNotCompleted");
        assert!(
            store.batch(BATCH).unwrap().last_error.is_some(),
            "the error is on the batch item"
        );
        // Redriven: same input but RedriveCount 1, so polling resumes instead of failing again.
        let redriven = PollInput {
            redrive_count: 1,
            ..input
        };
        assert!(
            !poll(&store, &cdn, &clock, &SETTINGS, &metrics, redriven)
                .await
                .unwrap()
                .done
        );
    }
}
