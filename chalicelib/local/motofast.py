"""Patches that keep moto (the AWS stand-in) fast as queues and tables fill.

Only the embedded stack and tests apply these; nothing on AWS runs this code. Each patch keeps
moto's observable behaviour and removes work that grows with queue depth or stream length:

1. SQS visibility checks used a slow datetime clock for every message on every call.
2. SQS receive built the list of *all* visible messages to hand out the first ten.
3. SQS send recomputed every queue attribute (three O(depth) counts) to read one setting.
4. SQS delete scanned the whole queue, twice, to find one receipt handle.
5. DynamoDB transactions deep-copied every stream record ever written.

6. DynamoDB item responses went through moto's generic, shape-walking serializer, although they
   already are DynamoDB's wire JSON.
8. EventBridge rebuilt a JSONPath parser (a PLY grammar) for every path of every event delivered;
   DynamoDB Streams' GetRecords went through the shape-walking serializer too.
7. A query of one partition of a table sorted every item of the table to find it; and every sort
   compared DynamoType objects (a Python method call per comparison) instead of plain values.

And one for fidelity rather than speed:

9. moto's DynamoDB applies a write without a lock: two threads can both pass the same
   condition, and a read can see half an update. DynamoDB never allows either, and our
   invariants rest on that: item operations are serialised here.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

_applied = False
ITEM_OPERATIONS = frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem"})


class _VisibleMessages:
    """Queue.messages, lazily: iteration stops as soon as the receiver has enough."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def __iter__(self) -> Iterator[Any]:
        return (m for m in list(self._queue._messages) if m.visible and not m.delayed)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return any(True for _ in self)


