//! Which distributions serve a key, and under which paths.

use serde::{Deserialize, Serialize};

use crate::object_key::KeyEncoding;
use crate::path::encode_path;
use crate::{Error, Result};

/// Objects of `bucket` whose key starts with `key_prefix` are served by `distribution_id`,
/// whose origin prepends `origin_path` to every request path.
///
/// Unknown fields are rejected: a misspelt `keyPrefix` would otherwise widen the route silently.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    pub bucket: String,
    /// A plain prefix of the full key (not necessarily a directory), like S3's own filters.
    #[serde(default)]
    pub key_prefix: String,
    pub distribution_id: String,
    /// The origin's "Origin path": `/site`, `site` and `/site/` all mean keys under `site/`.
    #[serde(default)]
    pub origin_path: String,
    /// The distribution's cache key includes query strings. The CloudFront developer guide:
    /// "If you configured CloudFront to forward query strings to your origin, you must include
    /// the query strings when invalidating files", or use the `*` wildcard. Which query strings
    /// viewers sent is unknown here, so each path is invalidated as `<path>*` (a wildcard: the
    /// planner counts it against the 15 in progress).
    #[serde(default)]
    pub query_strings: bool,
}

impl Route {
    /// The key as the distribution sees it (origin path stripped), or `None` when the key is
    /// not in this route's bucket, key prefix or origin path.
    pub fn relative_key<'k>(&self, bucket: &str, key: &'k str) -> Option<&'k str> {
        if bucket != self.bucket || !key.starts_with(&self.key_prefix) {
            return None;
        }
        match origin_dir(&self.origin_path) {
            "" => Some(key),
            dir => key.strip_prefix(dir)?.strip_prefix('/'),
        }
    }

    /// `path` as this route's distribution must invalidate it: with every query-string
    /// variant when its cache key holds query strings.
    pub fn covering(&self, path: String) -> String {
        if self.query_strings && !path.ends_with('*') {
            path + "*"
        } else {
            path
        }
    }

    fn validate(&self, index: usize) -> Result<()> {
        let fail = |what: String| Err(Error::InvalidConfig(format!("route {index}: {what}")));
        if self.bucket.trim().is_empty() {
            return fail("bucket is empty".to_owned());
        }
        // CloudFront ids are upper-case letters and digits; anything else is a typo, and the
        // id becomes part of DynamoDB keys and IAM resources.
        if self.distribution_id.is_empty()
            || !self
                .distribution_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        {
            return fail(format!(
                "distribution id {:?} is not a CloudFront distribution id",
                self.distribution_id
            ));
        }
        let dir = origin_dir(&self.origin_path);
        if !dir.is_empty() && dir.split('/').any(str::is_empty) {
            return fail(format!(
                "origin path {:?} has an empty segment",
                self.origin_path
            ));
        }
        Ok(())
    }
}

/// The origin path without its one optional leading and trailing `/`: `/site/` -> `site`.
fn origin_dir(origin_path: &str) -> &str {
    let p = origin_path.strip_prefix('/').unwrap_or(origin_path);
    p.strip_suffix('/').unwrap_or(p)
}

/// Everything collect-keys needs to turn a key into paths.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingConfig {
    pub routes: Vec<Route>,
    /// The directory index name (`index.html`): its changes also invalidate the directory.
    pub index_document: Option<String>,
    pub key_encoding: KeyEncoding,
    /// `prefix*`, `*suffix` or an exact key, matched against the decoded key.
    pub exclude: Vec<String>,
}

