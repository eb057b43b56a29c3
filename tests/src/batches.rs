//! A lane's batches as the table holds them (batch and path items, the failures index) and a
//! batch's Step Functions execution.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::{Lane, Stack};

/// Batches in one line: counts by status and the events they planned, then the unfinished ones
/// by id (with their last error).
pub fn describe(batches: &[BTreeMap<String, String>]) -> String {
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    let mut events = 0;
    let mut unfinished = Vec::new();
    for b in batches {
        let status = b.get("status").map_or("?", String::as_str);
        *by_status.entry(status).or_default() += 1;
        events += b
            .get("eventsReceived")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        if status != "COMPLETED" {
            let error = b
                .get("lastError")
                .map(|e| format!(", {}", e.chars().take(80).collect::<String>()))
                .unwrap_or_default();
            unfinished.push(format!("{} {status}{error}", b["batchId"]));
        }
    }
    format!(
        "{} batches {by_status:?} planning {events} events; unfinished: [{}]",
        batches.len(),
        unfinished.join("; ")
    )
}

impl Stack {
    /// The lane's batches in one line, for a wait's report (see [`describe`]).
    pub async fn describe_batches(&self, lane: &Lane) -> String {
        describe(&self.batches(lane).await)
    }

    /// The batch items of a distribution (byDistribution index), oldest first.
    pub async fn batches(&self, lane: &Lane) -> Vec<BTreeMap<String, String>> {
        let query = self
            .ddb
            .query()
            .table_name(&self.info.table)
            .index_name("byDistribution")
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(
                ":pk",
                AttributeValue::S(format!("DIST#{}", lane.distribution_id)),
            );
        let items = query_all(query, "query byDistribution").await;
        items.iter().map(text_item).collect()
    }

    /// The ids of the lane's batches now, to tell a test's own batches from earlier runs'.
    pub async fn batch_ids(&self, lane: &Lane) -> BTreeSet<String> {
        let batches = self.batches(lane).await;
        batches.into_iter().map(|b| b["batchId"].clone()).collect()
    }

    /// The id of a batch of the lane in `status` that is not one of `earlier`.
    pub async fn new_batch_in(
        &self,
        lane: &Lane,
        earlier: &BTreeSet<String>,
        status: &str,
    ) -> Option<String> {
        self.batches(lane)
            .await
            .into_iter()
            .find(|b| {
                b.get("status").map(String::as_str) == Some(status)
                    && !earlier.contains(&b["batchId"])
            })
            .map(|b| b["batchId"].clone())
    }

    /// A batch's item (`BATCH#<id>` / `META`), read strongly consistently, as text values.
    pub async fn batch_item(&self, batch_id: &str) -> Option<BTreeMap<String, String>> {
        let pk = cfinv_core::schema::keys::batch_pk(batch_id);
        self.meta_item(pk).await.as_ref().map(text_item)
    }

    /// The `META` item of partition `pk` (a batch, a manual request), read strongly
    /// consistently.
    pub async fn meta_item(&self, pk: String) -> Option<HashMap<String, AttributeValue>> {
        use cfinv_core::schema::keys;
        let out = self
            .ddb
            .get_item()
            .table_name(&self.info.table)
            .consistent_read(true)
            .key("PK", AttributeValue::S(pk))
            .key("SK", AttributeValue::S(keys::META.into()))
            .send()
            .await
            .expect("GetItem of a META item");
        out.item
    }

    /// The keys whose paths have joined the lane's OPEN batches so far.
    pub async fn joined_keys(&self, lane: &Lane) -> BTreeSet<String> {
        let mut joined = BTreeSet::new();
        for batch in self.batches(lane).await {
            if batch.get("status").map(String::as_str) == Some("OPEN") {
                let paths = self.path_items(&batch["batchId"]).await;
                joined.extend(paths.into_iter().filter_map(|mut p| p.remove("key")));
            }
        }
        joined
    }

    /// A batch's path items (`BATCH#<id>` / `PATH#...`), read strongly consistently, as text.
    pub async fn path_items(&self, batch_id: &str) -> Vec<BTreeMap<String, String>> {
        use cfinv_core::schema::keys;
        let query = self
            .ddb
            .query()
            .table_name(&self.info.table)
            .consistent_read(true)
            .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(keys::batch_pk(batch_id)))
            .expression_attribute_values(":prefix", AttributeValue::S(keys::PATH_PREFIX.into()));
        let items = query_all(query, "read a batch's paths").await;
        items.iter().map(text_item).collect()
    }

    /// Every item of the failures index (`byStatus`, `statusPk = FAILED`): batches and events.
    pub async fn failed_items(&self) -> Vec<HashMap<String, AttributeValue>> {
        let query = self
            .ddb
            .query()
            .table_name(&self.info.table)
            .index_name("byStatus")
            .key_condition_expression("statusPk = :f")
            .expression_attribute_values(":f", AttributeValue::S("FAILED".into()));
        query_all(query, "query byStatus").await
    }

    /// The ARN of the batch machine's execution named `batch_id` (executions are named after
    /// their batch).
    pub fn batch_execution_arn(&self, batch_id: &str) -> String {
        format!(
            "{}:{batch_id}",
            self.state_machine("InvalidateBatchStateMachine")
                .replace(":stateMachine:", ":execution:")
        )
    }

    /// Status of the batch machine's execution named `batch_id`.
    pub async fn batch_execution_status(&self, batch_id: &str) -> Option<String> {
        let out = self
            .sfn
            .describe_execution()
            .execution_arn(self.batch_execution_arn(batch_id))
            .send()
            .await
            .ok()?;
        Some(out.status().as_str().to_owned())
    }

    /// The state a failed batch execution failed in: the last state it entered.
    pub async fn failed_state(&self, batch_id: &str) -> Option<String> {
        let history = self
            .sfn
            .get_execution_history()
            .execution_arn(self.batch_execution_arn(batch_id))
            .max_results(1000)
            .send()
            .await
            .ok()?;
        history
            .events()
            .iter()
            .filter_map(|e| Some((e.id(), e.state_entered_event_details()?)))
            .max_by_key(|(id, _)| *id)
            .map(|(_, d)| d.name().to_owned())
    }

    /// Redrives the failed execution of a batch (what an operator does from the console).
    pub async fn redrive_batch(&self, batch_id: &str) {
        self.sfn
            .redrive_execution()
            .execution_arn(self.batch_execution_arn(batch_id))
            .send()
            .await
            .unwrap_or_else(|e| panic!("RedriveExecution {batch_id}: {e:?}"));
    }
}

/// Every item `query` finds, page after page.
async fn query_all(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    what: &str,
) -> Vec<HashMap<String, AttributeValue>> {
    let mut pages = query.into_paginator().send();
    let mut items = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.unwrap_or_else(|e| panic!("{what}: {e:?}"));
        items.extend(page.items.unwrap_or_default());
    }
    items
}

/// An item's attributes as text (strings and numbers as they are, the rest in debug form).
fn text_item(item: &HashMap<String, AttributeValue>) -> BTreeMap<String, String> {
    item.iter()
        .map(|(k, v)| {
            let text = match v {
                AttributeValue::S(s) => s.clone(),
                AttributeValue::N(n) => n.clone(),
                other => format!("{other:?}"),
            };
            (k.clone(), text)
        })
        .collect()
}
