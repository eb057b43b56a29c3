//! A distribution's configuration reduced to what invalidating a bucket's objects needs
//! (docs/design.md §3 and §7): the origins that serve the bucket and their origin paths, the
//! cache behaviors in CloudFront's order and whether each one's cache key holds query strings,
//! and the default root object. create-invalidation reads it when it plans a batch and stores
//! it with the plan; `cfinv discover` prints the routes it implies.
//!
//! The rules, from the CloudFront developer guide:
//! - Origin path: "When a user enters example.com/acme/index.html in a browser, CloudFront
//!   sends a request to Amazon S3 for myawsbucket/production/acme/index.html" (OriginPath
//!   `/production`): the viewer path is the key without the origin path.
//! - Cache behaviors: "the requested path is compared with path patterns in the order in which
//!   cache behaviors are listed in the distribution", the default (`*`) last; "You can
//!   optionally include a slash (/) at the beginning of the path pattern"; `*` matches any
//!   characters, `?` exactly one, case-sensitively. A path whose behavior sends it to another
//!   origin is not the bucket's to invalidate.
//! - Query strings ("What you need to know when invalidating paths"): "If you configured
//!   CloudFront to forward query strings to your origin, you must include the query strings
//!   when invalidating files"; which ones viewers sent is unknown here, so such a path is
//!   invalidated as `<path>*`.
//! - Default root object: "To invalidate the default root object (file), specify the path the
//!   same way that you specify the path for any other file", and a viewer reaches it as `/`,
//!   so its change also invalidates `/`.
//! - Cache tags ("What you need to know when invalidating tags"): "Tag invalidation only works
//!   on distributions that have CacheTagConfig configured. Distributions without this
//!   configuration ignore cache tag headers from the origin." A `#tag` item is kept only where
//!   the configuration has one; elsewhere it could match nothing and would still be billed.

use serde::{Deserialize, Serialize};

use crate::path::encode_path;
use crate::tags::is_tag_item;

/// Managed cache policies whose cache key holds no query string ("Use managed cache
/// policies"): CachingOptimized, CachingOptimizedForUncompressedObjects, CachingDisabled and
/// UseOriginCacheControlHeaders. Any other policy, custom ones included, counts as holding
/// them: reading a custom policy would need `cloudfront:GetCachePolicy`, and `path*` also
/// covers the bare path (the safe side).
const POLICIES_WITHOUT_QUERY_STRINGS: [&str; 4] = [
    "658327ea-f89d-4fab-a63d-7e88639e58f6",
    "b2884449-e4de-46a7-ac36-70bc7f1ddd6d",
    "4135ea2d-6df8-44a3-9df3-4b5a84be39ad",
    "83da9c7e-98b4-4e11-a168-04f0df8e2c65",
];

/// What a distribution's configuration says, as stored with a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DistributionView {
    pub distribution_id: String,
    pub origins: Vec<Origin>,
    /// In CloudFront's order, the default behavior last (pattern `*`).
    pub behaviors: Vec<Behavior>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_root_object: Option<String>,
    /// `CacheTagConfig.HeaderName` (lowercase): the response header CloudFront reads tags from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_tag_header: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    pub id: String,
    pub domain_name: String,
    #[serde(default)]
    pub origin_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Behavior {
    pub path_pattern: String,
    pub target_origin_id: String,
    pub query_strings: bool,
}

impl Behavior {
    /// A behavior as configured: `cache_policy_id` when it has one, else the legacy
    /// `ForwardedValues.QueryString`.
    pub fn new(
        path_pattern: &str,
        target_origin_id: &str,
        cache_policy_id: Option<&str>,
        forwarded_query_string: bool,
    ) -> Self {
        let query_strings = match cache_policy_id.filter(|id| !id.is_empty()) {
            Some(id) => !POLICIES_WITHOUT_QUERY_STRINGS.contains(&id),
            None => forwarded_query_string,
        };
        Self {
            path_pattern: path_pattern.to_owned(),
            target_origin_id: target_origin_id.to_owned(),
            query_strings,
        }
    }
}