impl MappingConfig {
    /// Reads env-style settings through `get`, so tests need no real environment:
    /// `ROUTES` (a JSON array of [`Route`]; when set and non-empty it wins), otherwise
    /// `BUCKET_NAME` + `DISTRIBUTION_IDS` (comma list) + `KEY_PREFIX` + `ORIGIN_PATH`;
    /// `INDEX_DOCUMENT` (default `index.html`, empty disables); `KEY_ENCODING` (`auto`, `raw`,
    /// `form`; default `auto`); `EXCLUDE` (comma-separated `prefix*`, `*suffix` or exact keys).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let set = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let routes = match set("ROUTES") {
            Some(json) => serde_json::from_str::<Vec<Route>>(&json).map_err(|e| {
                Error::InvalidConfig(format!("ROUTES is not a JSON array of routes: {e}"))
            })?,
            None => single_bucket_routes(&set)?,
        };
        if routes.is_empty() {
            return Err(Error::InvalidConfig(
                "no routes: set ROUTES, or BUCKET_NAME and DISTRIBUTION_IDS".to_owned(),
            ));
        }
        for (i, route) in routes.iter().enumerate() {
            route.validate(i)?;
        }
        let index_document = match get("INDEX_DOCUMENT") {
            None => Some("index.html".to_owned()),
            Some(name) if name.trim().is_empty() => None,
            Some(name) if name.contains('/') => {
                return Err(Error::InvalidConfig(format!(
                    "INDEX_DOCUMENT {name:?} must be a file name, without '/'"
                )));
            }
            Some(name) => Some(name.trim().to_owned()),
        };
        let key_encoding = match set("KEY_ENCODING") {
            Some(v) => v.parse()?,
            None => KeyEncoding::default(),
        };
        let exclude = match set("EXCLUDE") {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(exclude_pattern)
                .collect::<Result<_>>()?,
            None => Vec::new(),
        };
        Ok(Self {
            routes,
            index_document,
            key_encoding,
            exclude,
        })
    }

    /// [`Self::from_lookup`] over the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The exclude pattern that matches `key`, if any.
    pub fn excluded_by(&self, key: &str) -> Option<&str> {
        self.exclude.iter().map(String::as_str).find(|pattern| {
            match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
                (Some(suffix), _) => key.ends_with(suffix),
                (None, Some(prefix)) => key.starts_with(prefix),
                (None, None) => key == *pattern,
            }
        })
    }

    /// The paths that serve `relative_key` (see [`Route::relative_key`]): its own, and for an
    /// index document also its directory with and without the trailing slash, since CloudFront
    /// caches `/docs/` and `/docs` separately (the root index adds `/` only).
    pub fn paths_for(&self, relative_key: &str) -> Vec<String> {
        let mut paths = vec![encode_path(relative_key)];
        let dir = self
            .index_document
            .as_deref()
            .and_then(|index| relative_key.strip_suffix(index))
            .filter(|dir| dir.is_empty() || dir.ends_with('/'));
        if let Some(dir) = dir {
            // A directory ending in `*` loses its slash to a wildcard, which covers it (and more).
            let with_slash = encode_path(dir);
            if let Some(without) = with_slash.strip_suffix('/').filter(|p| !p.is_empty()) {
                paths.push(without.to_owned());
            }
            paths.push(with_slash);
        }
        // A key holding `~` maps every alias to the same wildcard.
        let mut seen = std::collections::HashSet::new();
        paths.retain(|p| seen.insert(p.clone()));
        paths
    }
}

/// The routes of the single-bucket parameters: one per distribution id.
fn single_bucket_routes(set: &impl Fn(&str) -> Option<String>) -> Result<Vec<Route>> {
    let Some(bucket) = set("BUCKET_NAME") else {
        return Err(Error::InvalidConfig(
            "BUCKET_NAME is not set (and ROUTES is empty)".to_owned(),
        ));
    };
    let Some(ids) = set("DISTRIBUTION_IDS") else {
        return Err(Error::InvalidConfig(
            "DISTRIBUTION_IDS is not set (and ROUTES is empty)".to_owned(),
        ));
    };
    let key_prefix = set("KEY_PREFIX").unwrap_or_default();
    let origin_path = set("ORIGIN_PATH").unwrap_or_default();
    ids.split(',')
        .map(str::trim)
        .map(|id| {
            if id.is_empty() {
                return Err(Error::InvalidConfig(format!(
                    "DISTRIBUTION_IDS {ids:?} has an empty distribution id"
                )));
            }
            Ok(Route {
                bucket: bucket.clone(),
                key_prefix: key_prefix.clone(),
                distribution_id: id.to_owned(),
                origin_path: origin_path.clone(),
                query_strings: false,
            })
        })
        .collect()
}

