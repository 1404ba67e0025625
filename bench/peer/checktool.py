"""Helpers of bench/peer/check: topics, a deterministic input, running an arm, verifying it.

Subcommands (run with the peer's venv python; ``--help`` on each):

- ``topics``: creates the catalogue topics under a prefix, with explicit ``retention.ms`` and
  ``retention.bytes`` (Quix derives its changelog topics' configs from them, and tansu creates
  no topic by itself).
- ``produce``: writes one deterministic input (from ``--seed``) to one or more prefixes: first
  a ``StockAdjusted`` restock per SKU, then ``OrderPlaced`` orders of 1-3 lines. Every fourth
  SKU is scarce (stock for about a third of its demand), so some orders must be rejected; the
  others have their whole demand plus a margin. Same records, same event ids, every prefix.
- ``run``: starts an arm (any command), waits until the reservations topic holds ``--count``
  records, reads the process's CPU time from /proc at that moment, stops it with SIGTERM and
  prints the figures as JSON.
- ``verify``: reads an arm's outputs and asserts the invariants: exactly one StockReserved or
  StockRejected per order placed and none for other orders; no SKU reserved beyond its stock;
  no hold answer with negative availability. Writes the decision per order to a JSON file.
- ``compare``: the decisions of two arms, side by side (and their outcome event ids, which
  are derived from the inputs, so equal when both arms saw the same holds in the same order).

Records are Confluent-framed Avro written with the schema ids the registry has for the
catalogue's subjects (``retailctl schemas register`` puts them there).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import fastavro
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from inventory import (  # noqa: E402 - the peer's own codec, next to this file
    FRAME,
    RESERVATIONS,
    SKU_HOLDS,
    STOCK_ADJUSTMENTS,
    STOREFRONT_ORDERS,
    Registry,
)

#: The catalogue topics (shared/events/src/topics.rs): the Rust worker reads some that the peer
#: does not, and checks that its inputs exist and are co-partitioned.
CATALOGUE = (
    "storefront.orders.v1",
    "payments.payments.v1",
    "warehouse.stock-adjustments.v1",
    "inventory.reservations.v1",
    "inventory.stock-levels.v1",
    "inventory.sku-commands.v1",
    "inventory.sku-holds.v1",
    "fraud.checks.v1",
    "fraud.customer-orders.v1",
    "fulfilment.orders.v1",
    "shipping.shipments.v1",
    "notification.notifications.v1",
)

ORDER_PLACED_SUBJECT = f"{STOREFRONT_ORDERS}-retail.storefront.OrderPlaced"
STOCK_ADJUSTED_SUBJECT = f"{STOCK_ADJUSTMENTS}-retail.warehouse.StockAdjusted"


def topics(args: argparse.Namespace) -> None:
    admin = AdminClient({"bootstrap.servers": args.bootstrap_servers})
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [
        NewTopic(
            args.prefix + name,
            num_partitions=args.partitions,
            replication_factor=1,
            config={"retention.ms": "604800000", "retention.bytes": "-1"},
        )
        for name in CATALOGUE
        if args.prefix + name not in existing
    ]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, request_timeout=30).items():
        future.result()
        print(f"created {name} ({args.partitions} partitions)", file=sys.stderr)


# --- the input ---------------------------------------------------------------------------


def plan(seed: int, orders: int, skus: int, max_lines: int) -> tuple[dict[str, int], list[dict]]:
    """(stock per SKU, orders as [{order_id, customer, lines: [(sku, qty)]}]), from the seed."""
    rng = random.Random(seed)
    names = [f"SKU-{index:04d}" for index in range(skus)]
    placed = []
    demand: Counter[str] = Counter()
    for index in range(orders):
        lines = [(sku, rng.randint(1, 3)) for sku in rng.sample(names, rng.randint(1, max_lines))]
        for sku, quantity in lines:
            demand[sku] += quantity
        placed.append(
            {
                "order_id": f"order-{seed}-{index:06d}",
                "customer_id": f"customer-{rng.randrange(orders // 4 + 1):05d}",
                "lines": lines,
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            }
        )
    stock = {
        sku: max(1, demand[sku] // 3) if index % 4 == 0 else demand[sku] + 25
        for index, sku in enumerate(names)
    }
    return stock, placed


def envelope(event_id: str, event_type: str, correlation_id: str, now: int) -> dict:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "occurred_at": now,
        "correlation_id": correlation_id,
        "causation_id": None,
        "producer": "bench-peer-check",
        "schema_version": 1,
    }


def address(name: str) -> dict:
    return {
        "recipient_name": name,
        "line1": "Storgatan 1",
        "line2": None,
        "city": "Uppsala",
        "postal_code": "753 20",
        "region": None,
        "country_code": "SE",
    }


def encoder(registry: Registry, subject: str):
    schema_id, schema, _ = registry.latest(subject)
    header = FRAME.pack(0, schema_id)

    def encode(record: dict) -> bytes:
        out = io.BytesIO()
        out.write(header)
        fastavro.schemaless_writer(out, schema, record)
        return out.getvalue()

    return encode


def produce(args: argparse.Namespace) -> None:
    registry = Registry(args.schema_registry_url)
    encode_order = encoder(registry, ORDER_PLACED_SUBJECT)
    encode_adjustment = encoder(registry, STOCK_ADJUSTED_SUBJECT)
    stock, placed = plan(args.seed, args.orders, args.skus, args.max_lines)
    now = int(time.time() * 1_000_000)
    rng = random.Random(args.seed + 1)
    adjustments = []
    for sku, units in stock.items():
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        adjustments.append(
            (
                sku,
                encode_adjustment(
                    {
                        "envelope": envelope(event_id, "StockAdjusted", f"restock-{sku}", now),
                        "adjustment_id": f"restock-{sku}",
                        "warehouse_id": "wh-1",
                        "sku": sku,
                        "quantity_delta": units,
                        "reason": "RESTOCK",
                    }
                ),
            )
        )
    orders = []
    for order in placed:
        lines = [
            {
                "line_number": number,
                "sku": sku,
                "product_name": f"Product {sku}",
                "quantity": quantity,
                "unit_price": {"amount_minor": 1990, "currency": "SEK"},
                "unit_weight_grams": 250,
            }
            for number, (sku, quantity) in enumerate(order["lines"], start=1)
        ]
        total = sum(line["quantity"] * 1990 for line in lines)
        orders.append(
            (
                order["order_id"],
                encode_order(
                    {
                        "envelope": envelope(
                            order["event_id"], "OrderPlaced", order["order_id"], now
                        ),
                        "order_id": order["order_id"],
                        "customer": {
                            "customer_id": order["customer_id"],
                            "email": f"{order['customer_id']}@example.com",
                            "full_name": "Test Customer",
                            "customer_since": now,
                        },
                        "lines": lines,
                        "order_total": {"amount_minor": total, "currency": "SEK"},
                        "shipping_address": address("Test Customer"),
                        "billing_address": address("Test Customer"),
                        "delivery_speed": "STANDARD",
                    }
                ),
            )
        )
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap_servers,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "linger.ms": 20,
            "compression.type": "lz4",
        }
    )
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    for prefix in args.prefix:
        # Stock first, flushed, so it is older than every order on every partition.
        for batch, topic in ((adjustments, STOCK_ADJUSTMENTS), (orders, STOREFRONT_ORDERS)):
            for key, value in batch:
                while True:
                    try:
                        producer.produce(prefix + topic, value, key, on_delivery=delivered)
                        break
                    except BufferError:
                        producer.poll(0.1)
            if producer.flush(60) != 0 or failures:
                raise SystemExit(f"producing to {prefix + topic} failed: {failures[:3]}")
    print(
        json.dumps(
            {
                "orders": len(orders),
                "skus": len(stock),
                "scarce_skus": sum(1 for index in range(len(stock)) if index % 4 == 0),
                "units_stocked": sum(stock.values()),
                "prefixes": args.prefix,
            }
        )
    )


# --- reading outputs -------------------------------------------------------------------------


def partitions(consumer: Consumer, topic: str) -> list[TopicPartition]:
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    if metadata.error is not None:
        raise SystemExit(f"topic {topic}: {metadata.error}")
    return [TopicPartition(topic, partition) for partition in sorted(metadata.partitions)]


def high_watermarks(consumer: Consumer, topic: str) -> dict[int, int]:
    """The topic's high watermarks, in one ListOffsets request (timestamp -1: the latest)."""
    latest = [TopicPartition(tp.topic, tp.partition, -1) for tp in partitions(consumer, topic)]
    return {tp.partition: tp.offset for tp in consumer.offsets_for_times(latest, timeout=60)}


