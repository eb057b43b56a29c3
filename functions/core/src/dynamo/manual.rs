//! The manual-request role (`functions/core/src/manual.rs`) on DynamoDB.

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::{DynamoStore, conditional, store_error};
use crate::Result;
use crate::manual::{ManualStore, RequestRecord};
use crate::schema::item::{key, n, s, string_set, time};
use crate::schema::{BY_DISTRIBUTION_PK, BY_DISTRIBUTION_SK, ItemType, attr, bounded, keys};

impl ManualStore for DynamoStore {
    async fn reserve_manual_paths(
        &self,
        distribution_id: &str,
        hour: OffsetDateTime,
        request_id: &str,
        count: usize,
        limit: usize,
    ) -> Result<bool> {
        if count > limit {
            return Ok(false);
        }
        // One conditional ADD: racing requests cannot both pass the budget. The hour's item
        // keeps the ids of the requests it charged, so a request asked again is charged once.
        // `contains` on a set (DynamoDB developer guide, "Condition and filter expressions,
        // operators, and functions"): true if the attribute is "a Set that contains a particular
        // element within the set". On a missing attribute it is false, so the first ask passes:
        // no document says so in these words (moto agrees); were it to fail instead, the read
        // below finds no id and the request is refused, never charged twice.
        let (used, charged) = (attr::MANUAL_PATHS, attr::REQUEST_IDS);
        let key = key(
            keys::manual_budget_pk(distribution_id),
            crate::model::timestamp(hour),
        );
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key.clone()))
            .update_expression(format!(
                "ADD {used} :n, {charged} :ids SET {ttl} = :ttl",
                ttl = attr::EXPIRES_AT
            ))
            .condition_expression(format!(
                "(attribute_not_exists({used}) OR {used} <= :room) AND NOT contains({charged}, :id)"
            ))
            .expression_attribute_values(":n", n(count))
            .expression_attribute_values(":room", n(limit - count))
            .expression_attribute_values(":ids", AttributeValue::Ss(vec![request_id.to_owned()]))
            .expression_attribute_values(":id", s(request_id))
            .expression_attribute_values(":ttl", self.expires_at(hour))
            .send()
            .await;
        if conditional(res)? {
            return Ok(true);
        }
        // Refused: over the budget, or charged already (then it stands).
        let out = self
            .read_consistent(key)
            .send()
            .await
            .map_err(store_error)?;
        Ok(out
            .item
            .is_some_and(|item| string_set(&item, charged).iter().any(|id| id == request_id)))
    }

    async fn record_request(&self, record: &RequestRecord) -> Result<()> {
        let mut item = key(keys::request_pk(&record.request_id), keys::META);
        let (outcome, detail) = match &record.outcome {
            Ok(batches) => (
                "ACCEPTED",
                (
                    attr::BATCH_IDS,
                    AttributeValue::L(batches.iter().map(s).collect()),
                ),
            ),
            Err(refusal) => ("REFUSED", (attr::REFUSAL, s(refusal.to_string()))),
        };
        item.extend(
            [
                (attr::TYPE, s(ItemType::Request.as_str())),
                (attr::REQUEST_ID, s(&record.request_id)),
                (attr::DISTRIBUTION_ID, s(&record.distribution_id)),
                (attr::REQUESTED_BY, s(&record.requested_by.identity)),
                (attr::CHANNEL, s(record.requested_by.channel.as_str())),
                (
                    attr::ITEMS,
                    AttributeValue::L(record.items.iter().map(s).collect()),
                ),
                (attr::OUTCOME, s(outcome)),
                detail,
                (attr::REQUESTED_AT, time(record.at)),
                (BY_DISTRIBUTION_PK, s(keys::MANUAL_REQUESTS)),
                (
                    BY_DISTRIBUTION_SK,
                    s(keys::index_sk(record.at, &record.request_id)),
                ),
                (attr::EXPIRES_AT, self.expires_at(record.at)),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        if let Some(reason) = &record.reason {
            item.insert(attr::REQUEST_REASON.to_owned(), s(bounded(reason)));
        }
        self.put(item).await
    }
}