/// Checks one `EXCLUDE` pattern: a single `*`, first or last, or none.
fn exclude_pattern(pattern: &str) -> Result<String> {
    let stars = pattern.matches('*').count();
    let placed = pattern.starts_with('*') || pattern.ends_with('*');
    if pattern == "*" || stars > 1 || (stars == 1 && !placed) {
        return Err(Error::InvalidConfig(format!(
            "EXCLUDE pattern {pattern:?}: use prefix*, *suffix or an exact key (and not * alone)"
        )));
    }
    Ok(pattern.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<MappingConfig> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        MappingConfig::from_lookup(|k| vars.get(k).cloned())
    }

    fn config_err(vars: &[(&str, &str)]) -> String {
        match config(vars) {
            Err(Error::InvalidConfig(m)) => m,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    fn route(bucket: &str, prefix: &str, dist: &str, origin: &str) -> Route {
        Route {
            bucket: bucket.into(),
            key_prefix: prefix.into(),
            distribution_id: dist.into(),
            origin_path: origin.into(),
            query_strings: false,
        }
    }

    #[test]
    fn single_bucket_parameters_make_one_route_per_distribution() {
        let cfg = config(&[
            ("BUCKET_NAME", "site-bucket"),
            ("DISTRIBUTION_IDS", "E1AAA, E2BBB"),
            ("KEY_PREFIX", "public/"),
            ("ORIGIN_PATH", "/public"),
        ])
        .unwrap();
        assert_eq!(
            cfg.routes,
            [
                route("site-bucket", "public/", "E1AAA", "/public"),
                route("site-bucket", "public/", "E2BBB", "/public"),
            ]
        );
        assert_eq!(cfg.index_document.as_deref(), Some("index.html"));
        assert_eq!(cfg.key_encoding, KeyEncoding::Auto);
        assert!(cfg.exclude.is_empty());
    }

    #[test]
    fn routes_json_wins_over_the_single_bucket_parameters() {
        let cfg = config(&[
            (
                "ROUTES",
                r#"[{"bucket":"a","distributionId":"E1"},
                    {"bucket":"b","keyPrefix":"x/","distributionId":"E2","originPath":"/x"}]"#,
            ),
            ("BUCKET_NAME", "ignored"),
            ("DISTRIBUTION_IDS", "E9"),
            ("INDEX_DOCUMENT", ""),
            ("KEY_ENCODING", "raw"),
            ("EXCLUDE", "*.map, static/* ,robots.txt,"),
        ])
        .unwrap();
        assert_eq!(
            cfg.routes,
            [route("a", "", "E1", ""), route("b", "x/", "E2", "/x")]
        );
        assert_eq!(cfg.index_document, None);
        assert_eq!(cfg.key_encoding, KeyEncoding::Raw);
        assert_eq!(cfg.exclude, ["*.map", "static/*", "robots.txt"]);
        // Whitespace-only ROUTES counts as unset.
        let cfg = config(&[
            ("ROUTES", "  "),
            ("BUCKET_NAME", "b"),
            ("DISTRIBUTION_IDS", "E1"),
        ]);
        assert_eq!(cfg.unwrap().routes, [route("b", "", "E1", "")]);
    }

    #[test]
    fn configuration_errors_say_what_is_wrong() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "BUCKET_NAME is not set"),
            (&[("BUCKET_NAME", "b")], "DISTRIBUTION_IDS is not set"),
            (
                &[("BUCKET_NAME", "b"), ("DISTRIBUTION_IDS", "E1,,E2")],
                "empty distribution id",
            ),
            (&[("ROUTES", "{}")], "ROUTES is not a JSON array"),
            (&[("ROUTES", "[]")], "no routes"),
            (&[("ROUTES", r#"[{"bucket":"b"}]"#)], "distributionId"),
            (
                &[(
                    "ROUTES",
                    r#"[{"bucket":"b","distributionId":"E1","keyprefix":"x"}]"#,
                )],
                "keyprefix",
            ),
            (
                &[("ROUTES", r#"[{"bucket":"","distributionId":"E1"}]"#)],
                "route 0: bucket is empty",
            ),
            (
                &[("ROUTES", r#"[{"bucket":"b","distributionId":""}]"#)],
                "route 0: distribution id",
            ),
            (
                &[("ROUTES", r#"[{"bucket":"b","distributionId":"E 1"}]"#)],
                "not a CloudFront",
            ),
            (
                &[(
                    "ROUTES",
                    r#"[{"bucket":"b","distributionId":"E1","originPath":"/a//b"}]"#,
                )],
                "empty segment",
            ),
            (
                &[
                    ("BUCKET_NAME", "b"),
                    ("DISTRIBUTION_IDS", "E1"),
                    ("KEY_ENCODING", "url"),
                ],
                "KEY_ENCODING",
            ),
            (
                &[
                    ("BUCKET_NAME", "b"),
                    ("DISTRIBUTION_IDS", "E1"),
                    ("EXCLUDE", "*"),
                ],
                "EXCLUDE",
            ),
            (
                &[
                    ("BUCKET_NAME", "b"),
                    ("DISTRIBUTION_IDS", "E1"),
                    ("EXCLUDE", "a*b"),
                ],
                "a*b",
            ),
            (
                &[
                    ("BUCKET_NAME", "b"),
                    ("DISTRIBUTION_IDS", "E1"),
                    ("EXCLUDE", "*a*"),
                ],
                "*a*",
            ),
            (
                &[
                    ("BUCKET_NAME", "b"),
                    ("DISTRIBUTION_IDS", "E1"),
                    ("INDEX_DOCUMENT", "a/i.html"),
                ],
                "INDEX_DOCUMENT",
            ),
        ];
        for (vars, expected) in cases {
            let msg = config_err(vars);
            assert!(msg.contains(expected), "{vars:?}: {msg}");
        }
    }

    #[test]
    fn origin_path_forms_are_equivalent_and_strip_the_key() {
        for origin in ["/site/", "site", "/site", "site/"] {
            let r = route("b", "", "E1", origin);
            assert_eq!(
                r.relative_key("b", "site/a/b.html"),
                Some("a/b.html"),
                "{origin}"
            );
            assert_eq!(r.relative_key("b", "site/"), Some(""), "{origin}");
            assert_eq!(r.relative_key("b", "site"), None, "{origin}");
            assert_eq!(r.relative_key("b", "sitemap.xml"), None, "{origin}");
            assert_eq!(r.relative_key("b", "other/site/a"), None, "{origin}");
            assert_eq!(r.relative_key("other", "site/a"), None, "{origin}");
        }
        for origin in ["", "/"] {
            let r = route("b", "", "E1", origin);
            assert_eq!(r.relative_key("b", "a/b.html"), Some("a/b.html"));
        }
        let nested = route("b", "", "E1", "/a/b");
        assert_eq!(nested.relative_key("b", "a/b/c"), Some("c"));
        assert_eq!(nested.relative_key("b", "a/bc"), None);
    }

    #[test]
    fn key_prefix_filters_on_the_full_key() {
        let r = route("b", "site/im", "E1", "/site");
        assert_eq!(r.relative_key("b", "site/img/a.png"), Some("img/a.png"));
        assert_eq!(
            r.relative_key("b", "site/images/a.png"),
            Some("images/a.png")
        );
        assert_eq!(r.relative_key("b", "site/css/a.css"), None);
    }

    #[test]
    fn excludes_match_prefix_suffix_or_exact_key() {
        let cfg = config(&[
            ("BUCKET_NAME", "b"),
            ("DISTRIBUTION_IDS", "E1"),
            ("EXCLUDE", "*.map,assets/*,robots.txt"),
        ])
        .unwrap();
        assert_eq!(cfg.excluded_by("js/app.js.map"), Some("*.map"));
        assert_eq!(cfg.excluded_by("assets/app.123.js"), Some("assets/*"));
        assert_eq!(cfg.excluded_by("robots.txt"), Some("robots.txt"));
        assert_eq!(cfg.excluded_by("docs/robots.txt"), None);
        assert_eq!(cfg.excluded_by("js/app.js"), None);
        assert_eq!(cfg.excluded_by("assets"), None);
    }

    #[test]
    fn index_documents_add_their_directory_with_and_without_slash() {
        let cfg = config(&[("BUCKET_NAME", "b"), ("DISTRIBUTION_IDS", "E1")]).unwrap();
        assert_eq!(cfg.paths_for("index.html"), ["/index.html", "/"]);
        assert_eq!(
            cfg.paths_for("docs/index.html"),
            ["/docs/index.html", "/docs", "/docs/"]
        );
        assert_eq!(
            cfg.paths_for("a b/index.html"),
            ["/a%20b/index.html", "/a%20b", "/a%20b/"]
        );
        // `/x*` without its slash can only be said as a wildcard (a trailing `*` always is one):
        // it covers the directory and more, the safe side.
        assert_eq!(
            cfg.paths_for("x*/index.html"),
            ["/x*/index.html", "/x*", "/x*/"]
        );
        // A `~` in the directory: every alias is the same wildcard, listed once.
        assert_eq!(cfg.paths_for("~a/index.html"), ["/*"]);
        assert_eq!(cfg.paths_for("docs/myindex.html"), ["/docs/myindex.html"]);
        assert_eq!(
            cfg.paths_for("docs/index.html.bak"),
            ["/docs/index.html.bak"]
        );
        let off = config(&[
            ("BUCKET_NAME", "b"),
            ("DISTRIBUTION_IDS", "E1"),
            ("INDEX_DOCUMENT", ""),
        ]);
        assert_eq!(
            off.unwrap().paths_for("docs/index.html"),
            ["/docs/index.html"]
        );
    }
}
