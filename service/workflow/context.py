"""What every workflow use case shares: storage, the clock, settings, the event log, metrics, the SLA policy,
the webhook dispatcher and the ports it calls (pipeline, tone check, facts). Built once by `Workflow`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

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
    # Set when a message is queued for its pipeline (channel webhooks acknowledge first): wakes the pipeline
    # workers of this process; workers of other processes find the row on their next poll.
    pipeline_work: threading.Event = field(default_factory=threading.Event)
