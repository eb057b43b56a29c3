//! Cache tags: the `#tag` invalidation items of a distribution with a `CacheTagConfig`
//! (docs/design.md §3, "Cache tags").
//!
//! CloudFront developer guide, "What you need to know when invalidating tags": "Tag
//! invalidation items must begin with the `#` character"; "Tag values are case-insensitive";
//! "Each tag value must contain only ASCII visible characters (33–126), excluding commas. The
//! maximum length of a tag is 256 characters"; "tag invalidation items do not support the `*`
//! wildcard"; "CloudFront processes up to 50 tags per cached object. If an origin response
//! contains more than 50 tags in the configured header, the additional tags beyond the limit
//! are not stored and cannot be used for invalidation." And "Invalidating content by cache
//! tags": "Tags are comma-separated in the header value. Leading and trailing whitespace around
//! each tag is trimmed."
//!
//! Tags are kept lowercase, so the planner's set dedupes `#Sale` and `#sale` as the one tag they
//! are.

use std::collections::BTreeSet;

/// "The maximum length of a tag is 256 characters."
pub const MAX_TAG_LEN: usize = 256;
/// "CloudFront processes up to 50 tags per cached object."
pub const MAX_TAGS_PER_OBJECT: usize = 50;
/// What starts a tag invalidation item.
pub const TAG_PREFIX: char = '#';

/// Why a tag cannot be invalidated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("empty cache tag")]
    Empty,
    #[error("cache tag {0:?} is longer than {MAX_TAG_LEN} characters")]
    TooLong(String),
    #[error("cache tag {0:?} holds a character outside ASCII 33-126 or a comma")]
    BadCharacter(String),
}

/// Whether `item` is a tag invalidation item (`#tag`) rather than a path.
pub fn is_tag_item(item: &str) -> bool {
    item.starts_with(TAG_PREFIX)
}

/// The invalidation item of one tag (`#` + the tag, lowercase), checked against CloudFront's
/// format; a leading `#` in `tag` is taken as the item's own.
pub fn tag_item(tag: &str) -> Result<String, TagError> {
    let tag = tag.strip_prefix(TAG_PREFIX).unwrap_or(tag);
    if tag.is_empty() {
        return Err(TagError::Empty);
    }
    if tag.len() > MAX_TAG_LEN {
        return Err(TagError::TooLong(tag.chars().take(40).collect()));
    }
    if !tag.bytes().all(|b| (33..=126).contains(&b) && b != b',') {
        return Err(TagError::BadCharacter(tag.to_owned()));
    }
    Ok(format!("{TAG_PREFIX}{}", tag.to_ascii_lowercase()))
}

/// The tag items of a cache-tag header value (an S3 object's metadata): comma-separated,
/// trimmed, the first [`MAX_TAGS_PER_OBJECT`] only (CloudFront stores no more, so no more can
/// match), each once. A malformed tag cannot be stored by CloudFront either: it is skipped and
/// returned apart, for the log.
pub fn header_tags(value: &str) -> (BTreeSet<String>, Vec<TagError>) {
    let mut items = BTreeSet::new();
    let mut rejected = Vec::new();
    let tags = value.split(',').map(str::trim).filter(|t| !t.is_empty());
    for tag in tags.take(MAX_TAGS_PER_OBJECT) {
        match tag_item(tag) {
            Ok(item) => {
                items.insert(item);
            }
            Err(e) => rejected.push(e),
        }
    }
    (items, rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_hash_prefixed_lowercase_and_checked() {
        assert_eq!(
            tag_item("Product:Electronics").unwrap(),
            "#product:electronics"
        );
        assert_eq!(tag_item("#sale").unwrap(), "#sale");
        assert_eq!(tag_item("!~").unwrap(), "#!~");
        assert_eq!(tag_item(""), Err(TagError::Empty));
        assert_eq!(tag_item("#"), Err(TagError::Empty));
        assert!(matches!(tag_item("a,b"), Err(TagError::BadCharacter(_))));
        assert!(matches!(tag_item("a b"), Err(TagError::BadCharacter(_))));
        assert!(matches!(
            tag_item("caf\u{e9}"),
            Err(TagError::BadCharacter(_))
        ));
        assert!(matches!(
            tag_item("a\u{7f}"),
            Err(TagError::BadCharacter(_))
        ));
        assert!(tag_item(&"x".repeat(256)).is_ok());
        assert!(matches!(
            tag_item(&"x".repeat(257)),
            Err(TagError::TooLong(_))
        ));
    }

    #[test]
    fn a_header_value_is_split_trimmed_deduped_and_capped_at_fifty() {
        let (items, rejected) =
            header_tags("product:electronics, category:tv,brand:example ,,Brand:Example");
        assert_eq!(
            items.into_iter().collect::<Vec<_>>(),
            ["#brand:example", "#category:tv", "#product:electronics"]
        );
        assert!(rejected.is_empty());

        let many: Vec<String> = (0..60).map(|i| format!("t{i}")).collect();
        let (items, _) = header_tags(&many.join(","));
        assert_eq!(items.len(), MAX_TAGS_PER_OBJECT);
        assert!(items.contains("#t49") && !items.contains("#t50"));

        let (items, rejected) = header_tags("ok, caf\u{e9}");
        assert_eq!(items.len(), 1);
        assert_eq!(rejected.len(), 1);
    }

    #[test]
    fn only_hash_items_are_tags() {
        assert!(is_tag_item("#a"));
        assert!(!is_tag_item("/a#b"));
        assert!(!is_tag_item("/%23a"));
    }
}
