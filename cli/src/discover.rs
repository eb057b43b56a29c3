//! `cfinv discover --bucket NAME`: the distributions serving a bucket, read with
//! ListDistributions alone (read-only), and the stack parameters they imply.

use std::fmt::Write;

use cfinv_core::distribution::{Behavior, DistributionView, Origin, serves_bucket};
use serde::Serialize;

use crate::config::{Target, sdk_config};
use crate::report::Answer;
use crate::{Error, Result, error_chain};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Discovery {
    pub bucket: String,
    pub distributions: Vec<Served>,
    /// The `DistributionIds` parameter.
    pub distribution_ids: String,
    /// The `Routes` parameter, for who prefers fixed routes to discovery at plan time.
    pub routes: String,
}

/// One distribution and what of it serves the bucket.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Served {
    pub distribution_id: String,
    pub domain_name: String,
    pub origins: Vec<Origin>,
    /// The cache behaviors that send requests to those origins, in CloudFront's order.
    pub behaviors: Vec<Behavior>,
}

impl Discovery {
    /// From every distribution of the account (with its `*.cloudfront.net` name); an error
    /// when none serves the bucket.
    pub fn new(bucket: &str, all: Vec<(DistributionView, String)>) -> Result<Self> {
        let mut distributions = Vec::new();
        let mut routes = Vec::new();
        for (view, domain_name) in all {
            let origins: Vec<Origin> = view.bucket_origins(bucket).cloned().collect();
            let behaviors: Vec<Behavior> = view
                .behaviors
                .iter()
                .filter(|b| origins.iter().any(|o| o.id == b.target_origin_id))
                .cloned()
                .collect();
            if behaviors.is_empty() {
                continue;
            }
            routes.extend(view.routes(bucket));
            distributions.push(Served {
                distribution_id: view.distribution_id,
                domain_name,
                origins,
                behaviors,
            });
        }
        if distributions.is_empty() {
            return Err(Error::NoDistributionServes {
                bucket: bucket.to_owned(),
            });
        }
        let ids: Vec<&str> = distributions
            .iter()
            .map(|d| d.distribution_id.as_str())
            .collect();
        Ok(Self {
            bucket: bucket.to_owned(),
            distribution_ids: ids.join(","),
            routes: serde_json::to_string(&routes).expect("routes serialize"),
            distributions,
        })
    }
}

impl Answer for Discovery {
    fn text(&self) -> String {
        let mut out = format!("Distributions serving bucket {}:\n", self.bucket);
        for d in &self.distributions {
            let _ = writeln!(out, "  {} ({})", d.distribution_id, d.domain_name);
            for o in &d.origins {
                let path = if o.origin_path.is_empty() {
                    "none"
                } else {
                    &o.origin_path
                };
                let _ = writeln!(
                    out,
                    "    origin {} {} (origin path: {path})",
                    o.id, o.domain_name
                );
            }
            for b in &d.behaviors {
                let qs = if b.query_strings {
                    "  query strings in the cache key: invalidated as path*"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "    behavior {} -> {}{qs}",
                    b.path_pattern, b.target_origin_id
                );
            }
        }
        let _ = write!(
            out,
            "\nsam deploy --parameter-overrides BucketName={} DistributionIds={}\n  \
             (Routes empty: each batch is planned from its distribution's configuration)\n\
             or, with fixed routes: Routes='{}'\n",
            self.bucket, self.distribution_ids, self.routes
        );
        out
    }
}

/// Lists every distribution (paginated) and keeps those serving `bucket`.
pub async fn discover(mut target: Target, bucket: &str) -> Result<Discovery> {
    let conf = sdk_config(&mut target).await?;
    // CloudFront is global: its API answers in us-east-1 whatever the profile's region.
    let client = aws_sdk_cloudfront::Client::new(&conf);
    let mut all = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = client
            .list_distributions()
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| Error::CloudFront(error_chain(&e)))?;
        let Some(list) = page.distribution_list() else {
            break;
        };
        for d in list.items() {
            if !d.origins().is_some_and(|o| {
                o.items()
                    .iter()
                    .any(|o| serves_bucket(o.domain_name(), bucket))
            }) {
                continue;
            }
            let view = DistributionView::from_parts(
                d.id(),
                d.origins(),
                d.cache_behaviors().map(|b| b.items()).unwrap_or_default(),
                d.default_cache_behavior(),
                None,
            );
            all.push((view, d.domain_name().to_owned()));
        }
        match list.next_marker().filter(|_| list.is_truncated()) {
            Some(next) => marker = Some(next.to_owned()),
            None => break,
        }
    }
    Discovery::new(bucket, all)
}

#[cfg(test)]
mod tests {
    use cfinv_core::routes::Route;

    use super::*;

    fn view(id: &str, domain: &str, origin_path: &str, query_strings: bool) -> DistributionView {
        DistributionView {
            distribution_id: id.into(),
            origins: vec![Origin {
                id: "o".into(),
                domain_name: domain.into(),
                origin_path: origin_path.into(),
            }],
            behaviors: vec![Behavior {
                path_pattern: "*".into(),
                target_origin_id: "o".into(),
                query_strings,
            }],
            default_root_object: None,
            cache_tag_header: None,
        }
    }

    #[test]
    fn keeps_the_distributions_serving_the_bucket_and_prints_their_parameters() {
        let found = Discovery::new(
            "site",
            vec![
                (
                    view("E1", "site.s3.amazonaws.com", "", false),
                    "d1.cloudfront.net".into(),
                ),
                (
                    view("E2", "other.s3.amazonaws.com", "", false),
                    "d2.cloudfront.net".into(),
                ),
                (
                    view(
                        "E3",
                        "site.s3-website-eu-west-1.amazonaws.com",
                        "/live",
                        true,
                    ),
                    "d3.cloudfront.net".into(),
                ),
            ],
        )
        .unwrap();
        assert_eq!(found.distribution_ids, "E1,E3");
        let routes: Vec<Route> = serde_json::from_str(&found.routes).unwrap();
        assert_eq!(routes.len(), 2);
        assert_eq!(
            (routes[1].origin_path.as_str(), routes[1].query_strings),
            ("/live", true)
        );
        let text = found.text();
        assert!(text.contains("DistributionIds=E1,E3"), "{text}");
        assert!(text.contains("origin path: /live"), "{text}");
        assert!(text.contains("invalidated as path*"), "{text}");
    }

    #[test]
    fn says_so_when_nothing_serves_the_bucket() {
        let err = Discovery::new(
            "site",
            vec![(view("E2", "other.s3.amazonaws.com", "", false), "d2".into())],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("no distribution has an origin serving bucket site")
        );
    }
}
