#!/usr/bin/env python3
"""kafka.py — small Kafka helper for logship's tests and quickstart (needs confluent-kafka).

Run it with the virtualenv's python that scripts/services.sh installs ($LOGSHIP_TEST_PYTHON):

  kafka.py create-topic NAME [--partitions N]   create a topic; an existing one with N partitions
                                                is fine, one with another count is an error
  kafka.py tail TOPIC [--from-beginning] [--max N] [--timeout-secs S]
                                                print each record's value, one per line; stops
                                                after N records or S seconds (exit 1 if --max
                                                was given and fewer records came)
  kafka.py count TOPIC                          records in the topic: sum of high minus low
                                                watermarks over its partitions
  kafka.py ping [--timeout-secs S]              one metadata request; exit 0 if it is answered

The broker list comes from --brokers, else $LOGSHIP_BROKERS, else 127.0.0.1:9092.
Topics are looked up in a listing of all topics, never by name: the broker under test (noida-db)
auto-creates a topic that a metadata request names.
"""

import argparse
import os
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def fail(msg):
    print(f"kafka.py: {msg}", file=sys.stderr)
    sys.exit(1)


def partitions(admin, topic, timeout):
    """Partition ids of topic, or None if the broker does not know it (without creating it)."""
    meta = admin.list_topics(timeout=timeout).topics.get(topic)
    if meta is None or meta.error is not None:
        return None
    return sorted(meta.partitions)


def create_topic(args, admin):
    futures = admin.create_topics([NewTopic(args.name, args.partitions, 1)], request_timeout=10)
    try:
        futures[args.name].result()
    except KafkaException as e:
        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            fail(f"cannot create topic {args.name}: {e}")
    deadline = time.monotonic() + 10
    while (found := partitions(admin, args.name, 10)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if found is None:
        fail(f"topic {args.name} was created but does not show in the metadata")
    if len(found) != args.partitions:
        fail(f"topic {args.name} exists with {len(found)} partitions, not {args.partitions}")


def tail(args, admin):
    deadline = None if args.timeout_secs is None else time.monotonic() + args.timeout_secs

    def left():
        return 1.0 if deadline is None else max(0.0, deadline - time.monotonic())

    # The topic may not exist yet (a test starts tailing before the producer runs).
    while (parts := partitions(admin, args.topic, 10)) is None:
        if left() == 0:
            fail(f"no topic {args.topic}")
        time.sleep(min(0.2, left()))

    consumer = Consumer({
        "bootstrap.servers": args.brokers,
        "group.id": "logship-kafka-py",  # required by the client; nothing is committed
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
    })
    start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
    consumer.assign([TopicPartition(args.topic, p, start) for p in parts])
    seen = 0
    out = sys.stdout.buffer
    try:
        while args.max is None or seen < args.max:
            if left() == 0:
                break
            msg = consumer.poll(min(0.5, left()))
            if msg is None:
                continue
            if msg.error():
                fail(f"consume {args.topic}: {msg.error()}")
            out.write((msg.value() or b"") + b"\n")
            out.flush()
            seen += 1
    finally:
        consumer.close()
    if args.max is not None and seen < args.max:
        fail(f"got {seen} of {args.max} records from {args.topic} in {args.timeout_secs} s")


def count(args, admin):
    parts = partitions(admin, args.topic, 10)
    if parts is None:
        fail(f"no topic {args.topic}")
    consumer = Consumer({"bootstrap.servers": args.brokers, "group.id": "logship-kafka-py"})
    try:
        total = 0
        for p in parts:
            low, high = consumer.get_watermark_offsets(TopicPartition(args.topic, p), timeout=10)
            total += high - low
    finally:
        consumer.close()
    print(total, flush=True)


def ping(args, admin):
    meta = admin.list_topics(timeout=args.timeout_secs)
    print(", ".join(f"{b.host}:{b.port}" for b in meta.brokers.values()), flush=True)


def main():
    default_brokers = os.environ.get("LOGSHIP_BROKERS", "127.0.0.1:9092")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--brokers", default=default_brokers, help="host:port[,host:port...]")
    # Accept --brokers after the subcommand too, without overriding the one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--brokers", default=argparse.SUPPRESS, help="host:port[,host:port...]")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("create-topic", parents=[common])
    p.add_argument("name")
    p.add_argument("--partitions", type=int, default=1)
    p.set_defaults(run=create_topic)

    p = sub.add_parser("tail", parents=[common])
    p.add_argument("topic")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--max", type=int)
    p.add_argument("--timeout-secs", type=float)
    p.set_defaults(run=tail)

    p = sub.add_parser("count", parents=[common])
    p.add_argument("topic")
    p.set_defaults(run=count)

    p = sub.add_parser("ping", parents=[common])
    p.add_argument("--timeout-secs", type=float, default=5)
    p.set_defaults(run=ping)

    args = parser.parse_args()
    admin = AdminClient({"bootstrap.servers": args.brokers})
    try:
        args.run(args, admin)
    except KafkaException as e:
        fail(f"{args.command}: {e}")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
