//! Q4: one batch in full, as a timeline.

use super::*;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchDetail {
    pub batch: BatchRecord,
    /// What the plan was made from, when it followed the distribution's configuration.
    pub plan_basis: Option<PlanBasis>,
    pub timeline: Vec<Moment>,
    /// The chunks of the committed plan, in order.
    pub chunks: Vec<ChunkRecord>,
    /// Sorted by path.
    pub paths: Vec<PathRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moment {
    pub at: At,
    pub event: String,
}

impl BatchDetail {
    pub fn new(
        batch: BatchRecord,
        plan_basis: Option<PlanBasis>,
        chunks: Vec<ChunkRecord>,
        paths: Vec<PathRecord>,
    ) -> Self {
        let timeline = timeline(&batch, &chunks, &paths);
        Self {
            batch,
            plan_basis,
            timeline,
            chunks,
            paths,
        }
    }
}

/// Every time the items record, in order. Equal times keep the lifecycle's order.
pub fn timeline(batch: &BatchRecord, chunks: &[ChunkRecord], paths: &[PathRecord]) -> Vec<Moment> {
    let mut moments: Vec<(Option<At>, String)> = vec![
        (batch.opened_at, "opened: first path received".into()),
        (
            paths.iter().filter_map(|p| p.last_seen_at).max(),
            format!("last path received ({} in all)", paths.len()),
        ),
        (batch.closed_at, "closed: flush started".into()),
        (
            batch.planned_at,
            format!(
                "planned: {} in {}",
                plural(batch.paths_planned.unwrap_or(0), "path", "paths"),
                plural(batch.planned_chunks.unwrap_or(0), "chunk", "chunks")
            ),
        ),
    ];
    for c in chunks {
        let id = or_dash(c.invalidation_id.as_deref());
        moments.push((
            c.created_at,
            format!("invalidation {id} created (chunk {})", c.index),
        ));
    }
    moments.push((batch.submitted_at, "submitted".into()));
    for c in chunks {
        let id = or_dash(c.invalidation_id.as_deref());
        moments.push((c.completed_at, format!("invalidation {id} completed")));
    }
    moments.push((
        batch.last_error_at,
        format!(
            "error: {}",
            readable(batch.last_error.as_deref().unwrap_or("-"))
        ),
    ));
    moments.push((
        batch.failed_at,
        format!(
            "failed: execution {}",
            or_dash(batch.execution_status.map(|s| s.as_str()))
        ),
    ));
    moments.push((batch.completed_at, "completed".into()));
    let mut out: Vec<Moment> = moments
        .into_iter()
        .filter_map(|(at, event)| at.map(|at| Moment { at, event }))
        .collect();
    out.sort_by_key(|m| m.at);
    out
}

impl Answer for BatchDetail {
    fn text(&self) -> String {
        let b = &self.batch;
        let mut head = Table::new(&["", ""]);
        head.row(["batch", &b.batch_id]);
        head.row(["distribution", &b.distribution_id]);
        let took = b
            .took_seconds
            .map(|s| format!(" (took {})", human(Duration::from_secs_f64(s))))
            .unwrap_or_default();
        head.row(["status".to_owned(), format!("{}{took}", b.status)]);
        head.row(["execution".to_owned(), or_dash(b.execution_arn.as_deref())]);
        if let Some(id) = &b.replayed_by {
            head.row(["replayed as", id]);
        }
        if let Some(id) = &b.replay_of {
            head.row(["replay of", id]);
        }
        head.row([
            "counts".to_owned(),
            format!(
                "{}, {} received, {} planned, {} billed",
                plural(b.events_received.unwrap_or(0), "event", "events"),
                plural(b.paths_received.unwrap_or(0), "path", "paths"),
                or_dash(b.paths_planned),
                or_dash(b.paths_billed),
            ),
        ]);
        if let Some(error) = &b.last_error {
            head.row([
                "error".to_owned(),
                format!(
                    "{} (attempts: {})",
                    error_cell(Some(error)),
                    or_dash(b.attempts)
                ),
            ]);
        }
        let mut out = head.render_rows();

        let opened = b.opened_at;
        let mut t = Table::new(&["TIME", ">AFTER", "EVENT"]);
        for m in &self.timeline {
            let after = opened.and_then(|o| between(o.0, m.at.0)).map(human);
            t.row([
                m.at.to_string(),
                format!("+{}", or_dash(after)),
                clip(&m.event, 2 * ERROR_WIDTH),
            ]);
        }
        let _ = write!(out, "\ntimeline\n{}", t.render());

        match &b.plan_id {
            None => out.push_str("\nno plan yet\n"),
            Some(plan_id) => {
                let mut t = Table::new(&[
                    ">CHUNK",
                    "INVALIDATION",
                    "STATUS",
                    "CREATED",
                    "COMPLETED",
                    ">PATHS",
                    "CALLER REFERENCE",
                ]);
                for c in &self.chunks {
                    t.row([
                        c.index.to_string(),
                        or_dash(c.invalidation_id.as_deref()),
                        or_dash(c.status.map(ChunkStatus::as_str)),
                        or_dash(c.created_at),
                        or_dash(c.completed_at),
                        c.paths.len().to_string(),
                        or_dash(c.caller_reference.as_deref()),
                    ]);
                }
                let mut p = Table::new(&[">CHUNK", "PLANNED PATH"]);
                for c in &self.chunks {
                    for path in &c.paths {
                        p.row([c.index.to_string(), path.clone()]);
                    }
                }
                let _ = write!(
                    out,
                    "\nplan {plan_id}: {}\n{}\n{}",
                    plural(self.chunks.len() as u64, "chunk", "chunks"),
                    t.render(),
                    p.render()
                );
            }
        }

        if let Some(basis) = &self.plan_basis {
            out.push_str(&plan_basis_text(basis));
        }

        let mut t = Table::new(&[
            "PATH",
            "CHANGE",
            "EVENT TIME",
            "VERSION",
            "ETAG",
            ">EVENTS",
            "LAST SEEN",
        ]);
        for p in &self.paths {
            t.row([
                p.path.clone(),
                or_dash(p.change.as_deref()),
                event_time(p.event_time.as_deref()),
                or_dash(p.version_id.as_deref()),
                or_dash(p.etag.as_deref()),
                p.event_ids.len().to_string(),
                or_dash(p.last_seen_at),
            ]);
        }
        let _ = write!(
            out,
            "\npaths received ({})\n{}",
            self.paths.len(),
            t.render()
        );
        for p in &self.paths {
            if let Some(reason) = &p.reason {
                let _ = writeln!(out, "{} is a wildcard: {reason}", p.path);
            }
        }
        out
    }
}

/// The distribution's configuration a plan followed, and the paths it left out.
fn plan_basis_text(basis: &PlanBasis) -> String {
    let d = &basis.distribution;
    let mut out = format!(
        "\nplan basis: {}'s configuration for bucket {}\n",
        d.distribution_id, basis.bucket
    );
    let mut head = Table::new(&["", ""]);
    head.row([
        "default root object",
        d.default_root_object.as_deref().unwrap_or("-"),
    ]);
    head.row([
        "cache tag header",
        d.cache_tag_header
            .as_deref()
            .unwrap_or("- (no CacheTagConfig)"),
    ]);
    out.push_str(&head.render_rows());

    let serving: Vec<_> = d.bucket_origins(&basis.bucket).collect();
    if serving.is_empty() {
        out.push_str("no origin serves the bucket\n");
    } else {
        let mut origins = Table::new(&["ORIGIN SERVING THE BUCKET", "DOMAIN", "ORIGIN PATH"]);
        for o in serving {
            let origin_path = Some(o.origin_path.as_str()).filter(|p| !p.is_empty());
            origins.row([o.id.as_str(), &o.domain_name, origin_path.unwrap_or("-")]);
        }
        out.push_str(&origins.render());
    }
    let mut behaviors = Table::new(&["BEHAVIOR", "ORIGIN", "QUERY STRINGS"]);
    for b in &d.behaviors {
        let query_strings = if b.query_strings { "yes" } else { "no" };
        behaviors.row([b.path_pattern.as_str(), &b.target_origin_id, query_strings]);
    }
    out.push_str(&behaviors.render());

    if basis.skipped_total == 0 {
        out.push_str("no path left out\n");
        return out;
    }
    let mut skipped = Table::new(&["PATH LEFT OUT", "REASON"]);
    for s in &basis.skipped {
        skipped.row([s.path.clone(), clip(&s.reason, 2 * ERROR_WIDTH)]);
    }
    out.push_str(&skipped.render());
    let more = basis.skipped_total.saturating_sub(basis.skipped.len());
    if more > 0 {
        let _ = writeln!(
            out,
            "and {more} more ({} left out in all)",
            plural(basis.skipped_total as u64, "path", "paths")
        );
    }
    out
}
