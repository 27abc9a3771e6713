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
7. A query of one partition of a table (or of an index) sorted every item of the table to find it;
   and every sort compared DynamoType objects (a Python method call per comparison) instead of
   plain values. An index partition is now kept sorted, in moto's order, and kept up to date as
   items are put, updated and deleted (one item moved, not the partition rebuilt); a query
   bisects it, and one with a Limit hands moto only the items its page can reach.
10. Every request listed the methods of its response class (inspect.getmembers) to find its
    action's: a fixed cost on every request, whatever the depth.

11. An UpdateItem parsed its update expression twice, and its condition expression twice
    (13), on every call; now once per expression (update) and once per request (condition).
12. moto's validator deep-copied the parsed tree through copy.deepcopy: now node by node.
14. Its passes over the tree asked abstract classes, for every node, what kind of node it is.
15. Its syntactic checks walked each clause's subtree (quadratic in the number of actions):
    now once per expression, names and table keys (18: and the clauses listed once per tree).
16. Every answer was made plain by asking each string and number whether it is a DynamoType.
17. Every request compared moto's backend dicts by value to find its account's backend.
19. Every error answer made a new botocore session to name its service.
50. Every condition expression was lexed and parsed anew, although a claim's differs from the
    last only in its values: now its tree is kept per expression, names and placeholders.
51. Sizing a value made a new DynamoType of every value nested in it, and every top-level SET of
    an update sizes the whole item again.
52. A value's plain JSON deep-copied its nested values twice over (an item's JSON is made several
    times per UpdateItem: its answer, its stream record's images).

And for the stand-in's threads (it serves requests of several processes at once):

20. SQS receive listed the groups of a queue's in-flight messages by iterating the set of them
    while other threads' receives and deletes changed it ("Set changed size during iteration").

And two more of the per-request kind:

21. Every DynamoDB item made (every write, and every copy a write's update makes) summed the sizes
    of all its attributes again as each attribute went in: quadratic in the number of attributes.
22. Every answer's request id (52 characters) drew one random number per character.

And for depth (a task queue of 100,000, `make bench-scale`), besides 7:

30. SQS GetQueueAttributes computed each message count (a walk of the queue) three times per
    attribute asked for: now one walk per call.
31. A projection converted every attribute of an item to plain values and back to keep a few.

And for the provisioner's EC2 calls (1,000 pools, `python -m bench.provisioner`):

40. EC2's RunInstances looked its image up by filtering every image moto knows (over a thousand,
    each through fnmatch), twice: an image asked for by its plain id is now looked up by it.
41. EC2 read an instance's tags (for every answer naming it, and every tag filter) by matching a
    regular expression against the id of every tagged resource: a plain id is now looked up.
42. EC2 found an instance by its id by asking every instance whether it passes no filter at all.
43. moto's response serializer (EC2's XML: every instance of a DescribeInstances, some 150 values
    each) worked out, for every value of every answer, which names to look it up by, asking six
    alias providers made anew each time: now once per kind of object, name and shape.

And one for fidelity rather than speed:

9. moto's DynamoDB applies a write without a lock: two threads can both pass the same
   condition, and a read can see half an update. DynamoDB never allows either, and our
   invariants rest on that: item operations are serialised here (and writes counted, for 7).
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import copy
import functools
import inspect
import string
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

_applied = False
ITEM_SIZE_LIMIT = 405_000  # moto's (DynamoDB's 400 KB, as moto measures it)
Condition = tuple[str, str, list[Any]]  # a key condition as moto passes it: (attribute, comparison, values)
ITEM_OPERATIONS = frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem"})
# DynamoDBBackend methods that change items or tables (patch 9 serialises them). Patch 7 keeps its
# index partitions up to date through an item's put, update and delete; any other write starts them anew.
ITEM_WRITES = ("put_item", "update_item", "delete_item")
WRITES = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
    "create_table",
    "delete_table",
    "update_table",
    "import_table",
    "restore_table_from_backup",
    "restore_table_to_point_in_time",
)

OTHER_WRITES = frozenset(WRITES) - frozenset(ITEM_WRITES)


class _After:
    """Sorts after anything it is compared with (a bound just past every key with a given prefix)."""

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return True


_AFTER = _After()


class _Partition:
    """Patch 7: an index partition's items in moto's order, and their sort keys."""

    def __init__(self) -> None:
        self.keys: list[tuple[Any, ...]] = []
        self.items: list[Any] = []


