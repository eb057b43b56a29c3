//! Items as DynamoDB holds them: typed reads of attributes, and the conversions between the
//! model's types and their items.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::{ChunkStatus, attr, keys};
use crate::model::{Batch, Chunk, OpenPointer, PlanRef, parse_timestamp, timestamp};
use crate::{Error, Result};

pub type Item = HashMap<String, AttributeValue>;

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn time(t: OffsetDateTime) -> AttributeValue {
    s(timestamp(t))
}

/// The primary key of an item.
pub fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([(attr::PK.to_owned(), s(pk)), (attr::SK.to_owned(), s(sk))])
}

/// A string attribute.
pub fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// A number attribute that fits `T`.
pub fn number<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// A timestamp attribute (see [`crate::model::timestamp`]).
pub fn at(item: &Item, name: &str) -> Option<OffsetDateTime> {
    text(item, name).and_then(parse_timestamp)
}

/// A list of strings (a chunk's `paths`).
pub fn string_list(item: &Item, name: &str) -> Option<Vec<String>> {
    match item.get(name) {
        Some(AttributeValue::L(l)) => {
            Some(l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
        }
        _ => None,
    }
}

/// A string set (a path's `eventIds`); empty when absent.
pub fn string_set<'a>(item: &'a Item, name: &str) -> &'a [String] {
    match item.get(name) {
        Some(AttributeValue::Ss(set)) => set,
        _ => &[],
    }
}

fn required<'a>(item: &'a Item, name: &str) -> Result<&'a str> {
    text(item, name).ok_or_else(|| {
        Error::StoreError(format!(
            "item {}/{} lacks string attribute {name}",
            text(item, attr::PK).unwrap_or_default(),
            text(item, attr::SK).unwrap_or_default()
        ))
    })
}

fn required_time(item: &Item, name: &str) -> Result<OffsetDateTime> {
    let raw = required(item, name)?;
    parse_timestamp(raw)
        .ok_or_else(|| Error::StoreError(format!("attribute {name} is not a timestamp: {raw}")))
}

/// The open-batch pointer (`DIST#<id>` / `OPEN`).
impl TryFrom<&Item> for OpenPointer {
    type Error = Error;

    fn try_from(item: &Item) -> Result<Self> {
        Ok(OpenPointer {
            batch_id: required(item, attr::BATCH_ID)?.to_owned(),
            opened_at: required_time(item, attr::OPENED_AT)?,
        })
    }
}

/// The pointer item of `distribution_id`.
pub fn pointer_item(distribution_id: &str, pointer: &OpenPointer) -> Item {
    let mut item = key(keys::dist_pk(distribution_id), keys::OPEN);
    item.extend([
        (attr::BATCH_ID.to_owned(), s(&pointer.batch_id)),
        (attr::OPENED_AT.to_owned(), time(pointer.opened_at)),
        (attr::DISTRIBUTION_ID.to_owned(), s(distribution_id)),
    ]);
    item
}

/// The batch item (`BATCH#<id>` / `META`), as far as the functions read it.
impl TryFrom<&Item> for Batch {
    type Error = Error;

    fn try_from(item: &Item) -> Result<Self> {
        Ok(Batch {
            batch_id: required(item, attr::BATCH_ID)?.to_owned(),
            distribution_id: required(item, attr::DISTRIBUTION_ID)?.to_owned(),
            status: required(item, attr::STATUS)?.parse()?,
            opened_at: required_time(item, attr::OPENED_AT)?,
            plan: text(item, attr::PLAN_ID).map(|plan_id| PlanRef {
                plan_id: plan_id.to_owned(),
                chunks: number(item, attr::PLANNED_CHUNKS).unwrap_or(0),
            }),
            submitted_at: at(item, attr::SUBMITTED_AT),
            poll_epoch: number(item, attr::POLL_EPOCH),
            poll_since: at(item, attr::POLL_SINCE),
        })
    }
}

/// The attributes of `batch` itself (not its index entries: `lifecycle.rs` decides those).
impl From<&Batch> for Item {
    fn from(batch: &Batch) -> Item {
        let mut item = key(keys::batch_pk(&batch.batch_id), keys::META);
        item.extend([
            (attr::TYPE.to_owned(), s(super::ItemType::Batch.as_str())),
            (attr::BATCH_ID.to_owned(), s(&batch.batch_id)),
            (attr::DISTRIBUTION_ID.to_owned(), s(&batch.distribution_id)),
            (attr::STATUS.to_owned(), s(batch.status.as_str())),
            (attr::OPENED_AT.to_owned(), time(batch.opened_at)),
        ]);
        if let Some(plan) = &batch.plan {
            item.insert(attr::PLAN_ID.to_owned(), s(&plan.plan_id));
            item.insert(attr::PLANNED_CHUNKS.to_owned(), n(plan.chunks));
        }
        let optional = [
            (attr::SUBMITTED_AT, batch.submitted_at.map(time)),
            (attr::POLL_EPOCH, batch.poll_epoch.map(n)),
            (attr::POLL_SINCE, batch.poll_since.map(time)),
        ];
        item.extend(
            optional
                .into_iter()
                .filter_map(|(name, value)| Some((name.to_owned(), value?))),
        );
        item
    }
}

