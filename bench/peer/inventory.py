"""The inventory worker's dataflow in Quix Streams: the peer arm of the performance benchmark.

What and why
------------
The benchmark (issue 7) compares the Rust ``inventory`` worker (workers/inventory) with the same
step written in a mainstream stream-processing framework. This module is that step in Quix
Streams: the same topics, the same wire format (Confluent-framed Avro, schemas from the
registry), the same two stages with state per key and changelog topics, and the same decisions,
ported line by line from workers/inventory/src/{orders.rs,stock.rs}. Only the framework differs.

Layout: one Quix ``Application`` (one consumer group, one process) with two stateful
StreamingDataFrames, connected through the Rust worker's internal topics:

- **order stage**, state per order id: ``storefront.orders.v1`` (OrderPlaced) concatenated with
  ``inventory.sku-holds.v1`` (SkuHoldAnswered). An order sends one HOLD ``SkuCommand`` per SKU
  (its lines of one SKU added up) to ``inventory.sku-commands.v1``, keyed by SKU. Once every
  SKU has answered it emits ``StockReserved`` (all held) or ``StockRejected`` (naming the short
  lines) to ``inventory.reservations.v1`` and, on rejection, RELEASEs what was held.
- **stock stage**, state per SKU: ``warehouse.stock-adjustments.v1`` (StockAdjusted)
  concatenated with ``inventory.sku-commands.v1``. A HOLD is granted only if enough units are
  available (idempotent per order: a second HOLD of an order takes nothing more, a HOLD of an
  order the SKU already closed takes nothing); it answers ``SkuHoldAnswered`` on
  ``inventory.sku-holds.v1`` keyed by order id, and announces ``LowStock`` on
  ``inventory.stock-levels.v1`` when available units fall below ``--low-stock-threshold``
  (once per crossing). RELEASE and SHIP act on what the order holds.

Both concatenated pairs must be co-partitioned (same partition count, same key-to-partition
mapping): the producer uses ``murmur2_random`` like the Rust workers, so a SKU's commands land in
the partition number its stock adjustments are in.

Like the Rust runtime, each key's state carries a ring of the last ``--dedup-max-per-key``
input event ids, so an input re-delivered after a crash is skipped (the Rust ring also ages out
after an hour; this one is bounded by count only). Output event ids are derived exactly as the
Rust worker derives them (UUIDv5 of the cause's id, the output type and a discriminator, see
shared/events/src/envelope.rs), with the input record's timestamp as the handler's clock, so
both arms emit the same event ids for the same inputs.

Left out, on purpose
--------------------
- ``OrderCancelled`` (fulfilment.orders.v1) and ``ShipmentCreated`` (shipping.shipments.v1)
  are not consumed, so ``StockReleased`` is never emitted and orders are never shipped (the
  stock stage still executes RELEASE and SHIP commands). The benchmark's input is OrderPlaced
  and StockAdjusted only.
- Records the Rust worker would dead-letter (an order without lines, a hold of zero units, an
  adjustment below zero, an undecodable record) are logged and skipped; there is no
  dead-letter topic. Records of other event types are skipped silently.
- Finished orders are never forgotten (the Rust worker forgets them after
  ``--order-retention``, 7 days by default; irrelevant within a benchmark run). Quix's per-write
  state TTL would do it, but it switches each store partition into a TTL mode on first use,
  with a warning per partition and an expiry stamp on every value from then on.
- No metrics endpoint, no exactly-once (tansu has no transactions; Quix's exactly-once mode is
  accepted by the flag but needs a broker that has them).

Client settings
---------------
The librdkafka settings the Rust runtime sets (shared/runtime/src/config.rs) are passed through
``consumer_extra_config`` / ``producer_extra_config``: consumer ``auto.offset.reset=earliest``,
``isolation.level=read_committed``, ``session.timeout.ms=30000``,
``max.poll.interval.ms=300000``, ``statistics.interval.ms=5000``,
``queued.max.messages.kbytes=16384``, and ``fetch.queue.backoff.ms=1000`` (librdkafka's
default, which the Rust side keeps; Quix would lower it to 100); producer
``partitioner=murmur2_random``, ``enable.idempotence=true``, ``acks=all``, ``linger.ms=5``,
``compression.type=lz4``, ``statistics.interval.ms=5000``. Not matched: Quix forces the
``range`` assignor (ours is ``range,roundrobin``, which picks ``range`` as well) and commits
offsets itself at each checkpoint (``--commit-interval``) instead of librdkafka's auto-commit of
stored offsets every ``auto.commit.interval.ms`` (the Rust default is 1 s, as here).

Usage
-----
::

    "$(bench/peer/install)" bench/peer/inventory.py \\
        --bootstrap-servers 127.0.0.1:9092 --schema-registry-url http://127.0.0.1:8081 \\
        --topic-prefix bench-peer. --group-id bench-peer --commit-interval 1

Flags (environment variable in brackets; every flag has a default):

--bootstrap-servers      Kafka bootstrap servers [KAFKA_BOOTSTRAP_SERVERS] (127.0.0.1:9092)
--schema-registry-url    registry base URL [SCHEMA_REGISTRY_URL] (http://127.0.0.1:8081)
--topic-prefix           prefix of the catalogue topic names [WORKER_TOPIC_PREFIX] ("")
--group-id               Quix consumer group; also names the changelog topics (inventory-quix)
--commit-interval        seconds between Quix checkpoints (1.0, the Rust workers' default)
--state-dir              RocksDB state directory (default: a fresh temporary directory removed
                         at exit; state is restored from the changelog topics on start)
--processing-guarantee   at-least-once (default) or exactly-once
--topic-partitions       partitions of topics created when missing (6, the workers' default)
--broker-without-admin-api
                         the broker has no CreateTopics or DescribeConfigs (librdkafka's mock
                         cluster): topics are created by asking for their metadata, and their
                         configs are taken to be the benchmark's
--low-stock-threshold    LowStock below this many available units (10)
--closed-order-memory    seconds a SKU remembers orders that hold nothing (600)
--closed-order-limit     at most this many such orders per SKU (256)
--dedup-max-per-key      input event ids remembered per key (32)
--log-level              DEBUG, INFO, WARNING or ERROR (INFO)
--consumer-config K=V    a librdkafka consumer property over the defaults (repeatable)
--producer-config K=V    a librdkafka producer property over the defaults (repeatable)

Topics must exist with explicit ``retention.ms`` and ``retention.bytes`` configs (Quix derives
its changelog topics' configs from them); missing ones are created with 6 partitions and those
configs. The output subjects must be registered (every Rust worker registers the catalogue at
start; ``retailctl schemas register`` does too). Runs until SIGTERM or SIGINT, then finishes
the current checkpoint and exits 0.

Output records carry the time they are produced (as the Rust runtime's do), not their input's
timestamp, which Quix would otherwise pass on.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import shutil
import struct
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import fastavro

with warnings.catch_warnings(record=True):
    # authlib, imported by confluent-kafka's schema registry client, warns about itself while
    # being imported and forces its warnings on (so "ignore" filters do not help): recorded
    # here and dropped. The peer never uses it.
    from quixstreams import Application
    from quixstreams.models import TopicConfig
    from quixstreams.models.serializers import Deserializer, IgnoreMessage, Serializer

logger = logging.getLogger("inventory-quix")

#: The service name written into every output envelope, as the Rust worker writes it.
WORKER = "inventory"

# --- the catalogue (shared/events/src/topics.rs, event.rs) ---------------------------------

STOREFRONT_ORDERS = "storefront.orders.v1"
STOCK_ADJUSTMENTS = "warehouse.stock-adjustments.v1"
RESERVATIONS = "inventory.reservations.v1"
STOCK_LEVELS = "inventory.stock-levels.v1"
SKU_COMMANDS = "inventory.sku-commands.v1"
SKU_HOLDS = "inventory.sku-holds.v1"

#: Output event type -> (catalogue topic, key field, registry subject). Subjects follow
#: TopicRecordNameStrategy without the topic prefix (EventDescriptor::subject).
OUTPUTS: dict[str, tuple[str, str, str]] = {
    "SkuCommand": (SKU_COMMANDS, "sku", f"{SKU_COMMANDS}-retail.inventory.SkuCommand"),
    "SkuHoldAnswered": (
        SKU_HOLDS,
        "order_id",
        f"{SKU_HOLDS}-retail.inventory.SkuHoldAnswered",
    ),
    "StockReserved": (
        RESERVATIONS,
        "order_id",
        f"{RESERVATIONS}-retail.inventory.StockReserved",
    ),
    "StockRejected": (
        RESERVATIONS,
        "order_id",
        f"{RESERVATIONS}-retail.inventory.StockRejected",
    ),
    "LowStock": (STOCK_LEVELS, "sku", f"{STOCK_LEVELS}-retail.inventory.LowStock"),
}

#: Input topic -> the full name of the one event type each stage reads from it.
INPUTS: dict[str, str] = {
    STOREFRONT_ORDERS: "retail.storefront.OrderPlaced",
    SKU_HOLDS: "retail.inventory.SkuHoldAnswered",
    STOCK_ADJUSTMENTS: "retail.warehouse.StockAdjusted",
    SKU_COMMANDS: "retail.inventory.SkuCommand",
}

I32_MIN, I32_MAX = -(2**31), 2**31 - 1

# --- envelopes and ids (shared/events/src/envelope.rs) -------------------------------------

#: Namespace of derived event ids: must equal DERIVED_ID_NAMESPACE of the Rust side.
DERIVED_ID_NAMESPACE = uuid.UUID("6f1c2d0e-5b7a-4c1e-9a53-0d6e8f21b4c7")


def derived_event_id(cause: str, event_type: str, discriminator: str) -> str:
    """``EventId::derived``: UUIDv5 over the cause's 16 bytes, the type, a 0 byte, the
    discriminator; the same inputs give the same id, so a replay re-emits the same ids."""
    name = uuid.UUID(cause).bytes + event_type.encode() + b"\x00" + discriminator.encode()
    digest = hashlib.sha1(DERIVED_ID_NAMESPACE.bytes + name).digest()
    return str(uuid.UUID(bytes=digest[:16], version=5))


class Context:
    """What a handler knows besides its state: the input's envelope and the clock (the input
    record's timestamp, never the wall clock, so a re-delivered input gives the same outputs);
    collects the outputs (``retail_runtime::Context``)."""

    __slots__ = ("cause", "now_micros", "revisions", "outputs")

    def __init__(self, cause: dict, now_micros: int, revisions: dict[str, int]):
        self.cause = cause
        self.now_micros = now_micros
        self.revisions = revisions
        self.outputs: list[dict] = []

    def envelope_for(self, event_type: str, discriminator: str) -> dict:
        """``Envelope::caused_by``: derived id, inherited correlation id, the input as cause."""
        return {
            "event_id": derived_event_id(self.cause["event_id"], event_type, discriminator),
            "event_type": event_type,
            "occurred_at": self.now_micros,
            "correlation_id": self.cause["correlation_id"],
            "causation_id": self.cause["event_id"],
            "producer": WORKER,
            "schema_version": self.revisions.get(event_type, 1),
        }

    def emit(self, event: dict) -> None:
        self.outputs.append(event)


class Rejected(Exception):
    """An input the Rust worker would dead-letter (``HandlerError::Rejected``)."""


def clamp(units: int) -> int:
    """Units for an Avro ``int`` field."""
    return max(I32_MIN, min(I32_MAX, units))


# --- the order stage (workers/inventory/src/orders.rs) -------------------------------------

HOLDING, RESERVED, REJECTED = "holding", "reserved", "rejected"


class OrderStage:
    """State per order id: ``{"phase", "lines": {sku: units}, "answers": {sku: [held,
    available]}}``, lines in SKU order like the Rust ``BTreeMap``."""

    def handle(self, name: str, event: dict, state: dict | None, context: Context) -> dict | None:
        """Handles one input; returns the new state (``None``: none). Raises ``Rejected``
        before changing anything."""
        if name == "retail.storefront.OrderPlaced":
            return self.placed(event, state, context)
        if name == "retail.inventory.SkuHoldAnswered":
            return self.answered(event, state, context)
        return state

    @staticmethod
    def command(context: Context, order_id: str, sku: str, kind: str, quantity: int) -> None:
        context.emit(
            {
                "envelope": context.envelope_for("SkuCommand", f"{kind.lower()}:{sku}"),
                "sku": sku,
                "order_id": order_id,
                "kind": kind,
                "quantity": quantity,
            }
        )

    def placed(self, order: dict, state: dict | None, context: Context) -> dict | None:
        if state is not None:
            logger.debug("order %s already known; placement ignored", order["order_id"])
            return state
        if not order["lines"]:
            raise Rejected("an order without lines")
        totals: dict[str, int] = {}
        for line in order["lines"]:
            sku, quantity = line["sku"], line["quantity"]
            if quantity <= 0:
                raise Rejected(f"line {line['line_number']} of SKU {sku} has quantity {quantity}")
            if not sku:
                raise Rejected(f"line {line['line_number']} has no SKU")
            total = totals.get(sku, 0) + quantity
            if total > I32_MAX:
                raise Rejected(f"quantity of SKU {sku} overflows")
            totals[sku] = total
        lines = dict(sorted(totals.items()))
        for sku, quantity in lines.items():
            self.command(context, order["order_id"], sku, "HOLD", quantity)
        return {"phase": HOLDING, "lines": lines, "answers": {}}

    def answered(self, answer: dict, state: dict | None, context: Context) -> dict | None:
        if state is None:
            logger.warning(
                "hold answer for an unknown order %s (SKU %s); ignored",
                answer["order_id"],
                answer["sku"],
            )
            return state
        lines, answers = state["lines"], state["answers"]
        if state["phase"] != HOLDING or answer["sku"] not in lines:
            return state
        answers.setdefault(answer["sku"], [answer["held"], answer["available"]])
        if len(answers) < len(lines):
            return state
        order_id = answer["order_id"]
        short = [
            {"sku": sku, "requested": quantity, "available": answers[sku][1]}
            for sku, quantity in lines.items()
            if not answers[sku][0]
        ]
        if not short:
            context.emit(
                {
                    "envelope": context.envelope_for("StockReserved", ""),
                    "order_id": order_id,
                    "lines": [
                        {"sku": sku, "quantity": quantity} for sku, quantity in lines.items()
                    ],
                }
            )
            state["phase"] = RESERVED
            return state
        for sku, quantity in lines.items():
            if answers[sku][0]:
                self.command(context, order_id, sku, "RELEASE", quantity)
        context.emit(
            {
                "envelope": context.envelope_for("StockRejected", ""),
                "order_id": order_id,
                "short_lines": short,
            }
        )
        state["phase"] = REJECTED
        return state


# --- the stock stage (workers/inventory/src/stock.rs) --------------------------------------


class StockStage:
    """State per SKU: ``{"available", "holds": {order: units}, "shipped", "closed": {order:
    micros}}``; ``available`` never goes below zero."""

    def __init__(self, low_stock_threshold: int, closed_memory_s: float, closed_limit: int):
        self.threshold = low_stock_threshold
        self.closed_memory_micros = int(closed_memory_s * 1_000_000)
        self.closed_limit = closed_limit

    def handle(self, name: str, event: dict, state: dict | None, context: Context) -> dict | None:
        if name not in ("retail.warehouse.StockAdjusted", "retail.inventory.SkuCommand"):
            return state
        # A SKU the warehouse never stocked has nothing available: holds are refused.
        stock = state or {"available": 0, "holds": {}, "shipped": 0, "closed": {}}
        if name == "retail.warehouse.StockAdjusted":
            self.adjusted(event, stock, context)
        else:
            self.command(event, stock, context)
        return stock

    def close(self, stock: dict, order_id: str, context: Context) -> None:
        """Remembers that ``order_id`` holds nothing of the SKU; forgets old closed orders."""
        now = context.now_micros
        oldest = now - self.closed_memory_micros
        closed = {order: at for order, at in stock["closed"].items() if at >= oldest}
        closed[order_id] = now
        while len(closed) > self.closed_limit:
            # The oldest goes first; ties by order id, as Rust's min_by_key over a BTreeMap.
            del closed[min(closed, key=lambda order: (closed[order], order))]
        stock["closed"] = closed

    def announce_low(self, sku: str, before: int, after: int, context: Context) -> None:
        """LowStock once per fall below the threshold, not on every change below it."""
        if before >= self.threshold > after:
            context.emit(
                {
                    "envelope": context.envelope_for("LowStock", ""),
                    "sku": sku,
                    "available": clamp(after),
                    "threshold": self.threshold,
                }
            )

    def adjusted(self, adjusted: dict, stock: dict, context: Context) -> None:
        delta = adjusted["quantity_delta"]
        if delta == 0:
            raise Rejected("a stock adjustment of zero units")
        before = stock["available"]
        after = before + delta
        if after < 0:
            held = sum(stock["holds"].values())
            raise Rejected(
                f"adjustment of {delta} units of SKU {adjusted['sku']} would leave {after} "
                f"available ({held} held for orders)"
            )
        stock["available"] = after
        self.announce_low(adjusted["sku"], before, after, context)

    def command(self, command: dict, stock: dict, context: Context) -> None:
        before = stock["available"]
        order_id, kind, quantity = command["order_id"], command["kind"], command["quantity"]
        holds = stock["holds"]
        if kind == "HOLD":
            if quantity <= 0:
                raise Rejected(f"a hold of {quantity} units")
            # A second hold for the same order takes nothing more: its answer is repeated.
            if order_id in holds:
                held = True
            elif order_id in stock["closed"]:
                logger.debug(
                    "hold of order %s already released or shipped (a replay); refused",
                    order_id,
                )
                held = False
            elif stock["available"] >= quantity:
                stock["available"] -= quantity
                holds[order_id] = quantity
                held = True
            else:
                self.close(stock, order_id, context)
                held = False
            context.emit(
                {
                    "envelope": context.envelope_for("SkuHoldAnswered", ""),
                    "order_id": order_id,
                    "sku": command["sku"],
                    "requested": quantity,
                    "held": held,
                    "available": clamp(stock["available"]),
                }
            )
        elif kind == "RELEASE":
            units = holds.pop(order_id, None)
            if units is not None:
                stock["available"] += units
            self.close(stock, order_id, context)
        elif kind == "SHIP":
            units = holds.pop(order_id, None)
            if units is not None:
                stock["shipped"] += units
            else:
                logger.warning(
                    "shipment of units of SKU %s not held by order %s; ignored",
                    command["sku"],
                    order_id,
                )
            self.close(stock, order_id, context)
        else:
            raise Rejected("a SKU command of a kind this build does not know")
        self.announce_low(command["sku"], before, stock["available"], context)


# --- the schema registry and the wire format -----------------------------------------------


def strip_logical_types(schema: Any) -> Any:
    """The schema without ``logicalType`` annotations: uuid stays a string and
    timestamp-micros a long, as the Rust side handles them, and fastavro skips the conversion
    to ``uuid.UUID`` / ``datetime`` and back. The bytes on the wire are the same."""
    if isinstance(schema, dict):
        return {
            key: strip_logical_types(value) for key, value in schema.items() if key != "logicalType"
        }
    if isinstance(schema, list):
        return [strip_logical_types(item) for item in schema]
    return schema


class Registry:
    """A Confluent Schema Registry client: writer schemas by id (cached), ids by subject."""

    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._by_id: dict[int, tuple[str, Any]] = {}

    def _get(self, path: str) -> dict:
        request = urllib.request.Request(
            self.url + path,
            headers={"Accept": "application/vnd.schemaregistry.v1+json"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.load(response)

    @staticmethod
    def _parse(text: str) -> tuple[str, Any, int]:
        raw = json.loads(text)
        parsed = fastavro.parse_schema(strip_logical_types(raw))
        return parsed["name"], parsed, int(raw.get("revision", 1))

    def schema_by_id(self, schema_id: int) -> tuple[str, Any]:
        """(full record name, parsed writer schema) of a schema id."""
        cached = self._by_id.get(schema_id)
        if cached is None:
            full_name, parsed, _ = self._parse(self._get(f"/schemas/ids/{schema_id}")["schema"])
            cached = self._by_id[schema_id] = (full_name, parsed)
        return cached

    def latest(self, subject: str) -> tuple[int, Any, int]:
        """(id, parsed schema, revision) of a subject's latest version."""
        quoted = urllib.parse.quote(subject, safe="")
        found = self._get(f"/subjects/{quoted}/versions/latest")
        _, parsed, revision = self._parse(found["schema"])
        return int(found["id"]), parsed, revision


