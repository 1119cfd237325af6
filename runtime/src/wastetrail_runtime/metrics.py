"""Prometheus metrics, one registry per service app (so tests can build several apps)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)


class Metrics:
    """The runtime's metrics for one service."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        # process_* (CPU, resident memory, open files), python_gc_*, python_info
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        labels = {"service": service}
        self.events_appended = Counter(
            "wastetrail_events_appended_total", "Events appended to the event store",
            ["service"], registry=self.registry).labels(**labels)
        self.events_published = Counter(
            "wastetrail_events_published_total", "Outbox rows published to Kafka",
            ["service"], registry=self.registry).labels(**labels)
        self.events_consumed = Counter(
            "wastetrail_events_consumed_total", "Events applied by consumers",
            ["service", "consumer"], registry=self.registry)
        self.duplicates = Counter(
            "wastetrail_events_duplicate_total", "Redelivered events skipped",
            ["service", "consumer"], registry=self.registry)
        self.dead_letters = Counter(
            "wastetrail_dead_letters_total", "Events sent to a dead-letter topic",
            ["service", "consumer"], registry=self.registry)
        self.consumer_lag = Gauge(
            "wastetrail_consumer_lag", "Records behind the end of the partition",
            ["service", "consumer", "topic", "partition"], registry=self.registry)
        self.outbox_pending = Gauge(
            "wastetrail_outbox_pending", "Outbox rows not yet published",
            ["service"], registry=self.registry).labels(**labels)
        self.vnpay_ipn = Counter(
            "wastetrail_vnpay_ipn_total", "VNPay IPN calls answered, by RspCode (00: recorded)",
            ["service", "rsp_code"], registry=self.registry)
        self.http_latency = Histogram(
            "wastetrail_http_request_seconds", "HTTP request latency",
            ["service", "method", "route", "status"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.service = service
