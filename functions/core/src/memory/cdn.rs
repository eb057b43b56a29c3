//! CloudFront for the functions' unit tests.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::cdn::{Cdn, InvalidationStatus};
use crate::distribution::{DistributionConfigs, DistributionView};
use crate::{Error, Result};

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
    views: HashMap<String, DistributionView>,
    config_reads: usize,
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

    /// What GetDistributionConfig answers for the view's distribution from now on.
    pub fn set_distribution(&self, view: DistributionView) {
        let mut st = self.inner.lock().unwrap();
        st.views.insert(view.distribution_id.clone(), view);
    }

    /// GetDistributionConfig calls made.
    pub fn config_reads(&self) -> usize {
        self.inner.lock().unwrap().config_reads
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

impl DistributionConfigs for FakeCdn {
    async fn distribution_view(&self, distribution_id: &str) -> Result<DistributionView> {
        let mut st = self.inner.lock().unwrap();
        st.config_reads += 1;
        st.views
            .get(distribution_id)
            .cloned()
            .ok_or_else(|| Error::NoSuchDistribution(distribution_id.to_owned()))
    }
}