def read_topic(bootstrap: str, topic: str, registry: Registry) -> Iterator[tuple[str, dict]]:
    """Every record of the topic up to its high watermarks, decoded: (record name, record)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-peer-check-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        ends = high_watermarks(consumer, topic)
        pending = {partition for partition, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, partition, 0) for partition in pending])
        deadline = time.monotonic() + 600
        while pending:
            if time.monotonic() > deadline:
                raise SystemExit(f"reading {topic} timed out; partitions left: {pending}")
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error() is not None:
                raise KafkaException(message.error())
            _, schema_id = FRAME.unpack_from(message.value())
            name, schema = registry.schema_by_id(schema_id)
            yield (
                name,
                fastavro.schemaless_reader(io.BytesIO(message.value()[FRAME.size :]), schema),
            )
            if message.offset() + 1 >= ends[message.partition()]:
                pending.discard(message.partition())
    finally:
        consumer.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its own threads), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run(args: argparse.Namespace) -> None:
    consumer = Consumer({"bootstrap.servers": args.bootstrap_servers, "group.id": "unused"})
    topic = args.prefix + RESERVATIONS
    started = time.monotonic()
    with open(args.log or os.devnull, "w") as log:
        process = subprocess.Popen(args.argv, stdout=log, stderr=subprocess.STDOUT)
        figures, code = watch(args, process, consumer, topic, started)
    consumer.close()
    print(json.dumps({**figures, "exit_code": code}))
    if code != 0:
        raise SystemExit(f"{args.argv[0]} exited with {code} after SIGTERM")


def watch(
    args: argparse.Namespace,
    process: subprocess.Popen,
    consumer: Consumer,
    topic: str,
    started: float,
) -> tuple[dict[str, Any], int]:
    """Waits for the arm's outputs, takes its figures, stops it; (figures, exit code)."""
    first = None
    total, elapsed, cpu, rss = 0, 0.0, 0.0, 0.0
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{args.argv[0]} exited early with {process.returncode}")
            if time.monotonic() - started > args.timeout:
                raise SystemExit(
                    f"only {total} of {args.count} records on {topic} after {args.timeout:.0f}s"
                )
            try:
                total = sum(high_watermarks(consumer, topic).values())
            except KafkaException as error:
                # A busy broker answers slowly; the arm is judged by --timeout, not this.
                print(f"watermark query failed, retrying: {error}", file=sys.stderr)
                continue
            elapsed = time.monotonic() - started
            if total > 0 and first is None:
                first = elapsed
            if total >= args.count:
                break
            time.sleep(0.2)
        cpu, rss = cpu_seconds(process.pid), peak_rss_mib(process.pid)
    finally:
        stop_started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
    return {
        "records": total,
        "seconds_to_first_output": round(first or 0.0, 3),
        "seconds_to_all_outputs": round(elapsed, 3),
        "cpu_seconds": round(cpu, 2),
        "peak_rss_mib": round(rss, 1),
        "stop_seconds": round(time.monotonic() - stop_started, 2),
    }, code


