//! The last seen cache tags of each object (`functions/core/src/object_tags.rs`) on DynamoDB.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::{DynamoStore, store_error};
use crate::Result;
use crate::object_tags::TagStore;
use crate::schema::item::{key, s, string_list, time};
use crate::schema::{ItemType, attr, keys};

impl TagStore for DynamoStore {
    async fn last_tags(&self, bucket: &str, object_key: &str) -> Result<BTreeSet<String>> {
        let out = self
            .read_consistent(key(keys::object_pk(bucket, object_key), keys::TAGS))
            .send()
            .await
            .map_err(store_error)?;
        Ok(out
            .item
            .as_ref()
            .and_then(|item| string_list(item, attr::TAGS))
            .unwrap_or_default()
            .into_iter()
            .collect())
    }

    async fn keep_tags(
        &self,
        bucket: &str,
        object_key: &str,
        tags: &BTreeSet<String>,
        now: OffsetDateTime,
    ) -> Result<()> {
        let mut item = key(keys::object_pk(bucket, object_key), keys::TAGS);
        item.extend(
            [
                (attr::TYPE, s(ItemType::ObjectTags.as_str())),
                (attr::BUCKET, s(bucket)),
                (attr::KEY, s(object_key)),
                (attr::TAGS, AttributeValue::L(tags.iter().map(s).collect())),
                (attr::LAST_SEEN_AT, time(now)),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        // A tagged object may stay unchanged for longer than the audit's retention and still
        // be cached: its tags never expire. An untagged or deleted one's record does.
        if tags.is_empty() {
            item.insert(attr::EXPIRES_AT.to_owned(), self.expires_at(now));
        }
        self.put(item).await
    }
}
