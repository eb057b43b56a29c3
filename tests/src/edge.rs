//! The viewer's side: each distribution's edge on the local stack (an HTTP server that caches
//! like CloudFront in front of the bucket and drops what a Completed invalidation names).

use crate::http::{self, Response};
use crate::{Lane, Stack};

impl Stack {
    /// The lane's edge: `http://127.0.0.1:PORT`.
    pub fn edge(&self, lane: &Lane) -> &str {
        self.info
            .edges
            .get(&lane.distribution_id)
            .unwrap_or_else(|| panic!("stack.json has no edge for {}", lane.distribution_id))
    }

    /// GETs `url_path` (percent-encoded, as a viewer sends it) from the lane's edge.
    pub fn view(&self, lane: &Lane, url_path: &str) -> Response {
        http::request(self.edge(lane), "GET", url_path, None)
    }
}

/// Whether the edge answered from its cache (`X-Cache: Hit from cloudfront`).
pub fn is_hit(answer: &Response) -> bool {
    answer
        .header("x-cache")
        .is_some_and(|v| v.starts_with("Hit"))
}