/// Whether an origin domain is one of `bucket`'s S3 endpoints: REST, global
/// (`<bucket>.s3.amazonaws.com`) or regional (`<bucket>.s3.<region>.amazonaws.com`,
/// `<bucket>.s3-<region>.amazonaws.com`, dual-stack), or website
/// (`<bucket>.s3-website-<region>.amazonaws.com`, `<bucket>.s3-website.<region>.amazonaws.com`),
/// in any partition ending `.amazonaws.com` or `.amazonaws.com.cn`. OAC and OAI are settings of
/// the origin, not of its domain, so they do not matter here.
pub fn serves_bucket(domain_name: &str, bucket: &str) -> bool {
    let domain = domain_name.trim_end_matches('.').to_ascii_lowercase();
    let Some(rest) = domain
        .strip_prefix(bucket)
        .and_then(|r| r.strip_prefix('.'))
    else {
        return false;
    };
    let Some(endpoint) = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))
    else {
        return false;
    };
    (endpoint == "s3" || endpoint.starts_with("s3.") || endpoint.starts_with("s3-"))
        && endpoint
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

/// CloudFront's path-pattern match: `*` any run of characters, `?` exactly one, the rest
/// literal and case-sensitive; the pattern's leading `/` is optional.
pub fn pattern_matches(pattern: &str, path: &str) -> bool {
    let pattern = pattern.strip_prefix('/').unwrap_or(pattern).as_bytes();
    let path = path.strip_prefix('/').unwrap_or(path).as_bytes();
    let (mut p, mut s) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while s < path.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, s));
                p += 1;
            }
            Some(&c) if c == b'?' || c == path[s] => {
                p += 1;
                s += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    p = sp + 1;
                    s = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// One path of a batch that the distribution does not invalidate, and why (kept in the audit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// What a plan was made from: the configuration read, and the paths it left out (the first
/// [`PlanBasis::MAX_SKIPPED`] of them, with the total), stored with the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanBasis {
    pub bucket: String,
    pub distribution: DistributionView,
    pub skipped: Vec<Skipped>,
    pub skipped_total: usize,
}

impl PlanBasis {
    /// Enough to show why, small enough for one DynamoDB item.
    pub const MAX_SKIPPED: usize = 100;
}

impl DistributionView {
    /// The origins that serve `bucket`.
    pub fn bucket_origins<'a>(&'a self, bucket: &'a str) -> impl Iterator<Item = &'a Origin> {
        self.origins
            .iter()
            .filter(move |o| serves_bucket(&o.domain_name, bucket))
    }

    /// The behavior CloudFront applies to `path`: the first whose pattern matches, else the
    /// default (the last).
    pub fn behavior_for(&self, path: &str) -> Option<&Behavior> {
        self.behaviors
            .iter()
            .find(|b| pattern_matches(&b.path_pattern, path))
            .or(self.behaviors.last())
    }

    /// The distribution's paths for `path`, a batch path made against the bucket's root (what
    /// collect-keys makes without `Routes`), or why it has none.
    pub fn paths_for(&self, bucket: &str, path: &str) -> Result<Vec<String>, String> {
        if is_tag_item(path) {
            // A tag is the cached object's, whatever URL reached it: no origin path, no route.
            return match self.cache_tag_header {
                Some(_) => Ok(vec![path.to_owned()]),
                None => Err("the distribution has no CacheTagConfig: it stores no tags".to_owned()),
            };
        }
        let mut out = Vec::new();
        let mut reasons = Vec::new();
        let mut in_origin_path = false;
        for origin in self.bucket_origins(bucket) {
            let Some(viewer) = viewer_path(&origin.origin_path, path) else {
                continue;
            };
            in_origin_path = true;
            if viewer.ends_with('*') {
                // A wildcard may span several behaviors: kept whole (over-invalidating is the
                // safe side).
                out.push(viewer);
                continue;
            }
            match self.routed(origin, &viewer) {
                Ok(query_strings) => {
                    let root = self
                        .default_root_object
                        .as_deref()
                        .is_some_and(|object| encode_path(object) == viewer);
                    out.push(covering(viewer, query_strings));
                    if root {
                        match self.routed(origin, "/") {
                            Ok(query_strings) => out.push(covering("/".to_owned(), query_strings)),
                            Err(reason) => reasons.push(reason),
                        }
                    }
                }
                Err(reason) => reasons.push(reason),
            }
        }
        if !out.is_empty() {
            out.sort_unstable();
            out.dedup();
            return Ok(out);
        }
        if reasons.is_empty() {
            reasons.push(if in_origin_path {
                "no behavior routes it to the bucket".to_owned()
            } else if self.bucket_origins(bucket).next().is_none() {
                format!("no origin of the distribution serves bucket {bucket:?}")
            } else {
                "outside the origin path of every origin serving the bucket".to_owned()
            });
        }
        Err(reasons.join("; "))
    }

