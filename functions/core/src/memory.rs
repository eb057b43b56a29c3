//! In-memory store (every role of `store.rs`) and `Cdn` for the functions' unit tests. They
//! keep the same conditional semantics as the DynamoDB adapter and CloudFront (CallerReference
//! idempotency), and let a test run code between two store calls to stage races.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use time::OffsetDateTime;

use crate::cdn::{Cdn, InvalidationStatus};
use crate::collect::PathChange;
use crate::model::{
    Batch, BatchRef, BatchStatus, Chunk, MAX_EVENT_IDS_PER_PATH, OpenPointer, PlanRef,
};
use crate::plan::Plan;
use crate::store::{
    BatchPaths, JoinStore, Outcome, OutcomeStore, PlanStore, PointerStore, PollStore, SubmitStore,
    SweepStore,
};
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct StoredBatch {
    pub batch: Batch,
    pub closed: bool,
    pub completed: bool,
    pub billed: Option<usize>,
    pub last_error: Option<String>,
    pub attempts: u32,
    pub outcome_at: Option<OffsetDateTime>,
}

impl StoredBatch {
    fn open(batch: &BatchRef, opened_at: OffsetDateTime) -> Self {
        StoredBatch {
            batch: Batch {
                batch_id: batch.batch_id.clone(),
                distribution_id: batch.distribution_id.clone(),
                status: BatchStatus::Open,
                opened_at,
                plan: None,
                submitted_at: None,
                poll_epoch: None,
                poll_since: None,
            },
            closed: false,
            completed: false,
            billed: None,
            last_error: None,
            attempts: 0,
            outcome_at: None,
        }
    }
}

/// A clock the test moves by hand.
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn at(start: OffsetDateTime) -> Self {
        ManualClock(Mutex::new(start))
    }

    pub fn advance(&self, seconds: i64) {
        *self.0.lock().unwrap() += time::Duration::seconds(seconds);
    }
}

impl crate::model::Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

#[derive(Default)]
struct State {
    pointers: HashMap<String, OpenPointer>,
    batches: HashMap<String, StoredBatch>,
    /// batch -> path -> event ids
    paths: HashMap<String, BTreeMap<String, HashSet<String>>>,
    /// batch -> events beyond a path's kept ids (see `MAX_EVENT_IDS_PER_PATH`)
    more_events: HashMap<String, usize>,
    /// (batch, plan id) -> chunks
    plans: HashMap<(String, String), Vec<Chunk>>,
    failed_events: HashMap<String, Outcome>,
    calls: Vec<&'static str>,
}

type Hook = Box<dyn Fn(&MemoryStore, &'static str) + Send + Sync>;

/// A store whose `hook` runs before every call (outside the lock), to stage races.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    hook: Mutex<Option<Hook>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `hook(store, operation)` before each operation, until cleared.
    pub fn set_hook(&self, hook: impl Fn(&MemoryStore, &'static str) + Send + Sync + 'static) {
        *self.hook.lock().unwrap() = Some(Box::new(hook));
    }

    pub fn clear_hook(&self) {
        *self.hook.lock().unwrap() = None;
    }

    fn enter(&self, op: &'static str) {
        let hook = self.hook.lock().unwrap().take();
        if let Some(h) = &hook {
            h(self, op);
        }
        let mut slot = self.hook.lock().unwrap();
        if slot.is_none() {
            *slot = hook;
        }
        self.state.lock().unwrap().calls.push(op);
    }

    pub fn batch(&self, batch_id: &str) -> Option<StoredBatch> {
        self.state.lock().unwrap().batches.get(batch_id).cloned()
    }

    pub fn batches(&self) -> Vec<StoredBatch> {
        let mut all: Vec<_> = self
            .state
            .lock()
            .unwrap()
            .batches
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.batch.batch_id.cmp(&b.batch.batch_id));
        all
    }

    pub fn pointer(&self, distribution_id: &str) -> Option<OpenPointer> {
        self.state
            .lock()
            .unwrap()
            .pointers
            .get(distribution_id)
            .cloned()
    }

    pub fn paths_of(&self, batch_id: &str) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .paths
            .get(batch_id)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn failed_events(&self) -> Vec<Outcome> {
        self.state
            .lock()
            .unwrap()
            .failed_events
            .values()
            .cloned()
            .collect()
    }

    /// Forces a batch into a status (e.g. to stage a close by another process).
    pub fn set_status(&self, batch_id: &str, status: BatchStatus) {
        let mut st = self.state.lock().unwrap();
        let b = st.batches.get_mut(batch_id).expect("batch exists");
        b.batch.status = status;
        b.closed |= matches!(
            status,
            BatchStatus::Closed | BatchStatus::Submitted | BatchStatus::Completed
        );
    }

    pub fn calls(&self, op: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| **c == op)
            .count()
    }
}