class _Index:
    """Patch 7: every partition of an index (by its hash key values), and where each item is in
    them by its primary key (an update changes an item in place: its old place is found by this)."""

    def __init__(self, names: tuple[str, ...], range_key: str) -> None:
        self.names = names  # the index's hash key attributes, sorted
        self.range_key = range_key
        self.parts: dict[tuple[Any, ...], _Partition] = {}
        self.where: dict[tuple[Any, Any], tuple[tuple[Any, ...], tuple[Any, ...]]] = {}


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
        if name == "RedrivePolicy":  # moto's: the JSON of one, or None (left out of the answer)
            import json

            redrive = self._queue.redrive_policy
            return json.dumps(redrive) if redrive else redrive
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
    from moto.dynamodb.comparisons import get_comparison_func
    from moto.dynamodb.models import dynamo_type as ddb_types
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
        names += [name for name, present in (("Policy", self.policy), ("RedrivePolicy", self.redrive_policy))
                  if present and name not in names]  # fmt: skip
        return _LazyAttributes(self, names)

    queue_cls.attributes = property(attributes)  # type: ignore[assignment,attr-defined]

    # 4. Find a receipt handle among the in-flight messages first (where it nearly always is); in a
    # copy of their set, which other threads' receives and deletes change (as in 20).
    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return
        candidates = [m for m in list(self.pending_messages) if m.had_receipt_handle(receipt_handle)]
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

    def base64_text(value: Any) -> str:
        if isinstance(value, bytes):
            return base64.b64encode(value).decode()
        raise TypeError(f"{type(value).__name__} is not JSON")

    def execute_result(self: Any, context: Any) -> Any:
        if context.operation_model.name not in ITEM_OPERATIONS:
            return shape_walking(self, context)
        body = {k: v for k, v in self.result.items() if k in context.operation_model.output_shape.members}
        # Binary values are bytes here: on the wire, base64 (as the shape-walking serializer writes them).
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(body, default=base64_text)

    DynamoResult.execute_result = execute_result  # type: ignore[method-assign]

    # 7. Queries look at their partition only: a base-table query at its hash key's items; an index
    # query at the items its key conditions select (moto checks them again, then sorts them by the
    # index's keys, a total order: the order they come in does not matter). Selecting first also
    # spares moto sizing every item of the partition, matching or not (Item.size walks each attribute).
    # The partitions of an index with a string range key are made in one pass over the table (the
    # first query of any of them), each sorted as moto sorts it (the range key, then the table's keys:
    # unique), and kept up to date as items are put, updated and deleted (under 9's lock): a query
    # bisects it, and one with a Limit (and no legacy QueryFilter) hands moto only the Limit + 2
    # items it can reach from its start (moto's own paging then finds LastEvaluatedKey).
    # Other writes (tables, transactions, PartiQL) start every kept partition anew.
    table_cls = ddb_table.Table
    partition = threading.local()  # .scope: (table, base-table hash key, or None and index conditions)
    whole_query = table_cls.query
    query_signature = inspect.signature(whole_query)
    epoch = [0]  # writes other than an item's put, update or delete (patch 9 counts them)
    # id(table) -> (table (held: its id stays its own), epoch, {(hash key names, range key name): index})
    kept: dict[int, tuple[Any, int, dict[tuple[Any, ...], _Index]]] = {}
    key_types = frozenset({"S", "N", "B"})

    def every_item(self: Any) -> list[Any]:
        return [i for group in self.items.values() for i in (group.values() if self.range_key_attr else [group])]

    def select(items: list[Any], conditions: list[Condition]) -> list[Any]:
        """The items meeting every key condition, narrowed one condition at a time."""
        for name, comparison, values in conditions:
            test = get_comparison_func(comparison)
            if all(v.type == "S" for v in values):
                # A string's cast value is itself: DynamoType.compare would cost a dozen calls more per item.
                raw = [v.value for v in values]
                items = [
                    i for i in items if (a := i.attrs.get(name)) is not None and a.type == "S" and test(a.value, *raw)
                ]
            else:
                items = [i for i in items if (a := i.attrs.get(name)) is not None and a.compare(comparison, values)]
        return items

    def primary_key(item: Any) -> tuple[Any, Any]:
        return item.hash_key.value, item.range_key.value if item.range_key is not None else None

    def sort_key(self: Any, item: Any, name: str) -> tuple[Any, ...] | None:
        """Where moto's sort puts `item` in an index partition with range key `name` (None: not there)."""
        a = item.attrs.get(name)
        if a is None or a.type != "S":
            return None
        if self.range_key_attr:
            return a.value, item.hash_key.cast_value, item.range_key.cast_value
        return a.value, item.hash_key.cast_value

    def start_key(self: Any, first: dict[str, Any], name: str) -> tuple[Any, ...] | None:
        """An ExclusiveStartKey's place in an index partition (None: one this cannot place)."""
        names = [name, self.hash_key_attr] + ([self.range_key_attr] if self.range_key_attr else [])
        if not all(isinstance(first.get(n), dict) for n in names):
            return None
        values = [ddb_types.DynamoType(first[n]) for n in names]
        if values[0].type != "S":
            return None
        return (values[0].value, *(v.cast_value for v in values[1:]))

    def indexes(self: Any) -> dict[tuple[Any, ...], _Index]:
        held = kept.get(id(self))
        if held is None or held[0] is not self or held[1] != epoch[0]:
            if held is not None and held[1] != epoch[0]:
                kept.clear()
            held = kept[id(self)] = (self, epoch[0], {})
        return held[2]

    def hash_values(item: Any, names: tuple[str, ...]) -> tuple[Any, ...] | None:
        """An item's index hash key values, as DynamoDB compares them (None: not in the index)."""
        found = []
        for name in names:
            a = item.attrs.get(name)
            if a is None or a.type not in key_types:
                return None
            found.append((a.type, a.cast_value))
        return tuple(found)

    def kept_index(self: Any, names: tuple[str, ...], range_key: str) -> _Index:
        """Every partition of an index with a string range key, in moto's order: made in one pass
        over the table, then kept."""
        found = indexes(self)
        index = found.get((names, range_key))
        if index is None:
            index = found[(names, range_key)] = _Index(names, range_key)
            placed = []
            for item in every_item(self):
                values, at = hash_values(item, names), sort_key(self, item, range_key)
                if values is not None and at is not None:
                    placed.append((values, at, item))
            for values, at, item in sorted(placed, key=lambda p: p[1]):
                part = index.parts.get(values) or index.parts.setdefault(values, _Partition())
                part.keys.append(at)
                part.items.append(item)
                index.where[primary_key(item)] = (values, at)
        return index

    def reindex(self: Any, hash_key: Any, range_key: Any) -> None:
        """The item with this primary key (now in the table, or not) in every kept index."""
        held = kept.get(id(self))
        if held is None or held[0] is not self or held[1] != epoch[0]:
            return
        group = self.items.get(hash_key)  # .get: `items` is a defaultdict
        item = group.get(range_key) if group is not None and self.range_key_attr else group
        pk = (hash_key.value, range_key.value if range_key is not None else None)
        for index in held[2].values():
            old = index.where.pop(pk, None)
            if old is not None:
                part = index.parts[old[0]]
                i = bisect.bisect_left(part.keys, old[1])
                del part.keys[i], part.items[i]
            if item is None:
                continue
            values, at = hash_values(item, index.names), sort_key(self, item, index.range_key)
            if values is not None and at is not None:
                part = index.parts.get(values) or index.parts.setdefault(values, _Partition())
                i = bisect.bisect_left(part.keys, at)
                part.keys.insert(i, at)
                part.items.insert(i, item)
                index.where[pk] = (values, at)

    def in_range(part: _Partition, comparison: str, raw: list[str]) -> tuple[int, int]:
        """The positions of a partition's items whose range key meets one string condition."""
        keys = part.keys
        low, high = (raw[0],), (raw[-1], _AFTER)
        if comparison in ("EQ", "="):
            return bisect.bisect_left(keys, low), bisect.bisect_left(keys, high)
        if comparison in ("LT", "<"):
            return 0, bisect.bisect_left(keys, low)
        if comparison in ("LE", "<="):
            return 0, bisect.bisect_left(keys, high)
        if comparison in ("GT", ">"):
            return bisect.bisect_left(keys, high), len(keys)
        if comparison in ("GE", ">="):
            return bisect.bisect_left(keys, low), len(keys)
        if comparison == "BETWEEN":
            return bisect.bisect_left(keys, low), bisect.bisect_left(keys, high)
        start = end = bisect.bisect_left(keys, low)  # BEGINS_WITH
        while end < len(keys) and keys[end][0].startswith(raw[0]):
            end += 1
        return start, end

    def index_items(self: Any, equal: list[Condition], ranges: list[Condition], page: dict[str, Any]) -> Any:
        """An index query's items: its kept partition, bisected; with a Limit, what the page can reach."""
        name = page["range_key"]
        if name is None or len(ranges) > 1 or any(n != name or any(v.type != "S" for v in vs) for n, _, vs in ranges):
            return select(every_item(self), equal + ranges)
        if any(v.type not in key_types for _, _, [v] in equal):
            return select(every_item(self), equal + ranges)
        asked = sorted((n, v.type, v.cast_value) for n, _, [v] in equal)
        index = kept_index(self, tuple(n for n, _, _ in asked), name)
        part = index.parts.get(tuple((t, c) for _, t, c in asked)) or _Partition()
        start, end = in_range(part, ranges[0][1], [v.value for v in ranges[0][2]]) if ranges else (0, len(part.keys))
        limit, first = page["limit"], page["exclusive_start_key"]
        if limit is None or page["filter_kwargs"]:
            return part.items[start:end]
        reach = limit + 2  # an item moto skips as the start key's own, and one that tells it more follow
        at = None
        if first is not None:
            at = start_key(self, first, name)
            if at is None:
                return part.items[start:end]
        if page["scan_index_forward"] is False:
            if at is not None:
                end = max(start, min(end, bisect.bisect_right(part.keys, at)))
            return part.items[max(start, end - reach) : end]
        if at is not None:
            start = min(end, max(start, bisect.bisect_left(part.keys, at)))
        return part.items[start : min(end, start + reach)]

    def all_items(self: Any) -> Any:
        scope = getattr(partition, "scope", None)
        if scope is None or scope[0] is not self:
            items = every_item(self)
            return sorted(items, key=lambda i: (i.hash_key.cast_value, i.range_key.cast_value if i.range_key else ""))
        _, hash_key, conditions = scope
        if hash_key is None:
            return index_items(self, *conditions)
        found = self.items.get(hash_key)  # .get: `items` is a defaultdict
        if found is None:
            return []
        if not self.range_key_attr:
            return [found]
        # Sorted by plain values, not DynamoType comparisons: moto's own sort then finds it sorted.
        return sorted(found.values(), key=lambda item: item.range_key.cast_value)

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        call = query_signature.bind(self, hash_key, *args, **kwargs).arguments
        index_name, hash_conditions = call.get("index_name"), call.get("hash_key_conditions")
        if index_name is not None and hash_conditions:
            equal = [(name, "EQ", [value]) for name, value in hash_conditions]
            index = next((i for i in self.all_indexes() if i.name == index_name), None)
            ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"] if index else []
            page = {
                "range_key": ranges[0] if len(ranges) == 1 else None,
                "limit": call.get("limit"),
                "exclusive_start_key": call.get("exclusive_start_key"),
                "scan_index_forward": call.get("scan_index_forward"),
                "filter_kwargs": call.get("filter_kwargs"),
            }
            partition.scope = (self, None, (equal, list(call.get("range_key_conditions") or []), page))
        elif index_name is None and hash_key is not None:
            partition.scope = (self, hash_key, None)
        else:
            return whole_query(self, hash_key, *args, **kwargs)
        try:
            return whole_query(self, hash_key, *args, **kwargs)
        finally:
            partition.scope = None

    def sorted_items(self: Any, hash_key_attrs: list[str], range_key_attrs: list[str | None], items: list[Any]) -> Any:
        attrs = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
        items.sort(key=lambda x: tuple(x.attrs[key].cast_value for key in attrs))
        return items

    table_cls.sorted_items = sorted_items  # type: ignore[method-assign]
    table_cls.all_items = all_items  # type: ignore[method-assign]
    table_cls.query = query  # type: ignore[method-assign]

    from moto.dynamodb.models import DynamoDBBackend

    def reindexing(original: Any, keys_from: str) -> Any:
        def write(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
            try:
                return original(self, table_name, *args, **kwargs)
            finally:
                table = self.tables.get(table_name)
                keys = args[0] if args else kwargs.get(keys_from)
                if table is not None and isinstance(keys, dict) and table.hash_key_attr in keys:
                    with contextlib.suppress(Exception):  # keys moto refused: it wrote nothing
                        reindex(table, *self.get_keys_value(table, keys))

        return functools.wraps(original)(write)

    DynamoDBBackend.put_item = reindexing(DynamoDBBackend.put_item, "item_attrs")  # type: ignore[method-assign]
    DynamoDBBackend.update_item = reindexing(DynamoDBBackend.update_item, "key")  # type: ignore[method-assign]
    DynamoDBBackend.delete_item = reindexing(DynamoDBBackend.delete_item, "key")  # type: ignore[method-assign]

    # 8. Parse each JSONPath once; GetRecords answers with plain JSON (timestamps as epoch seconds).
    import jsonpath_ng.ext as jsonpath_ext

    jsonpath_ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ext.parse)

    from moto.core.responses import ActionResult
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    class PlainJson(ActionResult):
        def execute_result(self, context: Any) -> Any:
            body = json.dumps(self.result, default=lambda v: base64_text(v) if isinstance(v, bytes) else v.timestamp())
            return 200, {"Content-Type": "application/x-amz-json-1.0"}, body

    shaped_get_records = DynamoDBStreamsHandler.get_records

    def get_records(self: Any) -> Any:
        return PlainJson(shaped_get_records(self).result)

    DynamoDBStreamsHandler.get_records = get_records  # type: ignore[method-assign]

    # 10. A response class's methods, listed once per class (moto only looks an action up in the list).
    import moto.core.responses as core_responses

    core_responses.method_names_from_class = functools.lru_cache(maxsize=None)(core_responses.method_names_from_class)

    # 11. Each update expression parsed once: moto parsed it twice per UpdateItem (the handler for
    # the names and values it uses, the backend to apply it), on every call. Its users only read the
    # tree: the Validator deep-copies it before it substitutes anything (12 makes that copy cheap).
    import importlib

    ast_nodes: Any = importlib.import_module("moto.dynamodb.parsing.ast_nodes")  # typed loosely by moto
    parser_cls: Any = importlib.import_module("moto.dynamodb.parsing.expressions").UpdateExpressionParser
    parser_cls.make = classmethod(functools.lru_cache(maxsize=1024)(parser_cls.make.__func__))  # type: ignore[arg-type]

    # 12. An expression tree copied node by node: copy.deepcopy went through __reduce_ex__ and its memo
    # for every node and list. Only a whole tree (a node without a parent, copied on its own) is
    # copied this way; anything else keeps deepcopy's own path. The copy is deepcopy's: same classes,
    # same attributes, children and parent links between the new nodes, other values copied deeply
    # (strings and numbers shared, as deepcopy shares them).
    node_cls = ast_nodes.Node
    shared = (str, int, float, bool, type(None), bytes)

    def copy_node(node: Any, parent: Any, memo: dict[int, Any]) -> Any:
        clone = object.__new__(type(node))
        attrs = clone.__dict__
        for name, value in node.__dict__.items():
            if name == "parent":
                attrs[name] = parent
            elif name == "children" and type(value) is list:
                attrs[name] = [
                    copy_node(c, clone, memo)
                    if isinstance(c, node_cls)
                    else c
                    if type(c) in shared
                    else copy.deepcopy(c, memo)
                    for c in value
                ]
            else:
                attrs[name] = value if type(value) in shared else copy.deepcopy(value, memo)
        return clone

    def node_deepcopy(self: Any, memo: dict[int, Any]) -> Any:
        if memo or self.__dict__.get("parent") is not None:  # part of a larger copy, or a subtree
            return copy._reconstruct(self, memo, *self.__reduce_ex__(4))  # type: ignore[attr-defined]
        clone = copy_node(self, None, {})
        memo[id(self)] = clone
        return clone

    node_cls.__deepcopy__ = node_deepcopy  # type: ignore[attr-defined]

    # 50. A condition expression's syntax tree built once per expression, names and value
    # placeholders: moto lexed it with a dozen regular expressions, token by token, on every
    # request, although only the values differ from one claim to the next (a timestamp). The tree
    # is kept with the placeholders' values of its first request; each request gets a copy with its
    # own values (looked up by placeholder, as moto looks them up), and moto makes its condition of
    # it. An invalid expression raises moto's error on every request (nothing is kept).
    from moto.dynamodb.comparisons import ConditionExpressionParser

    condition_kind = ConditionExpressionParser.Kind
    parse_condition_whole = ConditionExpressionParser.parse
    condition_trees: dict[tuple[Any, ...], tuple[Any, list[str], list[str]]] = {}

    def with_values(node: Any, values: dict[str, Any]) -> Any:
        if node.kind == condition_kind.EXPRESSION_ATTRIBUTE_VALUE:
            return node._replace(value=values[node.text])
        if not node.children:
            return node
        return node._replace(children=[with_values(child, values) for child in node.children])

    def parse_condition_tree(self: Any) -> Any:
        names, values = self.expression_attribute_names or {}, self.expression_attribute_values or {}
        if not self.condition_expression:
            return parse_condition_whole(self)
        key = (self.condition_expression, tuple(sorted(names.items())), tuple(sorted(values)))
        kept = condition_trees.get(key)
        if kept is None:
            # moto's parse, step by step, keeping the tree it makes its condition of
            nodes = self._lex_condition_expression()
            for step in (self._parse_paths, self._apply_functions, self._apply_comparator, self._apply_in,
                         self._apply_between, self._apply_parens_and_booleans):  # fmt: skip
                nodes = step(nodes)
            self._assert_no_redundant_parentheses(nodes[0])
            kept = (nodes[0], self._find_literals(nodes[0]), self._find_expr_attr_values(nodes[0]))
            if len(condition_trees) >= 4096:
                condition_trees.clear()
            condition_trees[key] = kept
        tree, names_found, values_found = kept
        self.expr_attr_names_found.extend(names_found)
        self.expr_attr_values_found.extend(values_found)
        return self._make_op_condition(with_values(tree, values))

    ConditionExpressionParser.parse = parse_condition_tree  # type: ignore[method-assign]

    # 13. A condition expression parsed once per request: moto's handler parsed it to check the names
    # and values it uses, and its backend again, from the same request's expression, names and
    # values. Each thread keeps its last parse, for the very same objects (held, so that no other
    # object can take their ids), and hands it out again with the names and values it found.
    parse_condition = ConditionExpressionParser.parse
    last_condition = threading.local()

    def parse_condition_once(self: Any) -> Any:
        inputs = (self.condition_expression, self.expression_attribute_names, self.expression_attribute_values)
        last = getattr(last_condition, "parse", None)
        if last is not None and last[0] == inputs[0] and last[1] is inputs[1] and last[2] is inputs[2]:
            self.expr_attr_names_found.extend(last[4])
            self.expr_attr_values_found.extend(last[5])
            return last[3]
        op = parse_condition(self)
        last_condition.parse = (*inputs, op, list(self.expr_attr_names_found), list(self.expr_attr_values_found))
        return op

    ConditionExpressionParser.parse = parse_condition_once  # type: ignore[method-assign]

    # 14. The validator's passes over an expression tree (ten per UpdateItem) asked, for every node,
    # whether it is a node and which of the pass's node classes it is an instance of: isinstance
    # against abstract classes, with the pass's class list and map built anew for each node. The
    # answers depend on the node's class only: found once per class and pass (moto registers no
    # virtual subclasses). Same order of visits, same processing, same replacements.
    traverser_cls = ast_nodes.DepthFirstTraverser
    is_node: dict[type, bool] = {}
    processed_as: dict[tuple[type, type], Any] = {}  # (pass class, node class) -> map key, or None

    def processor_for(self: Any, node_type: type) -> Any:
        mapping = self.__dict__.get("_motofast_map")
        if mapping is None:
            mapping = self.__dict__["_motofast_map"] = self._processing_map()
        key = (type(self), node_type)
        if key not in processed_as:
            kinds = self.nodes_to_be_processed()
            matches = issubclass(node_type, kinds)
            processed_as[key] = next((k for k in mapping if issubclass(node_type, k)), None) if matches else None
        found = processed_as[key]
        return None if found is None else mapping[found]

    no_hook = traverser_cls.pre_processing_of_child  # moto's: does nothing; one pass of ten has its own

    def traverse_node_recursively(self: Any, node: Any, child_id: int = -1) -> Any:
        # A walk's processor per node class, from processor_for; the hook called only if the pass has one.
        processors: dict[type, Any] = self.__dict__.setdefault("_motofast_processors", {})
        hook = None if type(self).pre_processing_of_child is no_hook else self.pre_processing_of_child

        def visit(node: Any, child_id: int) -> Any:
            node_type = type(node)
            known = is_node.get(node_type)
            if known is None:
                known = is_node[node_type] = issubclass(node_type, node_cls)
            if not known:
                return node
            parent_node = node.parent
            children = node.children
            if children is not None:
                for i, child_node in enumerate(children):
                    if hook is not None:
                        hook(node, i)
                    visit(child_node, i)
            if node_type in processors:
                processor = processors[node_type]
            else:
                processor = processors[node_type] = processor_for(self, node_type)
            if processor is not None:
                node = processor(node)
                node.parent = parent_node
                if parent_node:
                    parent_node.children[child_id] = node
            return node

        return visit(node, child_id)

    traverser_cls.traverse_node_recursively = traverse_node_recursively  # type: ignore[attr-defined]

    # 15. An update expression's syntactic checks made once per expression, names and table keys:
    # the first three of the validator's passes (at most one clause of each kind, no overlapping
    # paths, no key attribute updated) read only the tree (parsed once, 11), the names and the
    # table's keys, and the first two looked at every clause's whole subtree (quadratic in the
    # number of actions). They run, in moto's order, on the parsed tree itself, before the other
    # passes, as before; a tree that passed them passes them again without running them. A tree
    # that fails is checked again on every call (moto's error, raised anew).
    from moto.dynamodb.parsing import validators

    syntactic = (validators.ActionCountValidator, validators.OverlappingPathsValidator,
                 validators.UpdateHashRangeKeyValidator)  # fmt: skip
    passed: dict[tuple[Any, ...], Any] = {}  # (id(tree), names, keys) -> tree (held: its id stays its own)
    update_validator = validators.UpdateExpressionValidator
    all_passes = update_validator.get_ast_processors

    def later_passes(self: Any) -> list[Any]:
        return [p for p in all_passes(self) if not isinstance(p, syntactic)]

    validator_init = validators.Validator.__init__

    def init(self: Any, expression: Any, *args: Any, **kwargs: Any) -> None:
        self._motofast_tree = expression
        validator_init(self, expression, *args, **kwargs)

    def validate(self: Any) -> Any:
        tree, names = self._motofast_tree, self.expression_attribute_names or {}
        key = (id(tree), tuple(sorted(names.items())), tuple(self.table.table_key_attrs))
        if passed.get(key) is not tree:
            for check in all_passes(self)[: len(syntactic)]:
                assert isinstance(check, syntactic)
                check.traverse(tree)
            if len(passed) > 4096:
                passed.clear()
            passed[key] = tree
        n = self.node_to_validate
        for processor in self.processors:
            n = processor.traverse(n)
        return n

    update_validator.__init__ = init  # type: ignore[method-assign]
    update_validator.get_ast_processors = later_passes  # type: ignore[method-assign]
    update_validator.validate = validate  # type: ignore[method-assign]

    # 16. A DynamoDB answer turned into plain values without asking every string and number whether
    # it is a date, a DynamoType or has to_json(): plain dicts, lists and scalars (by exact type) are
    # copied as moto's dynamo_to_dict copies them; anything else still goes through it.
    import moto.dynamodb.responses as ddb_responses
    from moto.dynamodb.models.utilities import dynamo_to_dict

    scalars = (str, int, float, bool, type(None))

    def to_plain(obj: Any) -> Any:
        kind = type(obj)
        if kind in scalars:
            return obj
        if kind is dict:
            return {k: to_plain(v) for k, v in obj.items()}
        if kind is list:
            return [to_plain(v) for v in obj]
        return dynamo_to_dict(obj)

    ddb_responses.dynamo_to_dict = to_plain  # type: ignore[attr-defined]

    # 17. moto looked up a service's account backends, on every request, by checking that the
    # account's entry exists (listing the keys) and that its BackendDict is registered: `in` on a
    # list of BackendDicts, which compares dicts by value, all of their contents. Once both hold,
    # they hold: the check is skipped for an account already there, in a BackendDict registered by
    # identity.
    from moto.core.base_backend import BackendDict

    create_account = BackendDict._create_account_specific_backend
    backend_dicts: Any = BackendDict

    def account_backend(self: Any, account_id: str) -> None:
        if dict.__contains__(self, account_id) and any(i is self for i in backend_dicts._instances):
            return
        create_account(self, account_id)

    BackendDict._create_account_specific_backend = account_backend  # type: ignore[method-assign]

    # 18. The clauses of a parsed update expression (11) found once per tree and clause kinds: moto's
    # handler lists the names and values each UpdateItem uses by walking the whole tree, twice.
    # Only trees that 11 keeps (never changed) are remembered; a copy is walked as before.
    kept_trees: dict[int, Any] = {}  # id -> tree, for the trees 11 made (held with their ids)
    clauses_of: dict[tuple[int, tuple[type, ...]], list[Any]] = {}
    find_clauses = node_cls.find_clauses
    parse_kept = parser_cls.make.__func__

    def make(cls: Any, expression: str) -> Any:
        tree = parse_kept(cls, expression)
        if id(tree) not in kept_trees:
            if len(kept_trees) >= 2048:  # more than 11 keeps: start again
                kept_trees.clear()
                clauses_of.clear()
            kept_trees[id(tree)] = tree
        return tree

    def find_clauses_kept(self: Any, clause_types: list[type]) -> list[Any]:
        if kept_trees.get(id(self)) is not self:
            return find_clauses(self, clause_types)  # type: ignore[no-any-return]
        key = (id(self), tuple(clause_types))
        found = clauses_of.get(key)
        if found is None:
            found = clauses_of[key] = find_clauses(self, clause_types)
        return list(found)

    parser_cls.make = classmethod(make)
    node_cls.find_clauses = find_clauses_kept

    # 19. An error answer named its service by making a new botocore session and listing every
    # service botocore knows, each time: the answer is the same for a package name every time.
    import moto.core.utils as moto_utils

    moto_utils.service_name_from_moto_package_name = functools.lru_cache(maxsize=None)(  # type: ignore[assignment]
        moto_utils.service_name_from_moto_package_name
    )

    # 51. A value's size without wrapping every nested value in a new DynamoType: moto's size() of a
    # map made a DynamoType of each of its values (which re-wraps each element of a list, and so
    # on down), and every top-level SET of an update sizes the whole item again (the item's
    # LimitedSizeDict). The same sizes: moto's measure, type by type, on the values as they are;
    # a nested value that is not a DynamoType still goes through moto's own.
    import moto.dynamodb.models.dynamo_type as dynamo_types
    import moto.dynamodb.models.utilities as dynamo_utilities

    value_cls, text_size = dynamo_types.DynamoType, dynamo_utilities.bytesize
    dynamo_size = value_cls.size

    def size(self: Any) -> int:
        kind, value = self.type, self.value
        if kind == "N":
            return len(str(value))
        if kind == "L":
            return sum(size(v) if type(v) is value_cls else v.size() for v in value)
        if kind == "M":
            return sum(
                text_size(k) + (size(v) if type(v) is value_cls else value_cls(v).size()) for k, v in value.items()
            )
        if kind in ("SS", "NS", "BS") or isinstance(value, bool):
            return dynamo_size(self)  # type: ignore[no-any-return]
        return text_size(value)

    value_cls.size = size  # type: ignore[method-assign]

    # 52. A value as plain JSON without copying it twice: moto deep-copied a map's or list's nested
    # values, then made each copy plain JSON (which deep-copies its own again), level by level;
    # an item's JSON (several per UpdateItem: its answer, its stream record's images) went
    # through it for every attribute. The same JSON, built from the values as they are (anything
    # else copied as moto copies it); a value of another container class still goes moto's way.
    regular_json = value_cls.to_regular_json

    def plain(value: Any) -> Any:
        return value.to_regular_json() if isinstance(value, value_cls) else copy.deepcopy(value)

    def to_regular_json(self: Any) -> dict[str, Any]:
        value = self.value
        if type(value) is dict:
            value = {k: plain(v) for k, v in value.items()}
        elif type(value) is list:
            value = [plain(v) for v in value]
        else:
            return regular_json(self)  # type: ignore[no-any-return]
        return {self.type: value}

    value_cls.to_regular_json = to_regular_json  # type: ignore[method-assign]

    # 20. The groups of a queue's in-flight messages, from a copy of the set (taken at once: no
    # Python code runs while a set is copied, so no other thread changes it meanwhile).
    def pending_message_groups(self: Any) -> set[str]:
        return {m.group_id for m in list(self._pending_messages) if m.group_id is not None}

    queue_cls.pending_message_groups = property(pending_message_groups)  # type: ignore[assignment,method-assign]

    # 21. An item's size limit checked once, for all its attributes: moto checked the sum of all the
    # sizes so far as each attribute went in; the sizes are never negative, so one of those sums
    # is over the limit exactly when the last one, the item's size, is. Same error, same items.
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    def item_init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key, self.range_key = hash_key, range_key
        values = {key: DynamoType(value) for key, value in attrs.items()}
        if sum(bytesize(key) + value.size() for key, value in values.items()) > ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        self.attrs = LimitedSizeDict(values)  # its constructor checks nothing (dict.update)

    Item.__init__ = item_init  # type: ignore[method-assign]

    # 22. Random strings (request ids, receipt handles) drawn in one call: the same characters,
    # each as likely, from the same seedable generator.
    from moto.moto_api._internal.moto_random import HEX_CHARS, MotoRandom

    def random_string(self: Any, length: int = 20, include_digits: bool = True, lower_case: bool = False) -> str:
        pool = string.ascii_letters + (string.digits if include_digits else "")
        drawn = "".join(self.choices(pool, k=length))
        return drawn.lower() if lower_case else drawn

    hex_chars = [str(c) for c in HEX_CHARS]
    MotoRandom.get_random_string = random_string  # type: ignore[method-assign]
    MotoRandom.get_random_hex = lambda self, length=8: "".join(self.choices(hex_chars, k=length))  # type: ignore[method-assign]

    # 30. GetQueueAttributes read each attribute it was asked for three times (moto's lazy
    # attributes, 3, compute one on every read), and each message count walks the whole queue: now
    # each asked-for attribute is read once, and the message counts come from one walk of the queue.
    # ("All" keeps moto's path: the lazy attributes compute each once there.)
    counted = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
               "ApproximateNumberOfMessagesDelayed")  # fmt: skip
    backend_cls = sqs_models.SQSBackend
    whole_queue_attributes = backend_cls.get_queue_attributes

    def message_counts(queue: Any) -> dict[str, int]:
        now = sqs_models.unix_time_millis()  # type: ignore[attr-defined]
        number = not_visible = delayed = 0
        for m in list(queue._messages):
            is_visible, is_delayed = now > m.visible_at, now < m.delayed_until
            number += is_visible and not is_delayed
            not_visible += not is_visible
            delayed += is_delayed
        return dict(zip(counted, (number, not_visible, delayed), strict=True))

    def get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
        if not attribute_names or "All" in attribute_names:
            return whole_queue_attributes(self, queue_name, attribute_names)  # type: ignore[no-any-return]
        queue = self.get_queue(queue_name)
        valid = queue.BASE_ATTRIBUTES + queue.FIFO_ATTRIBUTES + queue.KMS_ATTRIBUTES
        if any(name not in valid for name in attribute_names):
            return whole_queue_attributes(self, queue_name, attribute_names)  # type: ignore[no-any-return]  # its error
        present = queue.attributes
        counts = message_counts(queue) if any(name in counted for name in attribute_names) else {}
        found: dict[str, Any] = {}
        for name in dict.fromkeys(attribute_names):
            if name in present:
                value = counts[name] if name in counts else present.get(name)
                if value is not None:
                    found[name] = value
        return found

    backend_cls.get_queue_attributes = get_queue_attributes  # type: ignore[method-assign]

    # 31. A projection (an index's, or a ProjectionExpression) turned the whole item into plain
    # Python values and back to keep a few attributes: every attribute converted, a task's runs (a
    # list of maps) the dearest. Top-level names whose values are strings, booleans or nulls (which
    # that round trip returns as they are) are now copied as they are; anything else still takes
    # moto's path. Same attributes, in the same order, under the same keys.
    item_cls = ddb_types.Item
    whole_project = item_cls.project
    verbatim = frozenset({"S", "BOOL", "NULL"})

    def project(self: Any, projection_expressions: list[list[str]]) -> Any:
        kept: dict[str, Any] = {}
        for path in projection_expressions:
            if len(path) != 1 or "[" in path[0]:
                return whole_project(self, projection_expressions)
            value = self.attrs.get(path[0])
            if value is None or path[0] in kept:
                continue
            if value.type not in verbatim:
                return whole_project(self, projection_expressions)
            kept[path[0]] = {value.type: value.value}
        return item_cls(hash_key=self.hash_key, range_key=self.range_key, attrs=kept)

    item_cls.project = project  # type: ignore[method-assign]

    _apply_ec2()

    # 9. Item operations are atomic in DynamoDB: make them so in moto.
    write_lock = threading.RLock()
    for name in (*WRITES, "get_item", "query", "scan"):
        original = getattr(DynamoDBBackend, name)

        def locked(
            self: Any, *args: Any, __original: Any = original, __write: bool = name in OTHER_WRITES, **kwargs: Any
        ) -> Any:
            with write_lock:
                try:
                    return __original(self, *args, **kwargs)
                finally:
                    epoch[0] += __write

        setattr(DynamoDBBackend, name, functools.wraps(original)(locked))