    /// Whether `viewer` reaches `origin`, and then whether its cache key holds query strings.
    fn routed(&self, origin: &Origin, viewer: &str) -> Result<bool, String> {
        match self.behavior_for(viewer) {
            Some(b) if b.target_origin_id == origin.id => Ok(b.query_strings),
            Some(b) => Err(format!(
                "behavior {:?} sends {viewer} to origin {:?}, not the bucket's origin {:?}",
                b.path_pattern, b.target_origin_id, origin.id
            )),
            None => Err("the distribution has no cache behavior".to_owned()),
        }
    }

    /// Maps a batch's paths: the distribution's paths, sorted and deduplicated, and the basis
    /// to store with the plan.
    pub fn apply(&self, bucket: &str, paths: &[String]) -> (Vec<String>, PlanBasis) {
        let mut planned = Vec::with_capacity(paths.len());
        let mut skipped = Vec::new();
        let mut skipped_total = 0;
        for path in paths {
            match self.paths_for(bucket, path) {
                Ok(mapped) => planned.extend(mapped),
                Err(reason) => {
                    skipped_total += 1;
                    if skipped.len() < PlanBasis::MAX_SKIPPED {
                        skipped.push(Skipped {
                            path: path.clone(),
                            reason,
                        });
                    }
                }
            }
        }
        planned.sort_unstable();
        planned.dedup();
        let basis = PlanBasis {
            bucket: bucket.to_owned(),
            distribution: self.clone(),
            skipped,
            skipped_total,
        };
        (planned, basis)
    }

    /// The routes `cfinv discover` prints for the `Routes` parameter: one per origin serving
    /// the bucket that some behavior uses, with its origin path, and `queryStrings` when a
    /// behavior to it holds them (a route cannot say which paths go elsewhere: the safe side
    /// invalidates them too).
    pub fn routes(&self, bucket: &str) -> Vec<crate::routes::Route> {
        self.bucket_origins(bucket)
            .filter_map(|origin| {
                let mut to_origin = self
                    .behaviors
                    .iter()
                    .filter(|b| b.target_origin_id == origin.id)
                    .peekable();
                to_origin.peek()?;
                let query_strings = to_origin.any(|b| b.query_strings);
                Some(crate::routes::Route {
                    bucket: bucket.to_owned(),
                    key_prefix: String::new(),
                    distribution_id: self.distribution_id.clone(),
                    origin_path: origin.origin_path.clone(),
                    query_strings,
                })
            })
            .collect()
    }
}

/// `path` as seen through an origin path (`/site`: `/site/a` -> `/a`, `/site` -> `/`), or `None`
/// when the path is outside it.
fn viewer_path(origin_path: &str, path: &str) -> Option<String> {
    let dir = origin_path.trim_matches('/');
    if dir.is_empty() {
        return Some(path.to_owned());
    }
    let rest = path.strip_prefix(&encode_path(dir))?;
    match rest {
        "" => Some("/".to_owned()),
        // `/site*` (a key `site~x`) covers the whole origin path and more.
        _ if rest.starts_with('*') => Some("/*".to_owned()),
        _ if rest.starts_with('/') => Some(rest.to_owned()),
        _ => None,
    }
}

fn covering(path: String, query_strings: bool) -> String {
    if query_strings && !path.ends_with('*') {
        path + "*"
    } else {
        path
    }
}

#[cfg(feature = "cloudfront")]
pub use sdk::CloudFrontConfigs;