FRAME = struct.Struct(">bI")


class AvroValueDeserializer(Deserializer):
    """Confluent framing (magic 0, big-endian schema id) + Avro binary, decoded with the writer
    schema. Yields ``(full record name, record)``; records of other types than ``accepted``
    and undecodable ones are skipped (the Rust worker would dead-letter the latter). A registry
    that cannot be reached or fails is fatal, as skipping would lose the record."""

    def __init__(self, registry: Registry, accepted: str):
        super().__init__()
        self.registry = registry
        self.accepted = accepted

    def __call__(self, value: bytes, ctx: Any) -> tuple[str, dict]:
        if value is None or len(value) < FRAME.size:
            return self.skip(ctx, "not Confluent-framed (shorter than the 5-byte header)")
        magic, schema_id = FRAME.unpack_from(value)
        if magic != 0:
            return self.skip(ctx, f"magic byte {magic}, expected 0")
        try:
            full_name, schema = self.registry.schema_by_id(schema_id)
        except urllib.error.HTTPError as error:
            if error.code != 404:
                # The registry is there but failing: not the record's fault, and skipping
                # would lose it. Quix stops; a restart resumes from the last checkpoint.
                raise
            return self.skip(ctx, f"schema id {schema_id} is not in the registry")
        # Any other registry failure (unreachable, timed out) propagates for the same reason.
        if full_name != self.accepted:
            raise IgnoreMessage()
        try:
            record = fastavro.schemaless_reader(io.BytesIO(value[FRAME.size :]), schema)
        except Exception as error:  # noqa: BLE001 - fastavro raises several types for bad bytes
            return self.skip(ctx, f"Avro body does not match schema {schema_id}: {error}")
        return full_name, record

    @staticmethod
    def skip(ctx: Any, reason: str) -> Any:
        """Skips a record the Rust worker would dead-letter, saying why."""
        logger.warning("undecodable record on %s skipped: %s", ctx.topic, reason)
        raise IgnoreMessage()