class _LazyAttributes(Mapping[str, Any]):
    """Queue.attributes, computing each attribute only when it is read."""

    def __init__(self, queue: Any, names: list[str]) -> None:
        self._queue = queue
        self._names = names

    def _compute(self, name: str) -> Any:
        from moto.core.utils import camelcase_to_underscores

        if name == "Policy":
            return self._queue.policy
        if name == "RedrivePolicy":
            import json

            return json.dumps(self._queue.redrive_policy)
        value = getattr(self._queue, camelcase_to_underscores(name))
        return str(value).lower() if isinstance(value, bool) else value

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise KeyError(name)
        return self._compute(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def apply() -> None:
    """Apply the patches once per process (before the first request is served)."""
    global _applied
    if _applied:
        return
    _applied = True

    import moto.core.utils as core_utils
    from moto.dynamodb.models import table as ddb_table
    from moto.sqs import models as sqs_models
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    # 1. A cheap clock for SQS visibility (moto's goes through datetime on every call).
    sqs_models.unix_time = lambda dt=None: time.time() if dt is None else core_utils.unix_time(dt)  # type: ignore[assignment,attr-defined]
    sqs_models.unix_time_millis = lambda dt=None: (  # type: ignore[assignment,attr-defined]
        time.time() * 1000 if dt is None else core_utils.unix_time_millis(dt)
    )

    queue_cls = sqs_models.Queue

    # 2. Lazy visible-message view.
    queue_cls.messages = property(lambda self: _VisibleMessages(self))  # type: ignore[assignment,attr-defined]

    # 3. Lazy attributes.
    def attributes(self: Any) -> Mapping[str, Any]:
        names = list(self.BASE_ATTRIBUTES)
        if self.fifo_queue:
            names += self.FIFO_ATTRIBUTES
        if self.kms_master_key_id:
            names += self.KMS_ATTRIBUTES
        if self.policy:
            names.append("Policy")
        if self.redrive_policy:
            names.append("RedrivePolicy")
        return _LazyAttributes(self, names)

    queue_cls.attributes = property(attributes)  # type: ignore[assignment,attr-defined]

    # 4. Find a receipt handle among the in-flight messages first (where it nearly always is).
    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return
        candidates = [m for m in self.pending_messages if m.had_receipt_handle(receipt_handle)]
        if not candidates:
            candidates = [m for m in self._messages if m.had_receipt_handle(receipt_handle)]
        if not candidates:
            raise ReceiptHandleIsInvalid()
        for message in candidates:
            self.pending_messages.discard(message)
            self.deleted_messages.update(message.all_receipt_handles)
            with contextlib.suppress(ValueError):
                self._messages.remove(message)

    queue_cls.delete_message = delete_message  # type: ignore[method-assign]

    # 5. Transactions back up the table; the stream's records need not be copied deeply.
    def shard_deepcopy(self: Any, memo: dict[int, Any]) -> Any:
        clone = copy.copy(self)
        clone.items = list(self.items)
        return clone

    ddb_table.StreamShard.__deepcopy__ = shard_deepcopy  # type: ignore[attr-defined]

    # 6. Item operations answer with plain JSON: their results are DynamoDB's wire format already.
    import json

    from moto.dynamodb.responses import DynamoResult

    shape_walking = DynamoResult.execute_result

    def execute_result(self: Any, context: Any) -> Any:
        if context.operation_model.name not in ITEM_OPERATIONS:
            return shape_walking(self, context)
        body = {k: v for k, v in self.result.items() if k in context.operation_model.output_shape.members}
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(body)

    DynamoResult.execute_result = execute_result  # type: ignore[method-assign]

    # 7. Base-table queries look at their partition only.
    table_cls = ddb_table.Table
    partition = threading.local()
    whole_query = table_cls.query

    def all_items(self: Any) -> Any:
        wanted = getattr(partition, "key", None)
        if wanted is None or wanted[0] is not self:
            items = [
                i
                for hash_set in self.items.values()
                for i in (hash_set.values() if self.range_key_attr else [hash_set])
            ]
            return sorted(items, key=lambda i: (i.hash_key.cast_value, i.range_key.cast_value if i.range_key else ""))
        found = self.items.get(wanted[1])  # .get: `items` is a defaultdict
        if found is None:
            return []
        if not self.range_key_attr:
            return [found]
        # Sorted by plain values, not DynamoType comparisons: moto's own sort then finds it sorted.
        return sorted(found.values(), key=lambda item: item.range_key.cast_value)

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name is not None or hash_key is None:
            return whole_query(self, hash_key, *args, **kwargs)
        partition.key = (self, hash_key)
        try:
            return whole_query(self, hash_key, *args, **kwargs)
        finally:
            partition.key = None

    def sorted_items(self: Any, hash_key_attrs: list[str], range_key_attrs: list[str | None], items: list[Any]) -> Any:
        attrs = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
        items.sort(key=lambda x: tuple(x.attrs[key].cast_value for key in attrs))
        return items

    table_cls.sorted_items = sorted_items  # type: ignore[method-assign]
    table_cls.all_items = all_items  # type: ignore[method-assign]
    table_cls.query = query  # type: ignore[method-assign]

    # 8. Parse each JSONPath once; GetRecords answers with plain JSON (timestamps as epoch seconds).
    import jsonpath_ng.ext as jsonpath_ext

    jsonpath_ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ext.parse)

    from moto.core.responses import ActionResult
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    class PlainJson(ActionResult):
        def execute_result(self, context: Any) -> Any:
            body = json.dumps(self.result, default=lambda v: v.timestamp())
            return 200, {"Content-Type": "application/x-amz-json-1.0"}, body

    shaped_get_records = DynamoDBStreamsHandler.get_records

    def get_records(self: Any) -> Any:
        return PlainJson(shaped_get_records(self).result)

    DynamoDBStreamsHandler.get_records = get_records  # type: ignore[method-assign]

    # 9. Item operations are atomic in DynamoDB: make them so in moto.
    from moto.dynamodb.models import DynamoDBBackend

    write_lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "transact_write_items", "get_item", "query", "scan"):
        original = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with write_lock:
                return __original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, functools.wraps(original)(locked))