def _plain_id(values: Any) -> str | None:
    """The one resource id a filter's values name exactly (no wildcard, no escape), else None."""
    if isinstance(values, list) and len(values) == 1:
        values = values[0]
    if isinstance(values, str) and not any(c in values for c in "*?[\\"):
        return values
    return None


def _apply_ec2() -> None:
    """Patches 40-43: EC2 lookups by id that moto made by scanning, and its answers' serializer
    (the provisioner's launches and census)."""
    from moto.ec2.models.amis import AmiBackend
    from moto.ec2.models.instances import InstanceBackend
    from moto.ec2.models.tags import TagBackend
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    # 40. An image asked for by one plain id, as RunInstances asks twice (by id, then by an
    # `image-id` filter): the image itself, or (the filter) none. Anything else, or an id moto does
    # not have (its errors, its deleted images), goes to moto.
    describe_images = AmiBackend.describe_images

    def one_image(
        self: Any, ami_ids: Any = None, filters: Any = None, exec_users: Any = None, owners: Any = None
    ) -> Any:
        if exec_users or owners:
            return describe_images(self, ami_ids, filters, exec_users, owners)
        if ami_ids and not filters:
            wanted = _plain_id(list(ami_ids))
            if wanted is not None and wanted in self.amis:
                return [self.amis[wanted]]
        elif filters and not ami_ids and set(filters) == {"image-id"}:
            wanted = _plain_id(filters["image-id"])
            if wanted is not None:
                return [self.amis[wanted]] if wanted in self.amis else []
        return describe_images(self, ami_ids, filters, exec_users, owners)

    AmiBackend.describe_images = one_image  # type: ignore[method-assign]

    # 41. The tags of one resource named by its plain id: its own, as moto's scan would list them.
    describe_tags = TagBackend.describe_tags

    def tags_of_one(self: Any, filters: Any = None) -> Any:
        resource_id = _plain_id(filters["resource-id"]) if filters and set(filters) == {"resource-id"} else None
        if resource_id is None:
            return describe_tags(self, filters)
        tags = self.tags.get(resource_id) or {}  # .get: `tags` is a defaultdict
        kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
        return [{"resource_id": resource_id, "key": k, "value": v, "resource_type": kind} for k, v in tags.items()]

    TagBackend.describe_tags = tags_of_one  # type: ignore[method-assign]

    # 42. An instance by id: the same search, without a filter check per instance.
    def get_instance(self: Any, instance_id: str) -> Any:
        for reservation in list(self.reservations.values()):  # a copy: other threads may add some
            for instance in reservation.instances:
                if instance.id == instance_id:
                    return instance
        from moto.ec2.exceptions import InvalidInstanceIdError

        raise InvalidInstanceIdError(instance_id)

    InstanceBackend.get_instance = get_instance  # type: ignore[method-assign]

    # 43. The names a value may be found by depend on the picker, the kind of object (its class,
    # and the aliases its class declares), the member's name and its shape (botocore's shapes are
    # made once per service model, and each member shape has one parent): found once per those.
    from moto.core.serialize import AttributePicker
    from moto.core.utils import MISSING, get_value

    names: dict[tuple[Any, ...], tuple[str, ...]] = {}

    def pick(self: Any, context: Any) -> Any:
        obj = context.obj
        if "Meta" in getattr(obj, "__dict__", ()):  # aliases of this object's own: not its class's
            keys: tuple[str, ...] = tuple(self.get_possible_keys(context))
        else:
            found = (type(self), tuple(self.alias_providers), type(obj), context.key, context.shape)
            if found not in names:
                names[found] = tuple(self.get_possible_keys(context))
            keys = names[found]
        for key in keys:
            value = get_value(obj, key, MISSING)
            if value is not MISSING:
                break
        else:
            value = None
        if self.response_transformers:
            key_path = f"{context.key_path}.{context.key}"
            for transform_path, transform in self.response_transformers.items():
                if key_path.endswith(transform_path):
                    value = transform(value)
                    break
        return value

    AttributePicker.__call__ = pick  # type: ignore[method-assign]