class AvroValueSerializer(Serializer):
    """Writes an output event with its type's registered schema id (by envelope event type)."""

    def __init__(self, writers: dict[str, tuple[bytes, Any]]):
        super().__init__()
        self.writers = writers

    def __call__(self, value: dict, ctx: Any) -> bytes:
        header, schema = self.writers[value["envelope"]["event_type"]]
        out = io.BytesIO()
        out.write(header)
        fastavro.schemaless_writer(out, schema, value)
        return out.getvalue()


# --- the Quix application -------------------------------------------------------------------


def keyed_step(
    handle: Callable[[str, dict, dict | None, Context], dict | None],
    revisions: dict[str, int],
    dedup_max_per_key: int,
) -> Callable[..., list[dict]]:
    """A Quix stateful step around a stage: one state entry per message key holding the
    stage's state and the ring of applied input ids (one changelog record per change, as in the
    Rust runtime), skipping inputs already applied."""

    def step(item: tuple[str, dict], key: str, timestamp: int, headers: Any, state: Any):
        name, event = item
        entry = state.get("entry")
        applied: list[str] = entry["applied"] if entry else []
        event_id = event["envelope"]["event_id"]
        if event_id in applied:
            logger.debug("input %s of key %s already applied; skipped", event_id, key)
            return []
        current = entry["state"] if entry else None
        context = Context(event["envelope"], timestamp * 1000, revisions)
        try:
            new = handle(name, event, current, context)
        except Rejected as reason:
            logger.warning("%s %s of key %s rejected: %s", name, event_id, key, reason)
            new, context.outputs = current, []
        applied.append(event_id)
        if len(applied) > dedup_max_per_key:
            del applied[: len(applied) - dedup_max_per_key]
        state.set("entry", {"state": new, "applied": applied})
        return context.outputs

    return step


