//! Update expressions built from the schema's names, and a status transition of
//! `lifecycle.rs` as the attributes it writes and removes.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use crate::lifecycle::{Listing, Mark, Transition};
use crate::model::{BatchRef, BatchStatus};
use crate::schema::item::{Item, s, time};
use crate::schema::{BY_DISTRIBUTION_PK, BY_DISTRIBUTION_SK, BY_STATUS_PK, BY_STATUS_SK};
use crate::schema::{ItemType, attr, keys};

/// Attribute names that are DynamoDB reserved words: expressions name them as `#<name>`.
const RESERVED: [&str; 6] = [
    attr::STATUS,
    attr::TYPE,
    attr::PATH,
    attr::KEY,
    attr::BUCKET,
    attr::CHANGE,
];

/// One attribute write, with the placeholder its value goes by in an expression.
pub(super) enum Write {
    Set(&'static str, &'static str, AttributeValue),
    /// Set unless the item has the attribute already (the first writer's value stays).
    SetIfAbsent(&'static str, &'static str, AttributeValue),
    Remove(&'static str),
}

/// An UpdateItem's expression and its names and values, clause by clause.
#[derive(Debug, Default, Clone)]
pub(super) struct Update {
    set: Vec<String>,
    remove: Vec<String>,
    add: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Update {
    fn name(&mut self, attr: &'static str) -> String {
        if !RESERVED.contains(&attr) {
            return attr.to_owned();
        }
        let placeholder = format!("#{attr}");
        self.names.insert(placeholder.clone(), attr.to_owned());
        placeholder
    }

    pub fn write(mut self, write: Write) -> Self {
        match write {
            Write::Set(attr, placeholder, value) => {
                let name = self.name(attr);
                self.set.push(format!("{name} = {placeholder}"));
                self.value(placeholder, value)
            }
            Write::SetIfAbsent(attr, placeholder, value) => {
                let name = self.name(attr);
                self.set
                    .push(format!("{name} = if_not_exists({name}, {placeholder})"));
                self.value(placeholder, value)
            }
            Write::Remove(attr) => {
                let name = self.name(attr);
                self.remove.push(name);
                self
            }
        }
    }

    pub fn writes(self, writes: impl IntoIterator<Item = Write>) -> Self {
        writes.into_iter().fold(self, Self::write)
    }

    pub fn set(self, attr: &'static str, placeholder: &'static str, value: AttributeValue) -> Self {
        self.write(Write::Set(attr, placeholder, value))
    }

    pub fn set_if_absent(
        self,
        attr: &'static str,
        placeholder: &'static str,
        value: AttributeValue,
    ) -> Self {
        self.write(Write::SetIfAbsent(attr, placeholder, value))
    }

    /// `ADD attr placeholder`: adds to a number or a set.
    pub fn add(mut self, attr: &'static str, placeholder: &str, value: AttributeValue) -> Self {
        let name = self.name(attr);
        self.add.push(format!("{name} {placeholder}"));
        self.value(placeholder, value)
    }

    /// A value the condition expression uses.
    pub fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    pub fn expression(&self) -> String {
        [
            ("SET", &self.set),
            ("REMOVE", &self.remove),
            ("ADD", &self.add),
        ]
        .into_iter()
        .filter(|(_, clauses)| !clauses.is_empty())
        .map(|(action, clauses)| format!("{action} {}", clauses.join(", ")))
        .collect::<Vec<_>>()
        .join(" ")
    }

    /// `request` with this update (DynamoDB rejects an empty name or value map).
    pub fn on(self, request: UpdateItemFluentBuilder) -> UpdateItemFluentBuilder {
        request
            .update_expression(self.expression())
            .set_expression_attribute_names((!self.names.is_empty()).then_some(self.names))
            .set_expression_attribute_values((!self.values.is_empty()).then_some(self.values))
    }
}

/// Who a write that may create the batch item creates it as ([`Listing::Ensure`]).
pub(super) struct Identity<'a> {
    pub batch: &'a BatchRef,
    /// `openedAt`, should this write create the item.
    pub opened_at: OffsetDateTime,
    /// `expiresAt`, should this write create the item.
    pub ttl: AttributeValue,
}

/// The writes of `t` to batch `batch_id`'s item. The status's value goes by its own name
/// (`:closed`, `:failed`, ...). Only the writes of an OPEN, CLOSED or FAILED batch ensure
/// its identity, and their callers know it.
pub(super) fn transition(t: &Transition, batch_id: &str, identity: Option<Identity>) -> Vec<Write> {
    let status = match t.status {
        BatchStatus::Open => ":open",
        BatchStatus::Closed => ":closed",
        BatchStatus::Submitted => ":submitted",
        BatchStatus::Completed => ":completed",
        BatchStatus::Failed => ":failed",
        BatchStatus::Empty => ":empty",
    };
    let mut writes = vec![Write::Set(attr::STATUS, status, s(t.status.as_str()))];
    match t.waiting_since {
        Mark::Set(since) => writes.extend([
            Write::Set(BY_STATUS_PK, status, s(t.status.as_str())),
            Write::Set(BY_STATUS_SK, ":ssk", s(keys::index_sk(since, batch_id))),
        ]),
        Mark::Keep => {}
        Mark::Clear => writes.extend([Write::Remove(BY_STATUS_PK), Write::Remove(BY_STATUS_SK)]),
    }
    match t.listing {
        Listing::Ensure => {
            let Identity {
                batch,
                opened_at,
                ttl,
            } = identity.expect("a write that may create a batch item names the batch");
            writes.extend([
                Write::Set(attr::BATCH_ID, ":b", s(&batch.batch_id)),
                Write::Set(attr::DISTRIBUTION_ID, ":d", s(&batch.distribution_id)),
                Write::Set(attr::TYPE, ":batch", s(ItemType::Batch.as_str())),
                Write::SetIfAbsent(attr::OPENED_AT, ":opened", time(opened_at)),
                Write::Set(
                    BY_DISTRIBUTION_PK,
                    ":g1",
                    s(keys::dist_pk(&batch.distribution_id)),
                ),
                Write::SetIfAbsent(
                    BY_DISTRIBUTION_SK,
                    ":gsk",
                    s(keys::index_sk(opened_at, &batch.batch_id)),
                ),
                Write::SetIfAbsent(attr::EXPIRES_AT, ":ttl", ttl),
            ]);
        }
        Listing::Keep => {}
        Listing::Leave => writes.extend([
            Write::Remove(BY_DISTRIBUTION_PK),
            Write::Remove(BY_DISTRIBUTION_SK),
        ]),
    }
    match t.failed_at {
        Mark::Set(failed) => writes.push(Write::Set(attr::FAILED_AT, ":failedAt", time(failed))),
        Mark::Keep => {}
        Mark::Clear => writes.push(Write::Remove(attr::FAILED_AT)),
    }
    writes
}

/// The writes as the attributes of a new item (a put: nothing to keep, nothing to remove).
pub(super) fn into_item(item: &mut Item, writes: Vec<Write>) {
    for write in writes {
        if let Write::Set(attr, _, value) | Write::SetIfAbsent(attr, _, value) = write {
            item.insert(attr.to_owned(), value);
        }
    }
}