/// Reads a distribution's configuration (`cloudfront:GetDistributionConfig`).
pub trait DistributionConfigs: Send + Sync {
    fn distribution_view(
        &self,
        distribution_id: &str,
    ) -> impl std::future::Future<Output = crate::Result<DistributionView>> + Send;
}

#[cfg(feature = "cloudfront")]
mod sdk {
    use aws_sdk_cloudfront::Client;
    use aws_sdk_cloudfront::types::{CacheBehavior, DefaultCacheBehavior, Origins};

    use super::{Behavior, DistributionConfigs, DistributionView, Origin};
    use crate::cdn::cloudfront_error;
    use crate::{Error, Result};

    #[derive(Debug, Clone)]
    pub struct CloudFrontConfigs {
        client: Client,
    }

    impl CloudFrontConfigs {
        pub fn new(client: Client) -> Self {
            Self { client }
        }
    }

    impl DistributionConfigs for CloudFrontConfigs {
        async fn distribution_view(&self, distribution_id: &str) -> Result<DistributionView> {
            let out = self
                .client
                .get_distribution_config()
                .id(distribution_id)
                .send()
                .await
                .map_err(cloudfront_error)?;
            let config = out.distribution_config().ok_or_else(|| {
                Error::ServiceUnavailable("GetDistributionConfig returned no config".into())
            })?;
            let view = DistributionView::from_parts(
                distribution_id,
                config.origins(),
                config
                    .cache_behaviors()
                    .map(|b| b.items())
                    .unwrap_or_default(),
                config.default_cache_behavior(),
                config.default_root_object(),
            );
            Ok(DistributionView {
                // HTTP header names are case-insensitive.
                cache_tag_header: config
                    .cache_tag_config()
                    .map(|c| c.header_name().to_ascii_lowercase()),
                ..view
            })
        }
    }