#: The Rust runtime's consumer settings (RuntimeConfig::consumer_config) that Quix lets us set.
CONSUMER_CONFIG: dict[str, Any] = {
    "isolation.level": "read_committed",
    "session.timeout.ms": 30000,
    "max.poll.interval.ms": 300000,
    "statistics.interval.ms": 5000,
    "queued.max.messages.kbytes": 16384,
    # librdkafka's default, which the Rust side keeps; Quix would lower it to 100.
    "fetch.queue.backoff.ms": 1000,
}

#: The Rust runtime's producer settings (RuntimeConfig::producer_config).
PRODUCER_CONFIG: dict[str, Any] = {
    "partitioner": "murmur2_random",
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "lz4",
    "statistics.interval.ms": 5000,
}


def build(args: argparse.Namespace, state_dir: str) -> Application:
    """The application: topics, serialisers, both stages."""
    registry = Registry(args.schema_registry_url)
    writers: dict[str, tuple[bytes, Any]] = {}
    revisions: dict[str, int] = {}
    for event_type, (_, _, subject) in OUTPUTS.items():
        try:
            schema_id, schema, revision = registry.latest(subject)
        except urllib.error.HTTPError as error:
            raise SystemExit(
                f"subject {subject} is not in the registry at {args.schema_registry_url} "
                f"(HTTP {error.code}); register the catalogue first (any Rust worker does at "
                f"start, or `retailctl schemas register`)"
            ) from error
        writers[event_type] = (FRAME.pack(0, schema_id), schema)
        revisions[event_type] = revision
        logger.info("output %s: subject %s, schema id %d", event_type, subject, schema_id)

    app = Application(
        broker_address=args.bootstrap_servers,
        consumer_group=args.group_id,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        state_dir=state_dir,
        use_changelog_topics=True,
        processing_guarantee=args.processing_guarantee,
        loglevel=args.log_level,
        consumer_extra_config={**CONSUMER_CONFIG, **dict(args.consumer_config)},
        producer_extra_config={**PRODUCER_CONFIG, **dict(args.producer_config)},
    )
    create_config = TopicConfig(
        num_partitions=args.topic_partitions,
        replication_factor=1,
        extra_config={"retention.ms": "604800000", "retention.bytes": "-1"},
    )
    serializer = AvroValueSerializer(writers)
    topics = {}
    every_topic = (
        STOREFRONT_ORDERS,
        STOCK_ADJUSTMENTS,
        SKU_COMMANDS,
        SKU_HOLDS,
        RESERVATIONS,
        STOCK_LEVELS,
    )
    for name in every_topic:
        accepted = INPUTS.get(name, "")
        topic = app.topic(
            args.topic_prefix + name,
            key_deserializer="str",
            key_serializer="str",
            value_deserializer=AvroValueDeserializer(registry, accepted),
            value_serializer=serializer,
            config=create_config,
        )
        missing = {"retention.ms", "retention.bytes"} - set(topic.broker_config.extra_config)
        if missing:
            raise SystemExit(
                f"topic {topic.name} has no explicit {', '.join(sorted(missing))} config: "
                f"Quix derives its changelog topics' configs from them; create it with both"
            )
        topics[name] = topic

    def destination(value: dict, _key: Any, _timestamp: int, _headers: Any):
        return topics[OUTPUTS[value["envelope"]["event_type"]][0]]

    def output_key(value: dict) -> str:
        return value[OUTPUTS[value["envelope"]["event_type"]][1]]

    def stage(inputs: tuple[str, str], handle: Callable) -> None:
        """A stateful stage reading two co-partitioned topics, writing to the catalogue's."""
        first, second = (app.dataframe(topics[name]) for name in inputs)
        first.concat(second).apply(
            keyed_step(handle, revisions, args.dedup_max_per_key),
            stateful=True,
            expand=True,
            metadata=True,
        ).set_timestamp(producer_time).to_topic(destination, key=output_key)

    stage((STOREFRONT_ORDERS, SKU_HOLDS), OrderStage().handle)
    stock_stage = StockStage(
        args.low_stock_threshold, args.closed_order_memory, args.closed_order_limit
    )
    stage((STOCK_ADJUSTMENTS, SKU_COMMANDS), stock_stage.handle)
    return app


