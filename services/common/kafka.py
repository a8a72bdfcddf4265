"""Kafka helpers (kafka-python): producers, at-least-once consumers and topic set-up."""

from __future__ import annotations

import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from services.common.settings import TOPIC_CREDITS, TOPIC_DLQ, TOPIC_EVENTS, TOPIC_REPORTS, TOPIC_REQUESTED

TOPICS = (TOPIC_REQUESTED, TOPIC_REPORTS, TOPIC_EVENTS, TOPIC_DLQ, TOPIC_CREDITS)
# Headers on every record of every topic (docs/events.md): consumers route and filter on them
# without decoding the payload. The schema version is the protobuf package of the payload.
HEADER_REQUEST_ID = "x-request-id"
HEADER_EVENT_TYPE = "event-type"
HEADER_SCHEMA_VERSION = "schema-version"
SCHEMA_VERSION = "timbr.v1"


def headers(event_type: str, request_id: str = "", **extra: str) -> list[tuple[str, bytes]]:
    """The standard headers, plus any extra ones (the dead-letter topic adds ``error``)."""
    pairs = [(HEADER_REQUEST_ID, request_id), (HEADER_EVENT_TYPE, event_type),
             (HEADER_SCHEMA_VERSION, SCHEMA_VERSION), *extra.items()]
    return [(k, v.encode()) for k, v in pairs]


def job_event_type(event_type: int) -> str:
    """``job.completed`` for EVENT_TYPE_COMPLETED: the event-type header of a JobEvent."""
    from services.common.pb.timbr.v1 import events_pb2

    return "job." + events_pb2.EventType.Name(event_type).removeprefix("EVENT_TYPE_").lower()


def credit_event_type(event_type: int) -> str:
    """``credit.reserved`` for CREDIT_EVENT_TYPE_RESERVED."""
    from services.common.pb.timbr.v1 import events_pb2

    return "credit." + events_pb2.CreditEventType.Name(event_type).removeprefix("CREDIT_EVENT_TYPE_").lower()


def ensure_topics(bootstrap: str, topics=TOPICS, partitions: int = 3, timeout_s: float = 30.0) -> None:
    """Create the topics if missing; waits for the broker to come up."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="timbr-admin")
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics if t not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def make_producer(bootstrap: str) -> KafkaProducer:
    """acks=all and retries: a send acknowledged by ``.get()`` is durable on the broker.

    Not an idempotent producer: every consumer here applies events idempotently (at-least-once
    by design), so a retried send that lands twice changes nothing, and an idempotent
    kafka-python producer fails fatally when the broker loses its producer ids (the development
    broker after a restart answers InitProducerId with an unknown error, for good).
    """
    return KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", retries=5, linger_ms=5, enable_idempotence=False,
        key_serializer=lambda k: k.encode() if isinstance(k, str) else k,
    )


def make_consumer(bootstrap: str, group: str, *topics: str, client_id: str = "timbr",
                  max_poll_interval_ms: int = 60_000) -> KafkaConsumer:
    """Auto-commit off: callers commit after the handler succeeds (at-least-once).

    ``max_poll_interval_ms`` is also how long a rebalance waits for a silent member, so
    callers keep polling while they work (see the inference worker) and it stays short.
    """
    return KafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        max_poll_records=1,
        max_poll_interval_ms=max_poll_interval_ms,
    )


def lost_commits(consumer: KafkaConsumer, call_ms: int = 5000) -> list[int]:
    """Call while idle: the partitions read past offset 0 whose committed offset the group no
    longer knows. Callers commit every record before the next poll, so while idle a position
    past 0 always has a commit unless the broker lost it (a broker that restarted empty, as the
    development memory broker does). The position alone does not tell: new records can bring
    the end back up to the old position and be skipped.

    Seeking back is not enough: a consumer that lived through the restart keeps what the old
    broker told it and, at position 0, fetches nothing more (measured on the development broker:
    never within 40 s, 3 of 3), where a new consumer reads the new records within a few seconds.
    So callers close the consumer and build a new one; with no commits in the group it reads
    from the beginning (``auto_offset_reset``), and callers handle a record twice safely (events
    apply idempotently, workers skip ended jobs)."""
    return [tp.partition for tp in list(consumer.assignment())
            if consumer.position(tp, timeout_ms=call_ms) and consumer.committed(tp, timeout_ms=call_ms) is None]
