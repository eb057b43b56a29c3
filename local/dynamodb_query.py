"""moto's DynamoDB Query, without sorting the whole table first.

Why: moto 5.2.5 answers every Query, on the table or on an index, by collecting every item of
the table, sorting them all, and then testing each against the key condition. The fault
matrix's lanes fill the table with tens of thousands of items (batches, paths, plans, events),
and each Query then took long enough, with the one DynamoDB lock held (local/middleware.py),
that dedupe invocations queued behind it by the hundreds. This hands the query only the items
its key condition can match (the table's partition, or the items whose index key attributes
equal the condition's), sorted as moto sorts them: the answer is the same, page for page.
"""

from __future__ import annotations

import threading
from typing import Any

from .patching import replace


def install() -> None:
    from moto.dynamodb.models.table import Table

    candidates = threading.local()  # what Table.all_items yields while a Query runs on this thread

    def wrap_query(original_query: Any) -> Any:
        def query(self: Any, hash_key: Any, range_comparison: Any, range_objs: Any, limit: Any, exclusive_start_key: Any,
                  scan_index_forward: Any, projection_expressions: Any, index_name: str | None = None,
                  consistent_read: bool = False, filter_expression: Any = None,
                  hash_key_conditions: list[tuple[str, Any]] | None = None, **kwargs: Any) -> Any:
            if index_name and hash_key_conditions:
                candidates.match = lambda item: all(
                    (found := item.attrs.get(name)) is not None and found == value for name, value in hash_key_conditions
                )
                candidates.partition = None
            elif not index_name and hash_key is not None:
                candidates.match = None
                candidates.partition = hash_key
            try:
                return original_query(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
                                      projection_expressions, index_name, consistent_read, filter_expression,
                                      hash_key_conditions=hash_key_conditions, **kwargs)
            finally:
                candidates.match = candidates.partition = None

        return query

    def wrap_all_items(original_all_items: Any) -> Any:
        def all_items(self: Any) -> list[Any]:
            match = getattr(candidates, "match", None)
            partition = getattr(candidates, "partition", None)
            if match is None and partition is None:
                return original_all_items(self)
            if partition is not None:
                found = self.items.get(partition)  # .get: self.items is a defaultdict
                items = [] if found is None else list(found.values()) if self.range_key_attr else [found]
            else:
                items = [item for part in self.items.values()
                         for item in (part.values() if self.range_key_attr else [part]) if match(item)]
            return sorted(items, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)

        return all_items

    replace(Table, "query", wrap_query)
    replace(Table, "all_items", wrap_all_items)