def producer_time(_value: Any, _key: Any, _timestamp: int, _headers: Any) -> int:
    """The output record's timestamp: now, as the Rust runtime leaves it to the producer (Quix
    would otherwise give every output its input's timestamp)."""
    return time.time_ns() // 1_000_000


#: The configs assumed for every topic on a broker without the admin API (the ones the benchmark
#: creates its topics with).
ASSUMED_TOPIC_CONFIG = {"retention.ms": "604800000", "retention.bytes": "-1"}


def without_admin_api() -> None:
    """Lets Quix run on a broker without CreateTopics and DescribeConfigs (librdkafka's mock
    cluster, which creates a topic when a client asks for its metadata): Quix's topic admin then
    makes sure a topic exists by asking for its metadata, and takes its configs to be
    ``ASSUMED_TOPIC_CONFIG``. Only topic set-up changes; processing does not."""
    from quixstreams.models.topics import admin

    def ensure(topic_admin: Any, names: list[str], timeout: float) -> dict[str, Any]:
        found = {}
        for name in names:
            metadata = topic_admin.admin_client.list_topics(topic=name, timeout=timeout)
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None or not topic.partitions:
                raise SystemExit(f"topic {name} is not on the broker and was not created")
            found[name] = topic
        return found

    def inspect_topics(self: Any, topic_names: list[str], timeout: float = 30) -> dict:
        return {
            name: TopicConfig(
                num_partitions=len(topic.partitions),
                replication_factor=1,
                extra_config=dict(ASSUMED_TOPIC_CONFIG),
            )
            for name, topic in ensure(self, topic_names, timeout).items()
        }

    def create_topics(self: Any, topics: list[Any], timeout: float = 30, **_: Any) -> None:
        ensure(self, [topic.name for topic in topics], timeout)

    admin.TopicAdmin.inspect_topics = inspect_topics
    admin.TopicAdmin.create_topics = create_topics


