"""Prometheus metrics (prometheus-client): what an operator watches.

Counters and histograms are module-level, fed where things happen (the API
endpoint, the per-call observer the core calls, the watcher, logins); gauges
about live state (open accounts, index sizes, push listeners and
subscriptions, the outbox) are read from the app at scrape time by a collector.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

METHOD_CALLS = Counter(
    "maildir_jmap_method_calls",
    "JMAP method calls by method and outcome (ok or the error type).",
    ["method", "outcome"],
    registry=REGISTRY,
)
API_SECONDS = Histogram(
    "maildir_jmap_api_request_seconds",
    "Time to answer one API request (all its method calls).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "maildir_jmap_reconcile_seconds",
    "Time a reconcile with the Maildir held the account (scope: full or targeted).",
    ["scope"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
WATCHER_EVENTS = Counter(
    "maildir_jmap_watcher_events",
    "File system events the watcher received from inotify.",
    registry=REGISTRY,
)
LOGINS = Counter(
    "maildir_jmap_logins",
    "Password logins by outcome (ok, failed, throttled, unavailable).",
    ["outcome"],
    registry=REGISTRY,
)


def observe_call(method: str, outcome: str) -> None:
    METHOD_CALLS.labels(method, outcome).inc()


class StateCollector(Collector):
    """Gauges computed from the running app when Prometheus scrapes."""

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Any]:
        for name, value in sorted(self.read().items()):
            gauge = GaugeMetricFamily(f"maildir_jmap_{name}", name.replace("_", " ") + ".")
            gauge.add_metric([], value)
            yield gauge


def exposition(state_collector: StateCollector) -> bytes:
    """The text format: the module's metrics and the app's gauges."""
    registry = CollectorRegistry()
    registry.register(state_collector)
    return generate_latest(REGISTRY) + generate_latest(registry)
