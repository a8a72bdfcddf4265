"""Consumer lag of the work queue (``audio.jobs.requested``) per worker group and partition.

The workers' groups (``timbr-inference-<job types>``) are found on the broker; for each of their
partitions the lag is the end offset minus the group's committed offset (the partition's first
offset when the group has committed nothing there yet). Exported as
``timbr_queue_lag_messages{topic,group,partition}`` by the jobs service, so dashboards and
alerts see the backlog however many workers run, none included. KEDA's Kafka scaler reads the
same numbers from the broker itself (deploy/helm: ``workers.keda``).
"""

from __future__ import annotations

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec
from prometheus_client import Gauge

from services.common.logging import get_logger
from services.common.settings import TOPIC_REQUESTED
from services.jobs.background import Loop

QUEUE_LAG = Gauge("timbr_queue_lag_messages", "Messages of the work queue a worker group has not committed yet",
                  ["topic", "group", "partition"])
WORKER_GROUP_PREFIX = "timbr-inference-"
log = get_logger(__name__)


def queue_lag(admin: KafkaAdminClient, topic: str = TOPIC_REQUESTED,
              prefix: str = WORKER_GROUP_PREFIX) -> dict[tuple[str, int], int]:
    """(group, partition) -> messages not yet committed, for every worker group on the broker."""
    groups = sorted(g["group_id"] for g in admin.list_groups() if g["group_id"].startswith(prefix))
    (info,) = admin.describe_topics([topic])
    partitions = [TopicPartition(topic, p.get("partition_index", p.get("partition"))) for p in info["partitions"]]
    end = admin.list_partition_offsets(dict.fromkeys(partitions, OffsetSpec.LATEST))
    start = admin.list_partition_offsets(dict.fromkeys(partitions, OffsetSpec.EARLIEST))
    committed = admin.list_group_offsets(dict.fromkeys(groups)) if groups else {}
    lag = {}
    for group in groups:
        offsets = committed.get(group, {})
        for tp in partitions:
            done = offsets[tp].offset if tp in offsets and offsets[tp].offset >= 0 else start[tp].offset
            lag[(group, tp.partition)] = max(0, end[tp].offset - done)
    return lag


class QueueLagMonitor(Loop):
    def __init__(self, bootstrap: str, interval_s: float = 15.0) -> None:
        super().__init__("queue-lag")
        self._kafka = bootstrap
        self._admin = None
        self.interval_s = interval_s

    def step(self) -> bool:
        if self._admin is None:
            self._admin = KafkaAdminClient(bootstrap_servers=self._kafka, client_id="timbr-jobs-lag")
        try:
            lag = queue_lag(self._admin)
        except Exception:
            self.close()  # rebuilt on the next pass (broker restarted)
            raise
        QUEUE_LAG.clear()  # groups that went away stop being reported
        for (group, partition), value in lag.items():
            QUEUE_LAG.labels(TOPIC_REQUESTED, group, str(partition)).set(value)
        return False

    def close(self) -> None:
        if self._admin is not None:
            admin, self._admin = self._admin, None
            try:
                admin.close()
            except Exception as exc:  # noqa: BLE001 - it is being thrown away
                log.debug("queue_lag.close_failed", error=str(exc))