def kafka_setting(text: str) -> tuple[str, str]:
    """``key=value`` of ``--consumer-config`` / ``--producer-config``."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        description="The inventory worker's dataflow in Quix Streams (benchmark peer).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--bootstrap-servers", default=env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument(
        "--schema-registry-url", default=env("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081")
    )
    parser.add_argument("--topic-prefix", default=env("WORKER_TOPIC_PREFIX", ""))
    parser.add_argument("--group-id", default="inventory-quix", help="Quix consumer group")
    parser.add_argument(
        "--commit-interval", type=float, default=1.0, help="seconds between checkpoints"
    )
    parser.add_argument(
        "--state-dir", default=None, help="state directory [default: a temporary one]"
    )
    parser.add_argument(
        "--processing-guarantee",
        choices=("at-least-once", "exactly-once"),
        default="at-least-once",
    )
    parser.add_argument("--topic-partitions", type=int, default=6)
    parser.add_argument(
        "--broker-without-admin-api",
        action="store_true",
        help="the broker has no CreateTopics or DescribeConfigs (librdkafka's mock cluster): "
        "topics are created by asking for their metadata, with the benchmark's configs assumed",
    )
    parser.add_argument("--low-stock-threshold", type=int, default=10)
    parser.add_argument("--closed-order-memory", type=float, default=600.0)
    parser.add_argument("--closed-order-limit", type=int, default=256)
    parser.add_argument("--dedup-max-per-key", type=int, default=32)
    parser.add_argument(
        "--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), default="INFO"
    )
    for client in ("consumer", "producer"):
        parser.add_argument(
            f"--{client}-config",
            action="append",
            default=[],
            type=kafka_setting,
            metavar="KEY=VALUE",
            help=f"a librdkafka property for the {client}, over the defaults (repeatable)",
        )
    args = parser.parse_args(argv)
    problems = []
    if not args.bootstrap_servers.strip():
        problems.append("--bootstrap-servers must name at least one broker")
    if not args.schema_registry_url.startswith(("http://", "https://")):
        problems.append("--schema-registry-url must start with http:// or https://")
    if args.commit_interval <= 0:
        problems.append("--commit-interval must be positive")
    for flag, value, least in (
        ("--topic-partitions", args.topic_partitions, 1),
        ("--low-stock-threshold", args.low_stock_threshold, 0),
        ("--closed-order-limit", args.closed_order_limit, 1),
        ("--dedup-max-per-key", args.dedup_max_per_key, 1),
    ):
        if value < least:
            problems.append(f"{flag} must be at least {least}")
    if problems:
        parser.error("; ".join(problems))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Our own handler: Quix configures its "quixstreams" logger itself, and a root handler
    # would print its lines twice.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(args.log_level)
    logger.propagate = False
    logger.info(
        "starting: bootstrap_servers=%s schema_registry_url=%s topic_prefix=%r group_id=%s "
        "commit_interval=%ss processing_guarantee=%s",
        args.bootstrap_servers,
        args.schema_registry_url,
        args.topic_prefix,
        args.group_id,
        args.commit_interval,
        args.processing_guarantee,
    )
    if args.broker_without_admin_api:
        without_admin_api()
    state_dir = args.state_dir or tempfile.mkdtemp(prefix="inventory-quix-state-")
    try:
        app = build(args, state_dir)
        # Quix handles SIGTERM and SIGINT itself: it stops polling, finishes the current
        # checkpoint (flush, state commit, offset commit) and returns from run().
        app.run()
    finally:
        if args.state_dir is None:
            shutil.rmtree(state_dir, ignore_errors=True)
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