def verify(args: argparse.Namespace) -> None:
    registry = Registry(args.schema_registry_url)
    stock, placed = plan(args.seed, args.orders, args.skus, args.max_lines)
    lines = {order["order_id"]: order["lines"] for order in placed}
    outcomes: dict[str, list[tuple[str, str]]] = defaultdict(list)
    reserved_units: Counter[str] = Counter()
    failures = []
    for name, record in read_topic(args.bootstrap_servers, args.prefix + RESERVATIONS, registry):
        kind = name.rsplit(".", 1)[1]
        outcomes[record["order_id"]].append((kind, record["envelope"]["event_id"]))
        if kind == "StockReserved":
            for line in record["lines"]:
                reserved_units[line["sku"]] += line["quantity"]
    negative = sum(
        1
        for _, answer in read_topic(args.bootstrap_servers, args.prefix + SKU_HOLDS, registry)
        if answer["available"] < 0
    )
    if negative:
        failures.append(f"{negative} hold answers with negative availability")
    unknown = set(outcomes) - set(lines)
    if unknown:
        failures.append(f"outcomes for {len(unknown)} orders never placed")
    missing = [order for order in lines if not outcomes.get(order)]
    if missing:
        failures.append(f"{len(missing)} orders without an outcome, e.g. {missing[:3]}")
    doubled = [order for order, kinds in outcomes.items() if len(kinds) != 1]
    if doubled:
        failures.append(f"{len(doubled)} orders with several outcomes, e.g. {doubled[:3]}")
    oversold = {sku: units for sku, units in reserved_units.items() if units > stock[sku]}
    if oversold:
        failures.append(f"SKUs reserved beyond stock: {oversold}")
    decisions = {order: kinds[0] for order, kinds in outcomes.items() if kinds}
    split = Counter(kind for kind, _ in decisions.values())
    if args.decisions:
        with open(args.decisions, "w") as out:
            json.dump(decisions, out, sort_keys=True)
    print(
        json.dumps(
            {
                "prefix": args.prefix,
                "orders": len(lines),
                "reserved": split["StockReserved"],
                "rejected": split["StockRejected"],
                "failures": failures,
            }
        )
    )
    if failures:
        raise SystemExit(f"verification of {args.prefix} failed")


