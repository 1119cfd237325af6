"""Consumer lag, measured from outside the consumers: for every consumer group of a service,
the records between the group's committed offset and the end of each partition.

Measured by the broker's own bookkeeping (committed offsets and log end offsets), so it
is right whichever replica of a service holds a partition, and it keeps growing while
every replica is down or stuck.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from wastetrail_runtime.consumer import Consumer
from wastetrail_runtime.logging import get_logger
from wastetrail_runtime.metrics import Metrics
from wastetrail_runtime.settings import ServiceSettings

log = get_logger(__name__)


class LagMonitor:
    """Sets ``wastetrail_consumer_lag`` for each (consumer, topic, partition) periodically.

    ``groups`` maps a consumer's name to its group id and the topics it reads.
    """

    def __init__(self, bootstrap: str, groups: Mapping[str, tuple[str, Sequence[str]]],
                 metrics: Metrics, every_seconds: float = 15.0) -> None:
        self.bootstrap = bootstrap
        self.groups = dict(groups)
        self.metrics = metrics
        self.every_seconds = every_seconds

    async def measure(self) -> dict[tuple[str, str, int], int]:
        """Measure once; sets the gauges and returns {(consumer, topic, partition): lag}."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await admin.start()
        await reader.start()
        lags: dict[tuple[str, str, int], int] = {}
        try:
            for consumer, (group_id, topics) in self.groups.items():
                described = await admin.describe_topics(list(topics))
                partitions = [TopicPartition(t["topic"], p["partition"]) for t in described
                              if not t.get("error_code") for p in t["partitions"]]
                if not partitions:
                    continue
                committed = await admin.list_consumer_group_offsets(group_id)
                ends = await reader.end_offsets(partitions)
                starts = await reader.beginning_offsets(partitions)
                for tp in partitions:
                    done = committed.get(tp)
                    position = done.offset if done is not None and done.offset >= 0 \
                        else starts[tp]
                    lag = max(ends[tp] - position, 0)
                    lags[(consumer, tp.topic, tp.partition)] = lag
                    self.metrics.consumer_lag.labels(self.metrics.service, consumer, tp.topic,
                                                     str(tp.partition)).set(lag)
        finally:
            await reader.stop()
            await admin.close()
        return lags

    async def run(self) -> None:
        """Measure every ``every_seconds`` until cancelled; a failed round is logged and the
        gauges keep their last values."""
        while True:
            try:
                await self.measure()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker is away: try again next round
                log.warning("consumer lag not measured", error=str(exc))
            await asyncio.sleep(self.every_seconds)



def consumer_group(name: str, prefix: str = "") -> str:
    """A consumer's group id, as the service subscribes it (the prefix keeps the groups of
    separate deployments and test runs apart)."""
    return f"{prefix}{name}"


def lag_monitor(settings: ServiceSettings, consumers: Iterable[Consumer],
                metrics: Metrics) -> LagMonitor:
    """The lag monitor of a service's consumers."""
    prefix = settings.topic_prefix
    groups = {c.name: (consumer_group(c.name, prefix), c.topics(prefix)) for c in consumers}
    return LagMonitor(settings.kafka_bootstrap_servers, groups, metrics,
                      every_seconds=settings.lag_poll_seconds)
