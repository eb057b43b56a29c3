//! The answers to the operators' questions: built from records, serialized for `--json`, and
//! rendered as aligned tables otherwise. Everything here is pure.

use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use cfinv_core::distribution::PlanBasis;
use cfinv_core::model::{BatchStatus, parse_timestamp};
use cfinv_core::schema::ChunkStatus;

use crate::records::{
    BatchRecord, ChunkRecord, FailedEvent, PathRecord, RequestOutcome, RequestRecord,
};
use crate::span::{At, YearMonth, between, human};
use crate::table::{Table, clip};

/// An answer prints as text for people and as JSON for scripts.
pub trait Answer: Serialize {
    fn text(&self) -> String;
}

/// Errors are clipped in tables; `--json` keeps them whole.
const ERROR_WIDTH: usize = 80;
/// CloudFront: the first 1,000 paths a month are free (per account), then $0.005 a path.
const FREE_PATHS: u64 = 1000;
const USD_PER_PATH: f64 = 0.005;

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// An error with a Lambda error's JSON cause (`Name: {"errorType":..,"errorMessage":..}`, as
/// Step Functions reports it) shortened to `Name: message`.
fn readable(error: &str) -> String {
    error
        .split_once(": ")
        .and_then(|(name, cause)| {
            let cause: serde_json::Value = serde_json::from_str(cause).ok()?;
            Some(format!("{name}: {}", cause.get("errorMessage")?.as_str()?))
        })
        .unwrap_or_else(|| error.to_owned())
}

/// An error for a table cell: readable, one line, clipped.
fn error_cell(error: Option<&str>) -> String {
    error.map_or_else(|| "-".into(), |e| clip(&readable(e), ERROR_WIDTH))
}

/// A time range as the headings say it; `to: None` is up to now.
fn range(from: At, to: Option<At>) -> String {
    match to {
        Some(to) => format!("between {from} and {to}"),
        None => format!("since {from}"),
    }
}

/// An S3 event time (RFC 3339 as S3 wrote it) in the CLI's format.
fn event_time(raw: Option<&str>) -> String {
    match raw {
        Some(raw) => parse_timestamp(raw).map_or_else(|| raw.to_owned(), |t| At(t).to_string()),
        None => "-".into(),
    }
}

mod batch;
mod batches;
mod failures;
mod path;
mod requests;

