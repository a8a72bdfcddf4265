"""Follow Timbr's Kafka topics as an analytics consumer would (docs/events.md).

kafka-python, one consumer group, starting at the earliest offset the first time the group
is seen and at its committed offsets afterwards. Each record is printed as one JSON line:
topic, partition, offset, key, headers and the decoded protobuf message.

    python examples/consume_events.py --bootstrap 127.0.0.1:9092 --group analytics

The payload classes come from protos/timbr/v1/events.proto; outside this repository generate
them with `python -m grpc_tools.protoc -Iprotos --python_out=. protos/timbr/v1/events.proto`.
"""

from __future__ import annotations

import argparse
import json
import sys

from google.protobuf.json_format import MessageToDict
from kafka import KafkaConsumer

from services.common.pb.timbr.v1 import events_pb2

# topic -> message type of its payload (the `schema-version` header names the package, timbr.v1)
PAYLOADS = {
    "audio.jobs.requested": events_pb2.JobRequested,
    "audio.jobs.events": events_pb2.JobEvent,
    "audio.jobs.requested.dlq": events_pb2.JobRequested,
    "billing.credits.events": events_pb2.CreditEvent,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--group", default="timbr-analytics")
    parser.add_argument("--topics", nargs="+", default=list(PAYLOADS))
    parser.add_argument("--idle-exit-s", type=float, default=0,
                        help="exit after this many seconds without a record (0: run forever)")
    args = parser.parse_args(argv)

    consumer = KafkaConsumer(
        *args.topics,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,                # offsets are kept per group: a restart resumes
        auto_offset_reset="earliest",       # a new group starts at the beginning of each partition
        enable_auto_commit=False,           # commit after the record is handled (at-least-once)
        # A short rebalance timeout: a group joins in seconds (tansu, the development broker,
        # holds the first join for ~20 s with kafka-python's default of 300 s).
        session_timeout_ms=6000, heartbeat_interval_ms=1000, max_poll_interval_ms=10000,
        consumer_timeout_ms=int(args.idle_exit_s * 1000) if args.idle_exit_s else float("inf"),
    )
    try:
        for record in consumer:
            headers = {k: v.decode() for k, v in record.headers or []}
            message = PAYLOADS[record.topic].FromString(record.value)
            print(json.dumps({
                "topic": record.topic, "partition": record.partition, "offset": record.offset,
                "key": record.key.decode() if record.key else None, "headers": headers,
                "message": MessageToDict(message, preserving_proto_field_name=True),
            }), flush=True)
            consumer.commit()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
