"""What every workflow use case shares: storage, the clock, settings, the event log, metrics, the SLA policy,
the webhook dispatcher and the ports it calls (pipeline, tone check, facts). Built once by `Workflow`."""

from __future__ import annotations

from dataclasses import dataclass

from service.clock import Clock
from service.db import Database
from service.settings import Settings
from service.workflow.events import EventLog
from service.workflow.metrics import WorkflowMetrics
from service.workflow.ports import FactsLookup, MessagePipelinePort, ToneCheck
from service.workflow.sla import SlaPolicy
from service.workflow.webhooks import WebhookDispatcher

MAX_RETRIES = 3  # optimistic retries of a write that lost a race (a unique key, a conditional UPDATE)


@dataclass
class WorkflowContext:
    db: Database
    clock: Clock
    settings: Settings
    pipeline: MessagePipelinePort
    events: EventLog
    metrics: WorkflowMetrics
    sla: SlaPolicy
    dispatcher: WebhookDispatcher
    tone_check: ToneCheck | None = None
    facts: FactsLookup | None = None
