//! Viewers of a lane's edge while its workload runs: real traffic keeps a copy of a popular
//! object cached, so after an overwrite or delete the edge serves the stale copy until the
//! invalidation completes. The viewers read a few such keys every [`READ_EVERY`], note when
//! each first served its latest version, and read them once more when the lane has settled:
//! then every read must be fresh.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use cfinv_core::path::url_path;

use crate::{Change, Lane, Stack, change_body, http, now_epoch};

/// How often each watched key is read.
pub const READ_EVERY: Duration = Duration::from_secs(2);
/// Keys watched per lane (overwritten and deleted ones), enough for a median and a p95 without
/// loading the one emulator that serves every lane.
const OVERWRITES_WATCHED: usize = 8;
const DELETES_WATCHED: usize = 4;

#[derive(Debug, Clone)]
struct Watched {
    url: String,
    /// Index of the key's last change in the workload (and in its writes).
    change: usize,
    /// (status, body) once that change is served.
    latest: (u16, String),
}

impl Watched {
    fn is_fresh(&self, status: u16, body: &str) -> bool {
        status == self.latest.0 && (status != 200 || body == self.latest.1)
    }
}

pub struct Viewers {
    edge: String,
    watched: Vec<Watched>,
    stop: Arc<AtomicBool>,
    /// (watched index, epoch seconds, fresh) of every read.
    reader: JoinHandle<Vec<(usize, f64, bool)>>,
}

/// What the viewers saw.
#[derive(Debug, Clone, Default)]
pub struct Freshness {
    /// Reads once the lane settled (every batch finished), and those that were stale.
    pub reads: usize,
    pub stale: Vec<String>,
    /// Seconds from each watched change to its first fresh read, sorted.
    pub to_fresh: Vec<f64>,
}

impl Stack {
    /// Starts the viewers of `lane` for `changes` (the workload [`Stack::apply`] is about to
    /// make): up to 8 keys whose last change overwrites and 4 whose last change deletes.
    pub fn watch(&self, lane: &Lane, changes: &[Change]) -> Viewers {
        let edge = self.edge(lane).to_owned();
        let mut last: BTreeMap<&str, (usize, usize)> = BTreeMap::new(); // key -> (changes, last)
        for (i, change) in changes.iter().enumerate() {
            let entry = last.entry(change.key()).or_default();
            *entry = (entry.0 + 1, i);
        }
        let mut repeated: Vec<(usize, &Change)> = last
            .values()
            .filter(|(n, _)| *n > 1)
            .map(|&(_, i)| (i, &changes[i]))
            .collect();
        repeated.sort_by_key(|(i, _)| *i);
        let overwrites = repeated
            .iter()
            .filter(|(_, c)| matches!(c, Change::Put(_)))
            .take(OVERWRITES_WATCHED);
        let deletes = repeated
            .iter()
            .filter(|(_, c)| matches!(c, Change::Delete(_)))
            .take(DELETES_WATCHED);
        let watched: Vec<Watched> = overwrites
            .chain(deletes)
            .map(|&(i, change)| Watched {
                url: url_path(change.key()),
                change: i,
                latest: match change {
                    Change::Put(key) => (200, change_body(i, key)),
                    Change::Delete(_) => (404, String::new()),
                },
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (edge, watched, stop) = (edge.clone(), watched.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    for (n, w) in watched.iter().enumerate() {
                        let answer = http::request(&edge, "GET", &w.url, None);
                        reads.push((n, now_epoch(), w.is_fresh(answer.status, &answer.text())));
                    }
                    std::thread::sleep(READ_EVERY);
                }
                reads
            })
        };
        Viewers {
            edge,
            watched,
            stop,
            reader,
        }
    }
}

impl Viewers {
    /// Stops reading, reads every watched key once more (call it once the lane settled: each
    /// must be fresh) and reports; `writes` are the workload's (path, acknowledged at).
    pub fn finish(self, writes: &[(String, f64)]) -> Freshness {
        self.stop.store(true, Ordering::Relaxed);
        let reads = self.reader.join().expect("the viewers' reader thread");
        let mut to_fresh: Vec<f64> = self
            .watched
            .iter()
            .enumerate()
            .filter_map(|(n, w)| {
                let written = writes.get(w.change)?.1;
                reads
                    .iter()
                    .find(|(m, at, fresh)| *m == n && *fresh && *at >= written)
                    .map(|(_, at, _)| at - written)
            })
            .collect();
        to_fresh.sort_by(f64::total_cmp);
        let stale = self
            .watched
            .iter()
            .filter_map(|w| {
                let answer = http::request(&self.edge, "GET", &w.url, None);
                let text = answer.text();
                (!w.is_fresh(answer.status, &text))
                    .then(|| format!("{}: {} {text:?}", w.url, answer.status))
            })
            .collect();
        Freshness {
            reads: self.watched.len(),
            stale,
            to_fresh,
        }
    }
}

/// The `p` quantile of `sorted` (nearest rank); `None` when empty.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}
