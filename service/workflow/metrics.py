"""Prometheus metrics of the workflow, on a registry of its own (one per app, so tests can build many
apps)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class _QueueCollector(Collector):
    def __init__(self, snapshot: Callable[[], dict[str, dict[str, int]]]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        data = self.snapshot()
        queue = GaugeMetricFamily(
            "replydesk_queue_conversations", "Open conversations per SLA state", labels=["state"]
        )
        for state, n in sorted(data.get("queue", {}).items()):
            queue.add_metric([state], n)
        yield queue
        outbox = GaugeMetricFamily(
            "replydesk_webhook_outbox", "Webhook deliveries per status", labels=["status"]
        )
        for status, n in sorted(data.get("outbox", {}).items()):
            outbox.add_metric([status], n)
        yield outbox


class WorkflowMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter(
            "replydesk_messages_ingested", "Inbound messages stored", ["channel"], registry=r
        )
        self.duplicates = Counter(
            "replydesk_messages_duplicate", "Re-sent messages answered from storage", registry=r
        )
        self.pipeline_seconds = Histogram(
            "replydesk_pipeline_seconds",
            "Triage+drafts pipeline time per message",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=r,
        )
        self.pipeline_failures = Counter(
            "replydesk_pipeline_failures", "Pipeline runs that failed", ["code"], registry=r
        )
        self.pipeline_recoveries = Counter(
            "replydesk_pipeline_recoveries",
            "Stranded pipelines the worker re-ran (`rerun`) or marked failed (`gave_up`)",
            ["outcome"],
            registry=r,
        )
        self.suggestions = Counter("replydesk_suggestions_created", "Suggestions stored", registry=r)
        self.decisions = Counter(
            "replydesk_suggestion_decisions", "Agent decisions on suggestions", ["decision"], registry=r
        )
        self.outbound = Counter(
            "replydesk_outbound_messages", "Outbound messages queued", ["kind"], registry=r
        )
        self.receipts = Counter(
            "replydesk_status_receipts", "Status receipts", ["status", "applied"], registry=r
        )
        self.events = Counter("replydesk_events", "Events emitted", ["type"], registry=r)
        self.webhooks = Counter(
            "replydesk_webhook_attempts", "Webhook delivery attempts", ["outcome"], registry=r
        )
        self.resolved = Counter("replydesk_conversations_resolved", "Conversations resolved", registry=r)
        self.channel_skipped = Counter(
            "replydesk_channel_events_skipped",
            "Channel webhook events ReplyDesk does not act on (standby, bot messages, unknown types...)",
            ["type"],
            registry=r,
        )
        self.pending_receipts = Counter(
            "replydesk_pending_receipts",
            "Statuses for a message id not known yet: `kept`, later `applied`/`refused`, or `expired`",
            ["outcome"],
            registry=r,
        )
        self.survey_answers = Counter(
            "replydesk_survey_answers", "Survey replies", ["kind", "parsed"], registry=r
        )

    def watch(self, snapshot: Callable[[], dict[str, dict[str, int]]]) -> None:
        self.registry.register(_QueueCollector(snapshot))
