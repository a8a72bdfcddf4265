"""Work-queue lag per worker group and partition, read from a real broker (tansu)."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka.structs import OffsetAndMetadata

from services.common.kafka import ensure_topics, make_producer
from services.common.settings import TOPIC_REQUESTED
from services.jobs.queue_lag import QUEUE_LAG, QueueLagMonitor, queue_lag


@pytest.fixture
def broker():
    from tools.devbroker import free_port, start_broker

    port = free_port()
    proc = start_broker(port)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def test_lag_per_group_and_partition(broker):
    ensure_topics(broker)  # 3 partitions
    producer = make_producer(broker)
    sent = {0: 4, 1: 2, 2: 0}
    for partition, n in sent.items():
        for i in range(n):
            producer.send(TOPIC_REQUESTED, key=f"j{partition}{i}", value=b"x", partition=partition).get(timeout=10)
    producer.close()
    admin = KafkaAdminClient(bootstrap_servers=broker, client_id="test")
    try:
        assert queue_lag(admin) == {}  # no worker group yet
        # One worker group committed 3 of partition 0; another exists with nothing committed.
        admin.alter_group_offsets("timbr-inference-enhance", {TopicPartition(TOPIC_REQUESTED, 0):
                                                               OffsetAndMetadata(3, "", -1)})
        admin.alter_group_offsets("timbr-inference-diarize", {TopicPartition(TOPIC_REQUESTED, 2):
                                                               OffsetAndMetadata(0, "", -1)})
        admin.alter_group_offsets("someone-else", {TopicPartition(TOPIC_REQUESTED, 0): OffsetAndMetadata(0, "", -1)})
        lag = queue_lag(admin)
    finally:
        admin.close()
    assert lag == {("timbr-inference-diarize", 0): 4, ("timbr-inference-diarize", 1): 2,
                   ("timbr-inference-diarize", 2): 0, ("timbr-inference-enhance", 0): 1,
                   ("timbr-inference-enhance", 1): 2, ("timbr-inference-enhance", 2): 0}

    monitor = QueueLagMonitor(broker)
    try:
        monitor.step()
    finally:
        monitor.close()
    assert QUEUE_LAG.labels(TOPIC_REQUESTED, "timbr-inference-diarize", "0")._value.get() == 4
    assert QUEUE_LAG.labels(TOPIC_REQUESTED, "timbr-inference-enhance", "0")._value.get() == 1
