//! Manual invalidation requests, accepted and refused: who asked for what, and what came of it.

use super::*;

/// A request's items are clipped in tables; `--json` keeps them whole.
const ITEMS_WIDTH: usize = 60;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestList {
    pub from: At,
    /// `None`: up to now.
    pub to: Option<At>,
    /// `--distribution`: only this distribution's requests.
    pub distribution_id: Option<String>,
    /// `--refused`: only refused requests.
    pub refused_only: bool,
    /// Newest first.
    pub requests: Vec<RequestRecord>,
}

impl Answer for RequestList {
    fn text(&self) -> String {
        let what = if self.refused_only {
            "refused manual requests"
        } else {
            "manual requests"
        };
        let on = self
            .distribution_id
            .as_ref()
            .map(|d| format!(" on {d}"))
            .unwrap_or_default();
        let range = range(self.from, self.to);
        if self.requests.is_empty() {
            return format!("no {what}{on} {range}\n");
        }
        let mut t = Table::new(&[
            "REQUESTED",
            "REQUEST",
            "DISTRIBUTION",
            "CHANNEL",
            "BY",
            "OUTCOME",
            "ITEMS",
            "BATCHES / REFUSAL",
            "REASON",
        ]);
        let clipped =
            |text: Option<&str>| text.map_or_else(|| "-".to_owned(), |t| clip(t, ERROR_WIDTH));
        for r in &self.requests {
            let result = match r.outcome {
                RequestOutcome::Accepted if !r.batch_ids.is_empty() => r.batch_ids.join(" "),
                RequestOutcome::Accepted => "-".to_owned(),
                RequestOutcome::Refused => clipped(r.refusal.as_deref()),
            };
            t.row([
                or_dash(r.requested_at),
                r.request_id.clone(),
                r.distribution_id.clone(),
                or_dash(r.channel.as_deref()),
                or_dash(r.requested_by.as_deref()),
                r.outcome.as_str().to_owned(),
                items_cell(&r.items),
                result,
                clipped(r.request_reason.as_deref()),
            ]);
        }
        format!(
            "{what}{on} {range} (UTC): {}, newest first\n{}",
            self.requests.len(),
            t.render()
        )
    }
}

/// A request's items on one line; a long list is cut, with its count.
fn items_cell(items: &[String]) -> String {
    if items.is_empty() {
        return "-".to_owned();
    }
    let all = items.join(" ");
    let cell = clip(&all, ITEMS_WIDTH);
    if cell == all {
        return all;
    }
    format!("{cell} ({} items)", items.len())
}
