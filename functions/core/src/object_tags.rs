//! Cache tags from S3 object metadata (docs/design.md §3, "Cache tags"): with the stack's
//! `CacheTagMetadata` set, a change to an object also invalidates its cache tags on every
//! distribution its paths go to.
//!
//! CloudFront developer guide, "Invalidating content by cache tags": "For S3 origins, you can
//! attach cache tags to your S3 objects as metadata ... S3 surfaces object metadata as response
//! headers prefixed with x-amz-meta-<Key>, so a metadata key of cache-tag would be returned as
//! a x-amz-meta-cache-tag header. You can set the HeaderName in your CacheTagConfig to
//! x-amz-meta-cache-tag".
//!
//! A cached copy carries the tags the object had when CloudFront fetched it, so the tags that
//! free it are the ones last seen, not only the ones it has now: an overwrite that drops a tag,
//! and a delete (whose object has no metadata left to read), invalidate the tags last seen,
//! kept in the table per object. An object never seen before contributes the tags it has now.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use time::OffsetDateTime;

use crate::Result;
use crate::collect::PathChange;
use crate::event::ChangeKind;
use crate::tags::header_tags;

/// Reads an object's user metadata (`s3:GetObject`, as HeadObject).
pub trait ObjectMetadata: Send + Sync {
    /// The value of the current object's user metadata `name`; `None` when the object or that
    /// metadata is absent (a later event handles a newer object).
    fn metadata(
        &self,
        bucket: &str,
        key: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>>> + Send;
}

/// The tags last seen per object (`OBJECT#<bucket>#<key>` / `TAGS`).
pub trait TagStore: Send + Sync {
    fn last_tags(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<BTreeSet<String>>> + Send;

    /// Keeps `tags` as the object's; with none (a deleted or untagged object), the record
    /// expires with the audit's retention.
    fn keep_tags(
        &self,
        bucket: &str,
        key: &str,
        tags: &BTreeSet<String>,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// What was read for one object: the tag items to invalidate (last seen and current) and the
/// current ones to keep once the paths joined.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObjectTags {
    pub bucket: String,
    pub key: String,
    pub current: BTreeSet<String>,
}

/// Adds each changed object's tag items to `paths`, per distribution its paths go to. Returns
/// the tags to keep, to be written with [`keep`] once the paths joined: written earlier, a
/// retry after a failed join would have lost the tags last seen.
pub async fn add_tags<S: TagStore, M: ObjectMetadata>(
    store: &S,
    objects: &M,
    metadata_name: &str,
    paths: &mut Vec<PathChange>,
) -> Result<Vec<ObjectTags>> {
    // One read per object, whatever its number of paths; the distributions its paths go to.
    let mut changed: BTreeMap<(&str, &str), (&PathChange, BTreeSet<&str>)> = BTreeMap::new();
    for p in paths.iter().filter(|p| !p.key.is_empty()) {
        let (change, distributions) = changed
            .entry((p.bucket.as_str(), p.key.as_str()))
            .or_insert_with(|| (p, BTreeSet::new()));
        *change = p;
        distributions.insert(p.distribution_id.as_str());
    }
    let mut tagged = Vec::new();
    let mut added = Vec::new();
    for ((bucket, key), (change, distributions)) in changed {
        let current = match change.change {
            ChangeKind::Created => {
                let value = objects.metadata(bucket, key, metadata_name).await?;
                let (items, rejected) = header_tags(value.as_deref().unwrap_or_default());
                for e in rejected {
                    tracing::warn!(bucket, key, error = %e, "cache tag CloudFront cannot store: not invalidated");
                }
                items
            }
            ChangeKind::Deleted | ChangeKind::Manual => BTreeSet::new(),
        };
        let mut items = store.last_tags(bucket, key).await?;
        items.extend(current.iter().cloned());
        for distribution in distributions {
            for item in &items {
                added.push(PathChange {
                    distribution_id: distribution.to_owned(),
                    path: item.clone(),
                    reason: Some(format!("cache tag of {key}")),
                    ..change.clone()
                });
            }
        }
        tagged.push(ObjectTags {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            current,
        });
    }
    paths.extend(added);
    Ok(tagged)
}

/// Keeps each object's current tags as its last seen.
pub async fn keep<S: TagStore>(
    store: &S,
    tagged: &[ObjectTags],
    now: OffsetDateTime,
) -> Result<()> {
    for t in tagged {
        store.keep_tags(&t.bucket, &t.key, &t.current, now).await?;
    }
    Ok(())
}

#[cfg(feature = "s3")]
pub use sdk::S3Metadata;

#[cfg(feature = "s3")]
mod sdk {
    use aws_sdk_s3::Client;
    use aws_sdk_s3::error::ProvideErrorMetadata;

    use super::ObjectMetadata;
    use crate::{Error, Result};

    #[derive(Debug, Clone)]
    pub struct S3Metadata {
        client: Client,
    }

    impl S3Metadata {
        pub fn new(client: Client) -> Self {
            Self { client }
        }
    }

    impl ObjectMetadata for S3Metadata {
        async fn metadata(&self, bucket: &str, key: &str, name: &str) -> Result<Option<String>> {
            let head = self
                .client
                .head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await;
            match head {
                // The SDK gives user metadata without its `x-amz-meta-` prefix, keys lowercase.
                Ok(out) => Ok(out
                    .metadata()
                    .and_then(|m| m.get(&name.to_ascii_lowercase()))
                    .cloned()),
                Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
                Err(e) => {
                    let status = e.raw_response().map(|r| r.status().as_u16());
                    let what = format!(
                        "HeadObject s3://{bucket}/{key}: {}",
                        e.code().unwrap_or("no error code")
                    );
                    Err(match status {
                        Some(403) => Error::AccessDenied(what),
                        _ => Error::ServiceUnavailable(what),
                    })
                }
            }
        }
    }
}

/// Adapter test: HeadObject answers on the wire (a HEAD has no body: the status says it all).
#[cfg(all(test, feature = "s3"))]
mod sdk_tests {
    use aws_sdk_s3::Client;
    use aws_smithy_mocks::{mock, mock_client};
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    async fn head(response: fn() -> Response<SdkBody>) -> Result<Option<String>> {
        let rule = mock!(Client::head_object)
            .match_requests(|r| r.bucket() == Some("site") && r.key() == Some("a b.html"))
            .then_http_response(response);
        let client = mock_client!(aws_sdk_s3, [&rule]);
        S3Metadata::new(client)
            .metadata("site", "a b.html", "Cache-Tag")
            .await
    }

    fn status(code: u16) -> Response<SdkBody> {
        Response::new(StatusCode::try_from(code).unwrap(), SdkBody::empty())
    }

    #[tokio::test]
    async fn reads_the_metadata_and_names_what_went_wrong() {
        let tagged = head(|| {
            let mut r = status(200);
            r.headers_mut().insert("x-amz-meta-cache-tag", "sale, tv");
            r.headers_mut().insert("x-amz-meta-other", "x");
            r
        })
        .await
        .unwrap();
        assert_eq!(tagged.as_deref(), Some("sale, tv"));
        assert_eq!(head(|| status(200)).await.unwrap(), None);
        assert_eq!(head(|| status(404)).await.unwrap(), None, "gone since");
        assert_eq!(
            head(|| status(403)).await.unwrap_err().name(),
            "AccessDenied"
        );
        assert_eq!(
            head(|| status(503)).await.unwrap_err().name(),
            "ServiceUnavailable"
        );
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::memory::MemoryStore;

    /// Objects with fixed metadata.
    struct Objects(Vec<(&'static str, &'static str)>);

    impl ObjectMetadata for Objects {
        async fn metadata(&self, _bucket: &str, key: &str, name: &str) -> Result<Option<String>> {
            assert_eq!(name, "cache-tag");
            Ok(self
                .0
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned()))
        }
    }

    fn change(distribution: &str, path: &str, key: &str, kind: ChangeKind) -> PathChange {
        PathChange {
            change: kind,
            ..PathChange::created(distribution, path, key, "ev1")
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-12-01 06:00 UTC);

    fn tags_of(paths: &[PathChange], distribution: &str) -> Vec<String> {
        paths
            .iter()
            .filter(|p| p.distribution_id == distribution && p.path.starts_with('#'))
            .map(|p| p.path.clone())
            .collect()
    }

    #[tokio::test]
    async fn a_created_object_adds_its_tags_on_each_of_its_distributions() {
        let store = MemoryStore::new();
        let objects = Objects(vec![("p/tv.html", "Product:TV, sale")]);
        let mut paths = vec![
            change("E1", "/p/tv.html", "p/tv.html", ChangeKind::Created),
            change("E2", "/p/tv.html", "p/tv.html", ChangeKind::Created),
        ];
        let tagged = add_tags(&store, &objects, "cache-tag", &mut paths)
            .await
            .unwrap();
        assert_eq!(tags_of(&paths, "E1"), ["#product:tv", "#sale"]);
        assert_eq!(tags_of(&paths, "E2"), ["#product:tv", "#sale"]);
        let tag = paths.iter().find(|p| p.path == "#sale").unwrap();
        assert_eq!(tag.reason.as_deref(), Some("cache tag of p/tv.html"));
        assert_eq!(tag.event_id.as_deref(), Some("ev1"));
        keep(&store, &tagged, NOW).await.unwrap();
        assert_eq!(
            store.last_tags("site", "p/tv.html").await.unwrap(),
            BTreeSet::from(["#product:tv".to_owned(), "#sale".to_owned()])
        );
    }

    #[tokio::test]
    async fn an_overwrite_and_a_delete_also_free_the_tags_last_seen() {
        let store = MemoryStore::new();
        let first = Objects(vec![("a.html", "old,both")]);
        let mut paths = vec![change("E1", "/a.html", "a.html", ChangeKind::Created)];
        let tagged = add_tags(&store, &first, "cache-tag", &mut paths)
            .await
            .unwrap();
        keep(&store, &tagged, NOW).await.unwrap();

        let second = Objects(vec![("a.html", "both,new")]);
        let mut paths = vec![change("E1", "/a.html", "a.html", ChangeKind::Created)];
        let tagged = add_tags(&store, &second, "cache-tag", &mut paths)
            .await
            .unwrap();
        assert_eq!(tags_of(&paths, "E1"), ["#both", "#new", "#old"]);
        keep(&store, &tagged, NOW).await.unwrap();

        let gone = Objects(vec![]);
        let mut paths = vec![change("E1", "/a.html", "a.html", ChangeKind::Deleted)];
        let tagged = add_tags(&store, &gone, "cache-tag", &mut paths)
            .await
            .unwrap();
        assert_eq!(tags_of(&paths, "E1"), ["#both", "#new"]);
        keep(&store, &tagged, NOW).await.unwrap();
        assert!(store.last_tags("site", "a.html").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn untagged_objects_and_manual_paths_add_nothing() {
        let store = MemoryStore::new();
        let objects = Objects(vec![]);
        let manual = PathChange {
            bucket: String::new(),
            key: String::new(),
            ..change("E1", "/x", "", ChangeKind::Manual)
        };
        let mut paths = vec![
            change("E1", "/a.html", "a.html", ChangeKind::Created),
            manual,
        ];
        let tagged = add_tags(&store, &objects, "cache-tag", &mut paths)
            .await
            .unwrap();
        assert_eq!(paths.len(), 2);
        assert_eq!(tagged.len(), 1, "the untagged object is kept as untagged");
    }
}
