//! In-memory store (every role of `store.rs`) and `Cdn` for the functions' unit tests. They
//! keep the same conditional semantics as the DynamoDB adapter and CloudFront (CallerReference
//! idempotency), apply status changes as `lifecycle.rs` decides, and let a test run code
//! between two store calls to stage races. The scenarios of `store/scenarios.rs` hold the
//! two stores to the same behaviour.

mod cdn;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use time::OffsetDateTime;

use crate::collect::PathChange;
use crate::distribution::PlanBasis;
use crate::lifecycle::{self, Listing, Mark, Transition};
use crate::manual::{ManualStore, RequestRecord};
use crate::model::{
    Batch, BatchRef, BatchStatus, Chunk, MAX_EVENT_IDS_PER_PATH, OpenPointer, PlanRef,
};
use crate::plan::Plan;
use crate::store::{
    BatchPaths, JoinStore, Outcome, OutcomeStore, PlanStore, PointerStore, PollStore, SubmitStore,
    SweepStore,
};
use crate::{Error, Result};
pub use cdn::FakeCdn;

/// A batch item: what DynamoDB would hold, index entries included.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBatch {
    pub batch: Batch,
    pub closed: bool,
    pub completed: bool,
    pub billed: Option<usize>,
    pub last_error: Option<String>,
    pub attempts: u32,
    pub outcome_at: Option<OffsetDateTime>,
    /// Its `byStatus` entry: the status it waits in, since when.
    pub waiting: Option<(BatchStatus, OffsetDateTime)>,
    /// In the distribution's listing (`byDistribution`).
    pub listed: bool,
    pub failed_at: Option<OffsetDateTime>,
    /// What the committed plan was made from, when a configuration was read.
    pub basis: Option<PlanBasis>,
}

impl StoredBatch {
    fn new(batch: Batch) -> Self {
        StoredBatch {
            batch,
            closed: false,
            completed: false,
            billed: None,
            last_error: None,
            attempts: 0,
            outcome_at: None,
            waiting: None,
            listed: false,
            failed_at: None,
            basis: None,
        }
    }

    /// Applies `t` as `lifecycle.rs` decides, as the DynamoDB adapter writes it.
    fn apply(&mut self, t: &Transition) {
        self.batch.status = t.status;
        match t.waiting_since {
            Mark::Set(since) => self.waiting = Some((t.status, since)),
            Mark::Keep => {}
            Mark::Clear => self.waiting = None,
        }
        match t.listing {
            Listing::Ensure => self.listed = true,
            Listing::Keep => {}
            Listing::Leave => self.listed = false,
        }
        match t.failed_at {
            Mark::Set(at) => self.failed_at = Some(at),
            Mark::Keep => {}
            Mark::Clear => self.failed_at = None,
        }
    }
}