impl PointerStore for MemoryStore {
    async fn get_pointer(&self, distribution_id: &str) -> Result<Option<OpenPointer>> {
        self.enter("get_pointer");
        Ok(self.pointer(distribution_id))
    }

    async fn swap_pointer(
        &self,
        distribution_id: &str,
        new: &OpenPointer,
        replacing: Option<&str>,
    ) -> Result<bool> {
        self.enter("swap_pointer");
        let mut st = self.state.lock().unwrap();
        let current = st
            .pointers
            .get(distribution_id)
            .map(|p| p.batch_id.as_str());
        if current != replacing {
            return Ok(false);
        }
        st.pointers.insert(distribution_id.to_owned(), new.clone());
        Ok(true)
    }

    async fn delete_pointer(&self, distribution_id: &str, batch_id: &str) -> Result<()> {
        self.enter("delete_pointer");
        let mut st = self.state.lock().unwrap();
        if st
            .pointers
            .get(distribution_id)
            .is_some_and(|p| p.batch_id == batch_id)
        {
            st.pointers.remove(distribution_id);
        }
        Ok(())
    }
}

impl JoinStore for MemoryStore {
    async fn create_batch(&self, batch: &BatchRef, opened_at: OffsetDateTime) -> Result<()> {
        self.enter("create_batch");
        let mut st = self.state.lock().unwrap();
        st.batches
            .entry(batch.batch_id.clone())
            .or_insert_with(|| StoredBatch::open(batch, opened_at));
        Ok(())
    }

    async fn get_batch(&self, batch_id: &str) -> Result<Option<Batch>> {
        self.enter("get_batch");
        Ok(self.batch(batch_id).map(|b| b.batch))
    }

    async fn put_path(
        &self,
        batch_id: &str,
        change: &PathChange,
        _now: OffsetDateTime,
    ) -> Result<()> {
        self.enter("put_path");
        let mut st = self.state.lock().unwrap();
        let ids = st
            .paths
            .entry(batch_id.to_owned())
            .or_default()
            .entry(change.path.clone())
            .or_default();
        match &change.event_id {
            Some(id) if ids.len() >= MAX_EVENT_IDS_PER_PATH && !ids.contains(id) => {
                *st.more_events.entry(batch_id.to_owned()).or_default() += 1;
            }
            id => ids.extend(id.clone()),
        }
        Ok(())
    }
}

impl PlanStore for MemoryStore {
    async fn load_plan(&self, batch_id: &str) -> Result<Vec<Chunk>> {
        self.enter("load_plan");
        let st = self.state.lock().unwrap();
        let plan = st
            .batches
            .get(batch_id)
            .and_then(|b| b.batch.plan.clone())
            .ok_or_else(|| Error::StoreError(format!("batch {batch_id} has no committed plan")))?;
        Ok(st.plans[&(batch_id.to_owned(), plan.plan_id)].clone())
    }

    async fn record_error(
        &self,
        batch_id: &str,
        error: &Error,
        _now: OffsetDateTime,
    ) -> Result<()> {
        self.enter("record_error");
        let mut st = self.state.lock().unwrap();
        if let Some(b) = st.batches.get_mut(batch_id) {
            b.last_error = Some(format!("{}: {error}", error.name()));
            b.attempts += 1;
        }
        Ok(())
    }
}

impl SubmitStore for MemoryStore {
    async fn close_batch(
        &self,
        batch: &BatchRef,
        now: OffsetDateTime,
        _execution_arn: &str,
    ) -> Result<Batch> {
        self.enter("close_batch");
        let mut st = self.state.lock().unwrap();
        let stored = st
            .batches
            .entry(batch.batch_id.clone())
            .or_insert_with(|| StoredBatch::open(batch, now));
        if !stored.closed {
            stored.closed = true;
            stored.batch.status = BatchStatus::Closed;
        }
        Ok(stored.batch.clone())
    }

    async fn batch_paths(&self, batch_id: &str) -> Result<BatchPaths> {
        self.enter("batch_paths");
        let st = self.state.lock().unwrap();
        let paths = st.paths.get(batch_id).cloned().unwrap_or_default();
        let events: HashSet<&String> = paths.values().flatten().collect();
        Ok(BatchPaths {
            events: events.len() + st.more_events.get(batch_id).copied().unwrap_or(0),
            paths: paths.keys().cloned().collect(),
        })
    }