    impl DistributionView {
        /// From the parts a `DistributionConfig` and a `DistributionSummary` both have.
        // `ForwardedValues` is deprecated in favour of cache policies, but distributions made
        // with the legacy cache settings still have it, and it decides their cache key.
        #[allow(deprecated)]
        pub fn from_parts(
            distribution_id: &str,
            origins: Option<&Origins>,
            behaviors: &[CacheBehavior],
            default: Option<&DefaultCacheBehavior>,
            default_root_object: Option<&str>,
        ) -> Self {
            let origins = origins
                .map(|o| o.items())
                .unwrap_or_default()
                .iter()
                .map(|o| Origin {
                    id: o.id().to_owned(),
                    domain_name: o.domain_name().to_owned(),
                    origin_path: o.origin_path().unwrap_or_default().to_owned(),
                })
                .collect();
            let mut list: Vec<Behavior> = behaviors
                .iter()
                .map(|b| {
                    Behavior::new(
                        b.path_pattern(),
                        b.target_origin_id(),
                        b.cache_policy_id(),
                        b.forwarded_values().is_some_and(|f| f.query_string()),
                    )
                })
                .collect();
            if let Some(d) = default {
                list.push(Behavior::new(
                    "*",
                    d.target_origin_id(),
                    d.cache_policy_id(),
                    d.forwarded_values().is_some_and(|f| f.query_string()),
                ));
            }
            Self {
                distribution_id: distribution_id.to_owned(),
                origins,
                behaviors: list,
                default_root_object: default_root_object
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned),
                cache_tag_header: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUCKET: &str = "site";

    fn origin(id: &str, domain: &str, origin_path: &str) -> Origin {
        Origin {
            id: id.into(),
            domain_name: domain.into(),
            origin_path: origin_path.into(),
        }
    }

    fn behavior(pattern: &str, target: &str, query_strings: bool) -> Behavior {
        Behavior {
            path_pattern: pattern.into(),
            target_origin_id: target.into(),
            query_strings,
        }
    }

    fn view(
        origins: Vec<Origin>,
        behaviors: Vec<Behavior>,
        root: Option<&str>,
    ) -> DistributionView {
        DistributionView {
            distribution_id: "E1".into(),
            origins,
            behaviors,
            default_root_object: root.map(str::to_owned),
            cache_tag_header: None,
        }
    }

    fn plain() -> DistributionView {
        view(
            vec![origin("s3", "site.s3.amazonaws.com", "")],
            vec![behavior("*", "s3", false)],
            None,
        )
    }

    #[test]
    fn recognises_every_s3_endpoint_of_the_bucket_and_nothing_else() {
        for domain in [
            "site.s3.amazonaws.com",
            "site.s3.eu-west-1.amazonaws.com",
            "site.s3-eu-west-1.amazonaws.com",
            "site.s3.dualstack.eu-west-1.amazonaws.com",
            "site.s3-website-us-east-1.amazonaws.com",
            "site.s3-website.eu-central-1.amazonaws.com",
            "site.s3.cn-north-1.amazonaws.com.cn",
            "SITE.S3.amazonaws.com.",
        ] {
            assert!(serves_bucket(domain, BUCKET), "{domain}");
        }
        for domain in [
            "other.s3.amazonaws.com",
            "my-site.s3.amazonaws.com",
            "site.example.com",
            "site.s3.amazonaws.com.evil.net",
            "site.cloudfront.net",
            "site.s4.amazonaws.com",
            "x.site.s3.amazonaws.com",
        ] {
            assert!(!serves_bucket(domain, BUCKET), "{domain}");
        }
        assert!(serves_bucket("a.b.s3.amazonaws.com", "a.b"));
        assert!(
            serves_bucket("BUCKET.S3.AMAZONAWS.COM.", "bucket"),
            "case and a final dot"
        );
    }

    #[test]
    fn path_patterns_match_like_cloudfront() {
        for (pattern, path, expected) in [
            ("*", "/anything/at/all", true),
            ("/images/*.jpg", "/images/a/b.jpg", true),
            ("images/*.jpg", "/images/b.jpg", true),
            ("images/*.jpg", "/images/b.JPG", false),
            ("/a?c", "/abc", true),
            ("/a?c", "/ac", false),
            ("/qs/*", "/qs/", true),
            ("/qs/*", "/qs", false),
            ("*.html", "/x/y.html", true),
            ("/d*/*", "/d1/x", true),
        ] {
            assert_eq!(pattern_matches(pattern, path), expected, "{pattern} {path}");
        }
    }

    #[test]
    fn query_strings_follow_the_cache_policy_else_the_forwarded_values() {
        let qs = |policy: Option<&str>, forwarded| {
            Behavior::new("*", "o", policy, forwarded).query_strings
        };
        assert!(
            !qs(Some("658327ea-f89d-4fab-a63d-7e88639e58f6"), true),
            "CachingOptimized"
        );
        assert!(
            qs(Some("2e54312d-136d-493c-8eb9-b001f22f67d2"), false),
            "Amplify holds all"
        );
        assert!(
            qs(Some("a-custom-policy"), false),
            "an unread policy counts as holding them"
        );
        assert!(qs(None, true));
        assert!(!qs(Some(""), false));
    }

    #[test]
    fn a_plain_distribution_keeps_the_paths() {
        let (paths, basis) = plain().apply(BUCKET, &["/a.html".into(), "/d/*".into()]);
        assert_eq!(paths, ["/a.html", "/d/*"]);
        assert_eq!((basis.skipped_total, basis.skipped.len()), (0, 0));
    }

    #[test]
    fn query_string_behaviors_invalidate_every_variant() {
        let v = view(
            vec![origin("s3", "site.s3.amazonaws.com", "")],
            vec![behavior("/qs/*", "s3", true), behavior("*", "s3", false)],
            None,
        );
        assert_eq!(v.paths_for(BUCKET, "/qs/a.js").unwrap(), ["/qs/a.js*"]);
        assert_eq!(v.paths_for(BUCKET, "/b.js").unwrap(), ["/b.js"]);
    }

    #[test]
    fn the_origin_path_is_stripped_and_keys_outside_it_are_skipped() {
        let v = view(
            vec![origin("s3", "site.s3.eu-west-1.amazonaws.com", "/live")],
            vec![behavior("*", "s3", false)],
            None,
        );
        assert_eq!(
            v.paths_for(BUCKET, "/live/a%20b.html").unwrap(),
            ["/a%20b.html"]
        );
        assert_eq!(v.paths_for(BUCKET, "/live").unwrap(), ["/"]);
        assert_eq!(v.paths_for(BUCKET, "/live/docs/*").unwrap(), ["/docs/*"]);
        assert_eq!(v.paths_for(BUCKET, "/live*").unwrap(), ["/*"]);
        let reason = v.paths_for(BUCKET, "/lively/x").unwrap_err();
        assert!(reason.contains("outside the origin path"), "{reason}");
        assert!(v.paths_for(BUCKET, "/draft/x").is_err());
    }

    #[test]
    fn the_default_root_object_also_invalidates_the_root() {
        let v = view(
            vec![origin("s3", "site.s3.amazonaws.com", "/www")],
            vec![behavior("*", "s3", false)],
            Some("home.html"),
        );
        assert_eq!(
            v.paths_for(BUCKET, "/www/home.html").unwrap(),
            ["/", "/home.html"]
        );
        assert_eq!(
            v.paths_for(BUCKET, "/www/other.html").unwrap(),
            ["/other.html"]
        );
        // Under a query-string behavior, the root's variants too.
        let v = view(
            vec![origin("s3", "site.s3.amazonaws.com", "")],
            vec![behavior("*", "s3", true)],
            Some("index.html"),
        );
        assert_eq!(
            v.paths_for(BUCKET, "/index.html").unwrap(),
            ["/*", "/index.html*"]
        );
    }

    #[test]
    fn tags_are_kept_only_where_the_distribution_stores_tags() {
        let paths = ["/www/a.html".to_owned(), "#sale".to_owned()];
        let tagged = DistributionView {
            cache_tag_header: Some("x-amz-meta-cache-tag".into()),
            ..view(
                vec![origin("s3", "site.s3.amazonaws.com", "/www")],
                vec![behavior("*", "s3", false)],
                None,
            )
        };
        // Not mapped through the origin path: a tag names the object, not a URL.
        assert_eq!(tagged.apply(BUCKET, &paths).0, ["#sale", "/a.html"]);
        let untagged = DistributionView {
            cache_tag_header: None,
            ..tagged
        };
        let (planned, basis) = untagged.apply(BUCKET, &paths);
        assert_eq!(planned, ["/a.html"]);
        assert_eq!(basis.skipped[0].path, "#sale");
        assert!(basis.skipped[0].reason.contains("CacheTagConfig"));
    }

    #[test]
    fn a_path_routed_to_another_origin_is_skipped_with_the_reason() {
        let v = view(
            vec![
                origin("app", "app.example.com", ""),
                origin("s3", "site.s3.amazonaws.com", ""),
            ],
            vec![
                behavior("/static/*", "s3", false),
                behavior("*", "app", false),
            ],
            None,
        );
        assert_eq!(
            v.paths_for(BUCKET, "/static/a.css").unwrap(),
            ["/static/a.css"]
        );
        let (paths, basis) = v.apply(BUCKET, &["/static/a.css".into(), "/api/x".into()]);
        assert_eq!(paths, ["/static/a.css"]);
        assert_eq!(basis.skipped_total, 1);
        assert_eq!(basis.skipped[0].path, "/api/x");
        assert!(
            basis.skipped[0]
                .reason
                .contains("sends /api/x to origin \"app\""),
            "{}",
            basis.skipped[0].reason
        );
        // A wildcard may reach the bucket through some behavior: kept.
        assert_eq!(v.paths_for(BUCKET, "/api/*").unwrap(), ["/api/*"]);
    }

    #[test]
    fn a_distribution_without_the_bucket_skips_everything() {
        let v = view(
            vec![origin("s3", "other.s3.amazonaws.com", "")],
            vec![behavior("*", "s3", false)],
            None,
        );
        let reason = v.paths_for(BUCKET, "/a").unwrap_err();
        assert!(
            reason.contains("no origin of the distribution serves bucket"),
            "{reason}"
        );
        let many: Vec<String> = (0..150).map(|i| format!("/f{i}")).collect();
        let (paths, basis) = v.apply(BUCKET, &many);
        assert!(paths.is_empty());
        assert_eq!(
            (basis.skipped_total, basis.skipped.len()),
            (150, PlanBasis::MAX_SKIPPED)
        );
    }

    #[test]
    fn routes_follow_origin_paths_and_query_strings() {
        let v = view(
            vec![
                origin("s3", "site.s3.amazonaws.com", "/live/"),
                origin("unused", "site.s3-website-us-east-1.amazonaws.com", ""),
                origin("app", "app.example.com", ""),
            ],
            vec![behavior("/qs/*", "s3", true), behavior("*", "app", false)],
            None,
        );
        let routes = v.routes(BUCKET);
        assert_eq!(routes.len(), 1, "an origin no behavior uses serves nothing");
        assert_eq!(routes[0].origin_path, "/live/");
        assert!(routes[0].query_strings);
    }

    #[test]
    fn the_view_round_trips_through_json() {
        let (_, basis) = plain().apply(BUCKET, &["/a".into()]);
        let text = serde_json::to_string(&basis).unwrap();
        assert_eq!(serde_json::from_str::<PlanBasis>(&text).unwrap(), basis);
    }
}

/// Adapter test: a GetDistributionConfig answer through the SDK's own types.
#[cfg(all(test, feature = "cloudfront"))]
mod sdk_tests {
    use aws_sdk_cloudfront::Client;
    use aws_sdk_cloudfront::operation::get_distribution_config::GetDistributionConfigOutput;
    use aws_sdk_cloudfront::types::{
        CacheBehavior, CacheBehaviors, CacheTagConfig, DefaultCacheBehavior, DistributionConfig,
        ForwardedValues, Origin as SdkOrigin, Origins, ViewerProtocolPolicy,
    };
    use aws_smithy_mocks::{mock, mock_client};