/// A failed event item (`EXEC#<name>`): its outcome, and whether it is in `byStatus`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub outcome: Outcome,
    pub last_error: String,
    /// In the failures index: its execution's latest outcome is a failure.
    pub failed: bool,
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
    /// execution name -> failed event
    events: HashMap<String, StoredEvent>,
    calls: Vec<&'static str>,
    /// (distribution, hour) -> manual paths reserved, and the requests that reserved them
    manual_hours: HashMap<(String, OffsetDateTime), (usize, HashSet<String>)>,
    requests: Vec<RequestRecord>,
    /// (bucket, key) -> last seen cache tags
    object_tags: HashMap<(String, String), BTreeSet<String>>,
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

    /// The failed events the failures index holds.
    pub fn failed_events(&self) -> Vec<Outcome> {
        self.state
            .lock()
            .unwrap()
            .events
            .values()
            .filter(|e| e.failed)
            .map(|e| e.outcome.clone())
            .collect()
    }

    pub fn event(&self, execution_name: &str) -> Option<StoredEvent> {
        self.state
            .lock()
            .unwrap()
            .events
            .get(execution_name)
            .cloned()
    }

    /// Forces a batch into a status (e.g. to stage a close by another process), as of its
    /// opening time.
    pub fn set_status(&self, batch_id: &str, status: BatchStatus) {
        let mut st = self.state.lock().unwrap();
        let b = st.batches.get_mut(batch_id).expect("batch exists");
        b.apply(&Transition::to(status, b.batch.opened_at));
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
        st.batches.entry(batch.batch_id.clone()).or_insert_with(|| {
            let mut stored = StoredBatch::new(Batch::opened(batch, opened_at));
            stored.apply(&Transition::to(BatchStatus::Open, opened_at));
            stored
        });
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
            b.last_error = Some(lifecycle::task_error(error));
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
        // Created if the opener died before writing it, opened when its id says.
        let stored = st.batches.entry(batch.batch_id.clone()).or_insert_with(|| {
            let opened = Batch::opened(batch, lifecycle::opened_at_of(&batch.batch_id, now));
            StoredBatch::new(Batch {
                status: BatchStatus::Closed,
                ..opened
            })
        });
        if !stored.closed {
            stored.closed = true;
            stored.apply(&Transition::to(BatchStatus::Closed, now));
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
        basis: Option<&PlanBasis>,
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
                stored.basis = basis.cloned();
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
            b.apply(&Transition::to(BatchStatus::Submitted, now));
            b.batch.submitted_at.get_or_insert(now);
            b.billed = Some(billed);
        }
        Ok(())
    }

    async fn mark_empty(&self, batch_id: &str, now: OffsetDateTime) -> Result<()> {
        self.enter("mark_empty");
        let mut st = self.state.lock().unwrap();
        if let Some(b) = st
            .batches
            .get_mut(batch_id)
            .filter(|b| b.batch.plan.as_ref().is_none_or(|p| p.chunks == 0))
        {
            b.apply(&Transition::to(BatchStatus::Empty, now));
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

    async fn mark_completed(&self, batch_id: &str, now: OffsetDateTime) -> Result<()> {
        self.enter("mark_completed");
        let mut st = self.state.lock().unwrap();
        if let Some(b) = st.batches.get_mut(batch_id) {
            b.apply(&Transition::to(BatchStatus::Completed, now));
            b.completed = true;
        }
        Ok(())
    }
}

impl OutcomeStore for MemoryStore {
    async fn record_outcome(&self, batch: &BatchRef, outcome: &Outcome) -> Result<()> {
        self.enter("record_outcome");
        let mut st = self.state.lock().unwrap();
        // A failure creates the item if its opener never wrote it, as DynamoDB's upsert does.
        let b = st.batches.entry(batch.batch_id.clone()).or_insert_with(|| {
            StoredBatch::new(Batch::opened(
                batch,
                lifecycle::opened_at_of(&batch.batch_id, outcome.at),
            ))
        });
        if b.completed || b.outcome_at.is_some_and(|t| t > outcome.at) {
            return Ok(());
        }
        b.outcome_at = Some(outcome.at);
        if let Some(error) = lifecycle::execution_error(outcome) {
            b.apply(&Transition::to(BatchStatus::Failed, outcome.at));
            b.last_error = Some(error);
        }
        Ok(())
    }

    async fn record_failed_event(&self, name: &str, outcome: &Outcome, _input: &str) -> Result<()> {
        self.enter("record_failed_event");
        let mut st = self.state.lock().unwrap();
        let name = name.to_owned();
        match lifecycle::execution_error(outcome) {
            Some(error) => {
                st.events.insert(
                    name,
                    StoredEvent {
                        outcome: outcome.clone(),
                        last_error: error,
                        failed: true,
                    },
                );
            }
            // A redriven execution that now succeeded leaves the failures index.
            None => {
                if let Some(e) = st
                    .events
                    .get_mut(&name)
                    .filter(|e| e.outcome.at <= outcome.at)
                {
                    e.outcome = outcome.clone();
                    e.failed = false;
                }
            }
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
            // As DynamoDB's `byStatus` index answers it.
            .filter(|b| {
                b.waiting
                    .is_some_and(|(status, since)| status == BatchStatus::Open && since < before)
            })
            .map(|b| (b.batch.clone().into(), b.batch.opened_at))
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

impl MemoryStore {
    /// Every manual request recorded, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Manual paths reserved on a distribution in the hour starting `hour`.
    pub fn manual_paths(&self, distribution_id: &str, hour: OffsetDateTime) -> usize {
        let state = self.state.lock().unwrap();
        let key = (distribution_id.to_owned(), hour);
        state.manual_hours.get(&key).map_or(0, |(used, _)| *used)
    }
}

impl ManualStore for MemoryStore {
    async fn reserve_manual_paths(
        &self,
        distribution_id: &str,
        hour: OffsetDateTime,
        request_id: &str,
        count: usize,
        limit: usize,
    ) -> Result<bool> {
        self.enter("reserve_manual_paths");
        let mut state = self.state.lock().unwrap();
        let (used, requests) = state
            .manual_hours
            .entry((distribution_id.to_owned(), hour))
            .or_default();
        if requests.contains(request_id) {
            return Ok(true);
        }
        if *used + count > limit {
            return Ok(false);
        }
        *used += count;
        requests.insert(request_id.to_owned());
        Ok(true)
    }

    async fn record_request(&self, record: &RequestRecord) -> Result<()> {
        self.enter("record_request");
        self.state.lock().unwrap().requests.push(record.clone());
        Ok(())
    }
}

impl crate::object_tags::TagStore for MemoryStore {
    async fn last_tags(&self, bucket: &str, key: &str) -> Result<BTreeSet<String>> {
        self.enter("last_tags");
        let state = self.state.lock().unwrap();
        let object = (bucket.to_owned(), key.to_owned());
        Ok(state.object_tags.get(&object).cloned().unwrap_or_default())
    }

    async fn keep_tags(
        &self,
        bucket: &str,
        key: &str,
        tags: &BTreeSet<String>,
        _now: OffsetDateTime,
    ) -> Result<()> {
        self.enter("keep_tags");
        let object = (bucket.to_owned(), key.to_owned());
        self.state
            .lock()
            .unwrap()
            .object_tags
            .insert(object, tags.clone());
        Ok(())
    }
}