    async fn commit_plan(
        &self,
        batch_id: &str,
        plan: &Plan,
        _received: &BatchPaths,
        _now: OffsetDateTime,
    ) -> Result<Vec<Chunk>> {
        self.enter("commit_plan");
        let plan_id = format!("p{}", self.calls("commit_plan"));
        let chunks = Chunk::planned(&plan_id, plan);
        let mut st = self.state.lock().unwrap();
        st.plans
            .insert((batch_id.to_owned(), plan_id.clone()), chunks.clone());
        let stored = st
            .batches
            .get_mut(batch_id)
            .ok_or_else(|| Error::StoreError("no batch".into()))?;
        match &stored.batch.plan {
            Some(committed) => {
                let key = (batch_id.to_owned(), committed.plan_id.clone());
                Ok(st.plans[&key].clone())
            }
            None => {
                stored.batch.plan = Some(PlanRef {
                    plan_id,
                    chunks: chunks.len() as u32,
                });
                Ok(chunks)
            }
        }
    }

    async fn record_invalidation(
        &self,
        batch_id: &str,
        chunk: u32,
        invalidation_id: &str,
        _now: OffsetDateTime,
    ) -> Result<()> {
        self.enter("record_invalidation");
        self.with_chunk(batch_id, chunk, |c| {
            c.invalidation_id = Some(invalidation_id.to_owned())
        })
    }

    async fn mark_submitted(
        &self,
        batch_id: &str,
        billed: usize,
        now: OffsetDateTime,
    ) -> Result<()> {
        self.enter("mark_submitted");
        let mut st = self.state.lock().unwrap();
        if let Some(b) = st.batches.get_mut(batch_id).filter(|b| !b.completed) {
            b.batch.status = BatchStatus::Submitted;
            b.batch.submitted_at.get_or_insert(now);
            b.billed = Some(billed);
        }
        Ok(())
    }

    async fn mark_empty(&self, batch_id: &str, _now: OffsetDateTime) -> Result<()> {
        self.enter("mark_empty");
        let mut st = self.state.lock().unwrap();
        if let Some(b) = st
            .batches
            .get_mut(batch_id)
            .filter(|b| b.batch.plan.is_none())
        {
            b.batch.status = BatchStatus::Empty;
        }
        Ok(())
    }
}

impl PollStore for MemoryStore {
    async fn poll_window(
        &self,
        batch_id: &str,
        epoch: u32,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime> {
        self.enter("poll_window");
        let mut st = self.state.lock().unwrap();
        let b = st
            .batches
            .get_mut(batch_id)
            .ok_or_else(|| Error::StoreError("no batch".into()))?;
        if b.batch.poll_epoch.is_none_or(|e| e < epoch) {
            b.batch.poll_epoch = Some(epoch);
            b.batch.poll_since = Some(now);
        }
        Ok(b.batch.poll_since.unwrap_or(now))
    }

    async fn mark_chunk_completed(
        &self,
        batch_id: &str,
        chunk: u32,
        _now: OffsetDateTime,
    ) -> Result<()> {
        self.enter("mark_chunk_completed");
        self.with_chunk(batch_id, chunk, |c| c.completed = true)
    }

    async fn mark_completed(&self, batch_id: &str, _now: OffsetDateTime) -> Result<()> {
        self.enter("mark_completed");
        let mut st = self.state.lock().unwrap();
        if let Some(b) = st.batches.get_mut(batch_id) {
            b.batch.status = BatchStatus::Completed;
            b.completed = true;
        }
        Ok(())
    }
}

impl OutcomeStore for MemoryStore {
    async fn record_outcome(&self, batch: &BatchRef, outcome: &Outcome) -> Result<()> {
        self.enter("record_outcome");
        self.create_batch(batch, outcome.at).await?;
        let mut st = self.state.lock().unwrap();
        let b = st.batches.get_mut(&batch.batch_id).expect("just created");
        if b.completed || b.outcome_at.is_some_and(|t| t > outcome.at) {
            return Ok(());
        }
        b.outcome_at = Some(outcome.at);
        if outcome.status != "SUCCEEDED" {
            b.batch.status = BatchStatus::Failed;
            b.last_error = outcome.error.clone();
        }
        Ok(())
    }