    use super::*;

    #[allow(deprecated)] // ForwardedValues: the legacy cache settings, still in use
    fn config() -> DistributionConfig {
        let forwarded = |qs| ForwardedValues::builder().query_string(qs).build().unwrap();
        DistributionConfig::builder()
            .caller_reference("r")
            .comment("")
            .enabled(true)
            .default_root_object("index.html")
            .cache_tag_config(
                CacheTagConfig::builder()
                    .header_name("X-Amz-Meta-Cache-Tag")
                    .build()
                    .unwrap(),
            )
            .origins(
                Origins::builder()
                    .quantity(1)
                    .items(
                        SdkOrigin::builder()
                            .id("s3")
                            .domain_name("site.s3.amazonaws.com")
                            .origin_path("/live")
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .cache_behaviors(
                CacheBehaviors::builder()
                    .quantity(1)
                    .items(
                        CacheBehavior::builder()
                            .path_pattern("/qs/*")
                            .target_origin_id("s3")
                            .viewer_protocol_policy(ViewerProtocolPolicy::AllowAll)
                            .forwarded_values(forwarded(true))
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .default_cache_behavior(
                DefaultCacheBehavior::builder()
                    .target_origin_id("s3")
                    .viewer_protocol_policy(ViewerProtocolPolicy::AllowAll)
                    .cache_policy_id("658327ea-f89d-4fab-a63d-7e88639e58f6")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn reads_the_configuration_of_the_distribution_asked_for() {
        let rule = mock!(Client::get_distribution_config)
            .match_requests(|r| r.id() == Some("E1"))
            .then_output(|| {
                GetDistributionConfigOutput::builder()
                    .distribution_config(config())
                    .build()
            });
        let client = mock_client!(aws_sdk_cloudfront, [&rule]);
        let view = CloudFrontConfigs::new(client)
            .distribution_view("E1")
            .await
            .unwrap();
        assert_eq!(
            view,
            DistributionView {
                distribution_id: "E1".into(),
                origins: vec![Origin {
                    id: "s3".into(),
                    domain_name: "site.s3.amazonaws.com".into(),
                    origin_path: "/live".into(),
                }],
                behaviors: vec![
                    Behavior {
                        path_pattern: "/qs/*".into(),
                        target_origin_id: "s3".into(),
                        query_strings: true,
                    },
                    Behavior {
                        path_pattern: "*".into(),
                        target_origin_id: "s3".into(),
                        query_strings: false,
                    },
                ],
                default_root_object: Some("index.html".into()),
                cache_tag_header: Some("x-amz-meta-cache-tag".into()),
            }
        );
        assert_eq!(rule.num_calls(), 1);
    }
}
