//! Q1: a path's history, newest first, with the invalidations that covered it.

use super::*;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathHistory {
    pub distribution_id: String,
    pub path: String,
    /// Newest first: one entry per batch the path was in.
    pub history: Vec<PathVisit>,
}

/// One batch a path was in: the stored path item, where its batch got, and the invalidation
/// that covers it (not `cfinv_core::collect::PathChange`, the change a batch is fed with).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathVisit {
    #[serde(flatten)]
    pub change: PathRecord,
    pub batch_status: Option<BatchStatus>,
    pub invalidation: Option<InvalidationRef>,
}

/// The invalidation request that covers a path.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvalidationRef {
    pub chunk: u32,
    /// `None` until CloudFront accepted the request.
    pub id: Option<String>,
    pub status: Option<ChunkStatus>,
    /// The plan path that invalidates it: the path itself, or a wildcard above it.
    pub via: String,
    pub created_at: Option<At>,
    pub completed_at: Option<At>,
}

impl InvalidationRef {
    /// The chunk of a committed plan that covers `path`.
    pub fn find(chunks: &[ChunkRecord], path: &str) -> Option<Self> {
        chunks.iter().find_map(|c| {
            c.covering(path).map(|via| Self {
                chunk: c.index,
                id: c.invalidation_id.clone(),
                status: c.status,
                via: via.to_owned(),
                created_at: c.created_at,
                completed_at: c.completed_at,
            })
        })
    }
}

impl Answer for PathHistory {
    fn text(&self) -> String {
        if self.history.is_empty() {
            return format!(
                "no history for {} on distribution {} (never changed, or its items expired)\n",
                self.path, self.distribution_id
            );
        }
        let mut t = Table::new(&[
            "SEEN",
            "CHANGE",
            "EVENT TIME",
            "VERSION",
            "ETAG",
            "BATCH",
            "INVALIDATION",
            "STATUS",
            "COMPLETED",
            "VIA",
        ]);
        for h in &self.history {
            let c = &h.change;
            let inv = h.invalidation.as_ref();
            t.row([
                or_dash(c.last_seen_at),
                or_dash(c.change.as_deref()),
                event_time(c.event_time.as_deref()),
                or_dash(c.version_id.as_deref()),
                or_dash(c.etag.as_deref()),
                c.batch_id.clone(),
                or_dash(inv.and_then(|i| i.id.as_deref())),
                or_dash(
                    inv.and_then(|i| i.status.map(ChunkStatus::as_str))
                        .or(h.batch_status.map(BatchStatus::as_str)),
                ),
                or_dash(inv.and_then(|i| i.completed_at)),
                // Blank when the path was invalidated as itself.
                inv.filter(|i| i.via != c.path)
                    .map(|i| i.via.clone())
                    .unwrap_or_default(),
            ]);
        }
        let mut out = format!(
            "{} on {}: {}, newest first\n{}",
            self.path,
            self.distribution_id,
            plural(self.history.len() as u64, "change", "changes"),
            t.render()
        );
        let reasons: std::collections::BTreeSet<&str> = self
            .history
            .iter()
            .filter_map(|h| h.change.reason.as_deref())
            .collect();
        for reason in reasons {
            let _ = writeln!(out, "wildcard: {reason}");
        }
        out
    }
}