    async fn record_failed_event(&self, outcome: &Outcome, _input: &str) -> Result<()> {
        self.enter("record_failed_event");
        let mut st = self.state.lock().unwrap();
        if outcome.status == "SUCCEEDED" {
            st.failed_events.remove(&outcome.execution_arn);
        } else {
            st.failed_events
                .insert(outcome.execution_arn.clone(), outcome.clone());
        }
        Ok(())
    }
}

impl SweepStore for MemoryStore {
    async fn open_batches_before(
        &self,
        before: OffsetDateTime,
    ) -> Result<Vec<(BatchRef, OffsetDateTime)>> {
        self.enter("open_batches_before");
        let st = self.state.lock().unwrap();
        let mut open: Vec<_> = st
            .batches
            .values()
            .filter(|b| b.batch.status == BatchStatus::Open && b.batch.opened_at < before)
            .map(|b| {
                let r = BatchRef {
                    batch_id: b.batch.batch_id.clone(),
                    distribution_id: b.batch.distribution_id.clone(),
                };
                (r, b.batch.opened_at)
            })
            .collect();
        open.sort_by_key(|(_, t)| *t);
        Ok(open)
    }
}

impl MemoryStore {
    fn with_chunk(&self, batch_id: &str, index: u32, f: impl FnOnce(&mut Chunk)) -> Result<()> {
        let mut st = self.state.lock().unwrap();
        let plan = st
            .batches
            .get(batch_id)
            .and_then(|b| b.batch.plan.clone())
            .ok_or_else(|| Error::StoreError("no committed plan".into()))?;
        let chunks = st
            .plans
            .get_mut(&(batch_id.to_owned(), plan.plan_id))
            .expect("committed plan stored");
        f(chunks
            .iter_mut()
            .find(|c| c.index == index)
            .ok_or_else(|| Error::StoreError("no chunk".into()))?);
        Ok(())
    }
}

/// CloudFront as far as the functions see it: CallerReference idempotency, scripted failures
/// and statuses.
#[derive(Default)]
pub struct FakeCdn {
    inner: Mutex<FakeCdnState>,
}

#[derive(Default)]
struct FakeCdnState {
    /// (distribution, caller reference) -> (id, paths)
    by_reference: HashMap<(String, String), (String, Vec<String>)>,
    completed: HashSet<String>,
    fail_next: Vec<Error>,
    lose_next_response: bool,
    creates: usize,
}

impl FakeCdn {
    /// The next create calls fail with these errors, in order.
    pub fn fail_next(&self, errors: impl IntoIterator<Item = Error>) {
        let mut st = self.inner.lock().unwrap();
        st.fail_next = errors.into_iter().collect();
        st.fail_next.reverse();
    }

    /// The next create is accepted by CloudFront but its response never arrives (the function
    /// times out or dies before it can record the invalidation).
    pub fn lose_next_response(&self) {
        self.inner.lock().unwrap().lose_next_response = true;
    }

    pub fn complete_all(&self) {
        let mut st = self.inner.lock().unwrap();
        let ids: Vec<String> = st.by_reference.values().map(|(id, _)| id.clone()).collect();
        st.completed.extend(ids);
    }

    /// Distinct invalidations created (a repeated CallerReference is not a new one).
    pub fn invalidations(&self) -> Vec<(String, Vec<String>)> {
        let st = self.inner.lock().unwrap();
        let mut all: Vec<_> = st
            .by_reference
            .iter()
            .map(|((_, r), (_, p))| (r.clone(), p.clone()))
            .collect();
        all.sort();
        all
    }

    /// Create calls that reached CloudFront (accepted or not).
    pub fn create_calls(&self) -> usize {
        self.inner.lock().unwrap().creates
    }
}

impl Cdn for FakeCdn {
    async fn create_invalidation(
        &self,
        distribution_id: &str,
        caller_reference: &str,
        paths: &[String],
    ) -> Result<String> {
        let mut st = self.inner.lock().unwrap();
        st.creates += 1;
        if let Some(e) = st.fail_next.pop() {
            return Err(e);
        }
        let key = (distribution_id.to_owned(), caller_reference.to_owned());
        let next_id = format!("I{}", st.by_reference.len() + 1);
        let (id, existing) = st
            .by_reference
            .entry(key)
            .or_insert_with(|| (next_id, paths.to_vec()));
        if existing != paths {
            return Err(Error::InvalidationBatchAlreadyExists(
                caller_reference.to_owned(),
            ));
        }
        let id = id.clone();
        if std::mem::take(&mut st.lose_next_response) {
            return Err(Error::ServiceUnavailable("response lost".into()));
        }
        Ok(id)
    }

    async fn invalidation_status(
        &self,
        _distribution_id: &str,
        invalidation_id: &str,
    ) -> Result<InvalidationStatus> {
        let st = self.inner.lock().unwrap();
        Ok(if st.completed.contains(invalidation_id) {
            InvalidationStatus::Completed
        } else {
            InvalidationStatus::InProgress
        })
    }
}