/// A plan chunk (`BATCH#<id>` / `PLAN#<planId>#<n>`).
impl TryFrom<&Item> for Chunk {
    type Error = Error;

    fn try_from(item: &Item) -> Result<Self> {
        let sk = required(item, attr::SK)?;
        let (plan_id, index) = keys::parse_plan_sk(sk)
            .ok_or_else(|| Error::StoreError(format!("bad plan key {sk}")))?;
        let status = text(item, attr::STATUS).map(str::parse).transpose()?;
        Ok(Chunk {
            plan_id: plan_id.to_owned(),
            index,
            paths: string_list(item, attr::PATHS)
                .ok_or_else(|| Error::StoreError(format!("plan chunk {sk} has no paths")))?,
            invalidation_id: text(item, attr::INVALIDATION_ID).map(str::to_owned),
            completed: status == Some(ChunkStatus::Completed),
        })
    }
}

/// Chunk `chunk` of batch `batch_id`'s plan, as the plan stores it.
pub fn chunk_item(batch_id: &str, chunk: &Chunk) -> Item {
    let status = match (&chunk.invalidation_id, chunk.completed) {
        (_, true) => ChunkStatus::Completed,
        (Some(_), false) => ChunkStatus::InProgress,
        (None, false) => ChunkStatus::Planned,
    };
    let mut item = key(
        keys::batch_pk(batch_id),
        keys::plan_sk(&chunk.plan_id, chunk.index),
    );
    item.extend([
        (
            attr::PATHS.to_owned(),
            AttributeValue::L(chunk.paths.iter().map(s).collect()),
        ),
        (
            attr::CALLER_REFERENCE.to_owned(),
            s(keys::caller_reference(batch_id, chunk.index)),
        ),
        (attr::STATUS.to_owned(), s(status.as_str())),
    ]);
    if let Some(id) = &chunk.invalidation_id {
        item.insert(attr::INVALIDATION_ID.to_owned(), s(id));
    }
    item
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::model::BatchStatus;

    #[test]
    fn items_read_back_as_what_was_written() {
        let pointer = OpenPointer {
            batch_id: "E1-b".into(),
            opened_at: datetime!(2026-11-25 03:04:05.5 UTC),
        };
        let item = pointer_item("E1", &pointer);
        assert_eq!(text(&item, attr::PK), Some("DIST#E1"));
        assert_eq!(OpenPointer::try_from(&item).unwrap(), pointer);

        let mut batch = Batch {
            batch_id: "E1-b".into(),
            distribution_id: "E1".into(),
            status: BatchStatus::Open,
            opened_at: datetime!(2026-11-25 03:04:05 UTC),
            plan: None,
            submitted_at: None,
            poll_epoch: None,
            poll_since: None,
        };
        assert_eq!(Batch::try_from(&Item::from(&batch)).unwrap(), batch);
        batch = Batch {
            status: BatchStatus::Submitted,
            plan: Some(PlanRef {
                plan_id: "p1".into(),
                chunks: 2,
            }),
            submitted_at: Some(datetime!(2026-11-25 03:05 UTC)),
            poll_epoch: Some(1),
            poll_since: Some(datetime!(2026-11-25 03:06 UTC)),
            ..batch
        };
        assert_eq!(Batch::try_from(&Item::from(&batch)).unwrap(), batch);

        for (invalidation_id, completed) in [(None, false), (Some("I1"), false), (Some("I1"), true)]
        {
            let chunk = Chunk {
                plan_id: "p1".into(),
                index: 3,
                paths: vec!["/a".into(), "/img/*".into()],
                invalidation_id: invalidation_id.map(Into::into),
                completed,
            };
            let item = chunk_item("E1-b", &chunk);
            assert_eq!(text(&item, attr::CALLER_REFERENCE), Some("E1-b#3"));
            assert_eq!(Chunk::try_from(&item).unwrap(), chunk);
        }
    }

    #[test]
    fn an_item_missing_a_required_attribute_names_it_and_its_key() {
        let mut item = key(keys::batch_pk("E1-b"), keys::META);
        item.insert(attr::BATCH_ID.into(), s("E1-b"));
        let err = Batch::try_from(&item).unwrap_err();
        assert!(
            err.to_string()
                .contains("BATCH#E1-b/META lacks string attribute distributionId"),
            "{err}"
        );
        item.insert(attr::DISTRIBUTION_ID.into(), s("E1"));
        item.insert(attr::STATUS.into(), s("Open"));
        item.insert(attr::OPENED_AT.into(), s("2026-11-25T03:04:05.000Z"));
        assert_eq!(Batch::try_from(&item).unwrap_err().name(), "StoreError");
    }
}