def compare(args: argparse.Namespace) -> None:
    with open(args.left) as left_file, open(args.right) as right_file:
        left, right = json.load(left_file), json.load(right_file)
    differing = sorted(order for order in left if left[order][0] != right.get(order, [None])[0])
    same_id = sum(1 for order in left if left[order] == right.get(order))
    print(
        json.dumps(
            {
                "orders": len(left),
                "same_decision": len(left) - len(differing),
                "different_decision": len(differing),
                "same_outcome_event_id": same_id,
                "examples": differing[:5],
            }
        )
    )
    if args.expect_same and (differing or same_id != len(left)):
        raise SystemExit("the arms' decisions or outcome event ids differ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="subcommand", required=True)

    def command(name: str, handler: Any, registry: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name)
        sub.set_defaults(handler=handler)
        sub.add_argument("--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
        if registry:
            sub.add_argument("--schema-registry-url", default=os.environ.get("SCHEMA_REGISTRY_URL"))
        return sub

    sub = command("topics", topics, registry=False)
    sub.add_argument("--prefix", required=True)
    sub.add_argument("--partitions", type=int, default=6)

    for name, handler in (("produce", produce), ("verify", verify)):
        sub = command(name, handler)
        sub.add_argument("--seed", type=int, default=7)
        sub.add_argument("--orders", type=int, default=300)
        sub.add_argument("--skus", type=int, default=40)
        sub.add_argument("--max-lines", type=int, default=3, help="lines per order, at most")
    produce_parser = commands.choices["produce"]
    produce_parser.add_argument("--prefix", action="append", required=True)
    verify_parser = commands.choices["verify"]
    verify_parser.add_argument("--prefix", required=True)
    verify_parser.add_argument("--decisions", help="write {order: outcome} here")

    sub = command("run", run, registry=False)
    sub.add_argument("--prefix", required=True)
    sub.add_argument("--count", type=int, required=True)
    sub.add_argument("--timeout", type=float, default=600)
    sub.add_argument("--log", help="the arm's output goes here")
    sub.add_argument("argv", nargs=argparse.REMAINDER, help="-- the arm's command line")

    sub = commands.add_parser("compare")
    sub.set_defaults(handler=compare)
    sub.add_argument("left")
    sub.add_argument("right")
    sub.add_argument(
        "--expect-same",
        action="store_true",
        help="fail unless every order has the same outcome and outcome event id",
    )

    args = parser.parse_args()
    if args.subcommand == "run":
        args.argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not args.argv:
            parser.error("run needs the arm's command after --")
    args.handler(args)


if __name__ == "__main__":
    main()
