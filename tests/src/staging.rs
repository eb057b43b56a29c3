//! What an opener that died while opening a batch leaves in the table, staged through the real
//! DynamoDB adapter for the tests of the recovery from it.

use std::time::Duration;

use crate::{Lane, Stack, now_epoch};

impl Stack {
    /// Writes, through the real DynamoDB adapter, what an opener that died before its flush
    /// started leaves behind: the pointer, the OPEN batch (opened a minute longer ago than a
    /// batch may stay open, so the next joiner rotates it) and one path.
    /// Returns the batch id and the staged (path, time).
    pub async fn stage_dead_opener(&self, lane: &Lane, name: &str) -> (String, (String, f64)) {
        use cfinv_core::collect::PathChange;
        use cfinv_core::event::ChangeKind;
        use cfinv_core::store::JoinStore;

        let (store, batch, opened_at) = self.stage_stale_pointer(lane).await;
        store.create_batch(&batch, opened_at).await.unwrap();
        let key = format!("{}{name}", lane.prefix);
        let change = PathChange {
            distribution_id: lane.distribution_id.clone(),
            path: format!("/{key}"),
            bucket: self.info.bucket.clone(),
            key,
            version_id: None,
            etag: None,
            sequencer: None,
            event_time: None,
            event_id: Some(format!("staged-{name}")),
            change: ChangeKind::Created,
            reason: None,
        };
        store
            .put_path(&batch.batch_id, &change, opened_at)
            .await
            .unwrap();
        (batch.batch_id, (change.path, now_epoch()))
    }

    /// What an opener that died right after its pointer swap leaves behind: a pointer, old
    /// enough to be rotated, to a batch that has no item and no path. Returns the batch id.
    pub async fn stage_orphan_pointer(&self, lane: &Lane) -> String {
        self.stage_stale_pointer(lane).await.1.batch_id
    }

    /// Points the lane's distribution at a new batch opened a minute longer ago than a batch
    /// may stay open, through the real DynamoDB adapter.
    async fn stage_stale_pointer(
        &self,
        lane: &Lane,
    ) -> (
        cfinv_core::dynamo::DynamoStore,
        cfinv_core::model::BatchRef,
        time::OffsetDateTime,
    ) {
        use cfinv_core::dynamo::DynamoStore;
        use cfinv_core::model::{BatchRef, OpenPointer, new_batch_id};
        use cfinv_core::store::PointerStore;

        let store = DynamoStore::new(
            self.ddb.clone(),
            &self.info.table,
            Duration::from_secs(86_400),
        );
        let age = self.info.stale_after() + Duration::from_secs(60);
        let opened_at = time::OffsetDateTime::now_utc() - age;
        let batch = BatchRef {
            batch_id: new_batch_id(&lane.distribution_id, opened_at),
            distribution_id: lane.distribution_id.clone(),
        };
        let pointer = OpenPointer {
            batch_id: batch.batch_id.clone(),
            opened_at,
        };
        let current = store
            .get_pointer(&lane.distribution_id)
            .await
            .unwrap()
            .map(|p| p.batch_id);
        assert!(
            store
                .swap_pointer(&lane.distribution_id, &pointer, current.as_deref())
                .await
                .unwrap()
        );
        (store, batch, opened_at)
    }
}