pub use batch::*;
pub use batches::*;
pub use failures::*;
pub use path::*;
pub use requests::*;

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn batch(id: &str, status: &str) -> BatchRecord {
        BatchRecord {
            batch_id: id.into(),
            distribution_id: "E1".into(),
            status: status.parse().unwrap(),
            opened_at: Some(At(datetime!(2026-11-25 10:00 UTC))),
            closed_at: None,
            planned_at: None,
            submitted_at: None,
            completed_at: None,
            failed_at: None,
            status_since: None,
            events_received: Some(3),
            paths_received: Some(3),
            paths_planned: Some(2),
            paths_billed: None,
            planned_chunks: Some(1),
            plan_id: None,
            execution_arn: None,
            execution_status: None,
            attempts: None,
            last_error: None,
            last_error_at: None,
            took_seconds: None,
            replayed_by: None,
            replay_of: None,
        }
    }

    fn completed(id: &str) -> BatchRecord {
        BatchRecord {
            submitted_at: Some(At(datetime!(2026-11-25 10:00:35 UTC))),
            completed_at: Some(At(datetime!(2026-11-25 10:00:41.2 UTC))),
            paths_billed: Some(2),
            took_seconds: Some(41.2),
            ..batch(id, "COMPLETED")
        }
    }

    #[test]
    fn totals_count_only_submitted_requests_as_invalidations() {
        let totals = Totals::of(&[completed("a"), completed("b"), batch("c", "FAILED")]);
        assert_eq!(
            totals,
            Totals {
                batches: 3,
                completed: 2,
                failed: 1,
                events_received: 9,
                paths_received: 9,
                paths_planned: 6,
                paths_billed: 4,
                invalidations: 2,
            }
        );
    }

    #[test]
    fn a_batch_list_renders_aligned_with_totals() {
        let batches = vec![completed("E1-b"), batch("E1-a", "FAILED")];
        let list = BatchList {
            distribution_id: "E1".into(),
            from: At(datetime!(2026-11-25 09:00 UTC)),
            to: None,
            total: Totals::of(&batches),
            batches,
        };
        assert_eq!(
            list.text(),
            "batches of E1 opened since 2026-11-25 09:00:00 (UTC), newest first\n\
             OPENED               BATCH  STATUS     EVENTS  RECEIVED  PLANNED  BILLED  INVALIDATIONS   TOOK\n\
             2026-11-25 10:00:00  E1-b   COMPLETED       3         3        2       2              1  41.2s\n\
             2026-11-25 10:00:00  E1-a   FAILED          3         3        2       -              -      -\n\
             total: 2 batches (1 completed, 1 failed): 6 events, 6 paths received, 4 planned, 2 billed, 1 invalidation\n"
        );
        let empty = BatchList {
            batches: vec![],
            total: Totals::default(),
            to: Some(At(datetime!(2026-11-25 10:00 UTC))),
            ..list
        };
        assert_eq!(
            empty.text(),
            "no batches for distribution E1 between 2026-11-25 09:00:00 and 2026-11-25 10:00:00\n"
        );
    }

    #[test]
    fn month_totals_sum_the_distributions_and_price_beyond_the_free_paths() {
        let month: YearMonth = "2026-11".parse().unwrap();
        let per = |id: &str, billed| DistributionTotals {
            distribution_id: id.into(),
            totals: Totals {
                batches: 1,
                paths_billed: billed,
                ..Totals::default()
            },
        };
        let m = MonthTotals::new(month, vec![per("E1", 900), per("E2", 300)]);
        assert_eq!(m.total.paths_billed, 1200);
        assert_eq!(m.total.batches, 2);
        assert_eq!(m.to, At(datetime!(2026-12-01 00:00 UTC)));
        let text = m.text();
        let total = text.lines().find(|l| l.starts_with("TOTAL")).unwrap();
        assert_eq!(
            total.split_whitespace().collect::<Vec<_>>(),
            ["TOTAL", "2", "0", "0", "0", "1200", "0"]
        );
        assert!(text.contains("free a month: 200 (about $1.00"), "{text}");

        let none = MonthTotals::new(
            month,
            vec![per("E1", 0)]
                .into_iter()
                .map(|mut d| {
                    d.totals = Totals::default();
                    d
                })
                .collect(),
        );
        assert_eq!(none.text(), "no batches in 2026-11 for E1\n");
    }

    #[test]
    fn the_timeline_is_in_time_order_and_skips_what_did_not_happen() {
        let mut b = completed("E1-b");
        b.closed_at = Some(At(datetime!(2026-11-25 10:00:30 UTC)));
        let chunk = ChunkRecord {
            index: 0,
            paths: vec!["/a".into()],
            caller_reference: Some("E1-b#0".into()),
            invalidation_id: Some("I1".into()),
            status: Some(ChunkStatus::Completed),
            created_at: Some(At(datetime!(2026-11-25 10:00:34 UTC))),
            completed_at: Some(At(datetime!(2026-11-25 10:00:41 UTC))),
        };
        let events: Vec<String> = timeline(&b, &[chunk], &[])
            .into_iter()
            .map(|m| m.event)
            .collect();
        assert_eq!(
            events,
            [
                "opened: first path received",
                "closed: flush started",
                "invalidation I1 created (chunk 0)",
                "submitted",
                "invalidation I1 completed",
                "completed"
            ]
        );
    }

    #[test]
    fn failures_list_batches_and_events_with_the_arn_to_redrive() {
        let failed = BatchRecord {
            failed_at: Some(At(datetime!(2026-11-25 10:01 UTC))),
            last_error: Some(format!("AccessDenied: {}", "x".repeat(200))),
            execution_arn: Some("arn:aws:states:us-east-1:1:execution:m:E1-a".into()),
            ..batch("E1-a", "FAILED")
        };
        let text = Failures {
            since: None,
            batches: vec![failed],
            events: vec![],
        }
        .text();
        assert!(
            text.contains("arn:aws:states:us-east-1:1:execution:m:E1-a"),
            "{text}"
        );
        assert!(text.contains("AccessDenied: xxx"), "{text}");
        assert!(
            !text.contains(&"x".repeat(100)),
            "errors are clipped: {text}"
        );
        assert!(text.contains("redrive-execution"), "{text}");
    }

    fn request(id: &str, outcome: RequestOutcome) -> RequestRecord {
        RequestRecord {
            request_id: id.into(),
            distribution_id: "E1".into(),
            requested_at: Some(At(datetime!(2026-11-25 10:00 UTC))),
            requested_by: Some("arn:aws:iam::1:user/ops".into()),
            channel: Some("cli".into()),
            items: vec!["/a.html".into(), "/docs/*".into()],
            outcome,
            batch_ids: vec![],
            refusal: None,
            request_reason: None,
        }
    }

    #[test]
    fn requests_render_their_batches_or_refusal_and_long_item_lists_are_cut() {
        let accepted = RequestRecord {
            batch_ids: vec!["E1-b".into()],
            request_reason: Some("release 7".into()),
            ..request("r2", RequestOutcome::Accepted)
        };
        let refused = RequestRecord {
            requested_at: Some(At(datetime!(2026-11-25 09:30 UTC))),
            requested_by: Some("111122223333/deploy".into()),
            channel: Some("event".into()),
            items: (0..20).map(|i| format!("/page-{i}.html")).collect(),
            refusal: Some("21 items: more than ManualMaxPaths (20)".into()),
            ..request("r1", RequestOutcome::Refused)
        };
        let list = RequestList {
            from: At(datetime!(2026-11-24 10:00 UTC)),
            to: None,
            distribution_id: None,
            refused_only: false,
            requests: vec![accepted, refused],
        };
        let text = list.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "manual requests since 2026-11-24 10:00:00 (UTC): 2, newest first"
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "REQUESTED",
                "REQUEST",
                "DISTRIBUTION",
                "CHANNEL",
                "BY",
                "OUTCOME",
                "ITEMS",
                "BATCHES",
                "/",
                "REFUSAL",
                "REASON"
            ]
        );
        assert_eq!(
            lines[2]
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>(),
            [
                "2026-11-25 10:00:00",
                "r2",
                "E1",
                "cli",
                "arn:aws:iam::1:user/ops",
                "ACCEPTED",
                "/a.html /docs/*",
                "E1-b",
                "release 7"
            ]
        );
        assert!(
            lines[3].contains("REFUSED")
                && lines[3].contains("/page-0.html /page-1.html")
                && lines[3].contains("… (20 items)")
                && !lines[3].contains("/page-19.html")
                && lines[3].contains("more than ManualMaxPaths (20)"),
            "{text}"
        );

        let none = RequestList {
            requests: vec![],
            distribution_id: Some("E2".into()),
            refused_only: true,
            to: Some(At(datetime!(2026-11-25 10:00 UTC))),
            ..list
        };
        assert_eq!(
            none.text(),
            "no refused manual requests on E2 between 2026-11-24 10:00:00 and \
             2026-11-25 10:00:00\n"
        );
        let json = serde_json::to_value(&none).unwrap();
        assert_eq!(json["distributionId"], "E2");
        assert_eq!(json["refusedOnly"], true);
    }

    #[test]
    fn a_batch_planned_from_the_configuration_shows_its_basis() {
        use cfinv_core::distribution::{Behavior, DistributionView, Origin, Skipped};
        let origin = |id: &str, domain: &str, origin_path: &str| Origin {
            id: id.into(),
            domain_name: domain.into(),
            origin_path: origin_path.into(),
        };
        let behavior = |pattern: &str, origin: &str, query_strings| Behavior {
            path_pattern: pattern.into(),
            target_origin_id: origin.into(),
            query_strings,
        };
        let basis = PlanBasis {
            bucket: "site".into(),
            distribution: DistributionView {
                distribution_id: "E1".into(),
                origins: vec![
                    origin("s3", "site.s3.us-east-1.amazonaws.com", "/live"),
                    origin("api", "api.example.com", ""),
                ],
                behaviors: vec![behavior("/api/*", "api", true), behavior("*", "s3", false)],
                default_root_object: Some("index.html".into()),
                cache_tag_header: None,
            },
            skipped: vec![Skipped {
                path: "/api/x.json".into(),
                reason: "behavior \"/api/*\" sends /api/x.json to origin \"api\"".into(),
            }],
            skipped_total: 3,
        };
        let detail = BatchDetail::new(completed("E1-b"), Some(basis), vec![], vec![]);
        let text = detail.text();
        let section = &text[text.find("plan basis").expect("a plan basis section")..];
        let section = &section[..section.find("\npaths received").unwrap()];
        assert_eq!(
            section,
            "plan basis: E1's configuration for bucket site\n\
             default root object  index.html\n\
             cache tag header     - (no CacheTagConfig)\n\
             ORIGIN SERVING THE BUCKET  DOMAIN                           ORIGIN PATH\n\
             s3                         site.s3.us-east-1.amazonaws.com  /live\n\
             BEHAVIOR  ORIGIN  QUERY STRINGS\n\
             /api/*    api     yes\n\
             *         s3      no\n\
             PATH LEFT OUT  REASON\n\
             /api/x.json    behavior \"/api/*\" sends /api/x.json to origin \"api\"\n\
             and 2 more (3 paths left out in all)\n"
        );
        let json = serde_json::to_value(&detail).unwrap();
        assert_eq!(json["planBasis"]["skippedTotal"], 3);
        assert_eq!(
            json["planBasis"]["distribution"]["origins"][0]["originPath"],
            "/live"
        );

        let without = BatchDetail::new(completed("E1-b"), None, vec![], vec![]);
        assert!(!without.text().contains("plan basis"));
        assert!(serde_json::to_value(&without).unwrap()["planBasis"].is_null());
    }

    #[test]
    fn a_lambda_error_cause_reads_as_its_message() {
        assert_eq!(
            readable(
                r#"AccessDenied: {"errorType":"AccessDenied","errorMessage":"access denied"}"#
            ),
            "AccessDenied: access denied"
        );
        assert_eq!(readable("States.Timeout: "), "States.Timeout: ");
        assert_eq!(
            readable("AccessDenied: {\"no\": 1}"),
            "AccessDenied: {\"no\": 1}"
        );
        assert_eq!(error_cell(None), "-");
    }
}
