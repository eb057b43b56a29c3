"""moto's hot paths, made cheap without changing an answer: what the local stack needs to ingest
a burst of S3 writes at a few hundred a second (bench/README.md, "Ingest rate").

Why: profiling the stack under a PutObject burst (``py-spy record`` on the stack's process) found
most of its one core spent in moto's bookkeeping, not in S3, EventBridge or SQS logic:

* every ``backends[account]`` lookup, on every request and every in-process call, takes a global
  lock and compares the ``BackendDict`` with each of the ~150 registered ones
  (``BackendDict._create_account_specific_backend``): a fifth of the stack's time;
* SQS: ``Queue.attributes`` counts the queue's messages (three passes, each message asking the
  clock for a ``datetime``); ``send_message`` reads it for one flag, and ``receive_message``
  once per message it looks at (the retention check, which needs none of it): quadratic in the
  backlog that a burst builds in the ingest queue;
* an EventBridge input transformer parses its JSON paths anew for every event (``jsonpath_ng``
  builds its yacc parser each time);
* DynamoDB: every UpdateItem tokenizes and parses its update expression twice (once to answer
  a malformed one, once to run it), though dedupe sends the same few expressions thousands of
  times.

Each patch returns what moto returns: the lookup the same backend, the counts the same numbers
(one clock reading per count instead of one per message), a parse the same expression tree
(moto's validator works on a deep copy of the tree, so a cached one is never changed).
"""

from __future__ import annotations

import functools
import time
from typing import Any

from .patching import replace


def install() -> None:
    _backend_lookup()
    _sqs_counts()
    _jsonpath_cache()
    _update_expression_cache()


def _backend_lookup() -> None:
    from moto.core.base_backend import BackendDict

    def wrap(original: Any) -> Any:
        def getitem(self: Any, account_id: str) -> Any:
            # Registered on its first lookup (moto's own path); afterwards a plain dict read.
            if dict.__contains__(self, account_id) and getattr(self, "_local_registered", False):
                return dict.__getitem__(self, account_id)
            found = original(self, account_id)
            self._local_registered = True
            return found

        return getitem

    replace(BackendDict, "__getitem__", wrap)


def _sqs_counts() -> None:
    from moto.sqs import models

    def now_ms() -> float:
        return time.time() * 1000

    def visible(message: Any, now: float) -> bool:
        return now > message.visible_at

    def delayed(message: Any, now: float) -> bool:
        return now < message.delayed_until

    counts = {
        "approximate_number_of_messages": lambda q, now: sum(1 for m in q._messages if visible(m, now) and not delayed(m, now)),
        "approximate_number_of_messages_delayed": lambda q, now: sum(1 for m in q._messages if delayed(m, now)),
        "approximate_number_of_messages_not_visible": lambda q, now: sum(1 for m in q._messages if not visible(m, now)),
    }
    # Properties carry no attribute for patching.replace to mark; setting them again is harmless.
    for name, count in counts.items():
        setattr(models.Queue, name, property(functools.partial(lambda q, count: count(q, now_ms()), count=count)))
    models.Message.visible = property(lambda m: visible(m, now_ms()))
    models.Message.delayed = property(lambda m: delayed(m, now_ms()))

    def wrap_retention(_original: Any) -> Any:
        def is_valid(self: Any, queue_name: str, message: Any) -> bool:
            # moto reads MessageRetentionPeriod through get_queue_attributes, i.e. every count.
            retention = int(self.get_queue(queue_name).message_retention_period)
            return retention + message.sent_timestamp / 1000 > time.time()

        return is_valid

    replace(models.SQSBackend, "is_message_valid_based_on_retention_period", wrap_retention)


def _jsonpath_cache() -> None:
    import jsonpath_ng.ext

    replace(jsonpath_ng.ext, "parse", lambda original: functools.lru_cache(maxsize=1024)(original))


def _update_expression_cache() -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    if getattr(UpdateExpressionParser, "_local_cached", False):
        return
    UpdateExpressionParser.make = staticmethod(functools.lru_cache(maxsize=1024)(UpdateExpressionParser.make))
    UpdateExpressionParser._local_cached = True
