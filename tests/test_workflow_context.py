"""Context providers add facts to drafting: the HTTP order-status provider, tested against a local server."""

from __future__ import annotations

import socket
from collections.abc import Sequence

import pytest

from service.integrations.context import ContextProvider, HttpOrderStatusProvider
from service.pipeline.models import TriagePipelineRead
from service.triage.models import TriageRequest
from service.workflow.models import ContextFact
from tests.workflow_harness import StubServer, harness, real_pipeline, use_pipeline


@pytest.fixture
def orders():
    stub = StubServer(
        {
            ("GET", "/orders/A12345"): (200, {"status": "shipped", "eta": "2026-01-07", "carrier": "DHL"}),
            ("GET", "/orders/777777"): (200, {"summary": "cancelled on Jan 2, refund issued"}),
            ("GET", "/orders/500500"): (500, {"error": "boom"}),
            ("GET", "/orders/808080"): (200, "not json"),
        }
    ).start()
    yield stub
    stub.stop()


def test_order_numbers_in_the_message_become_facts(orders):
    provider = HttpOrderStatusProvider(orders.base_url + "/orders/{order_number}", token="s3cret")
    assert isinstance(provider, ContextProvider)
    facts = provider.provide("Where are my orders #A12345 and order 999999?", "en-US")
    assert [(f.key, f.data["found"]) for f in facts] == [("A12345", True), ("999999", False)]
    assert facts[0].text == "Order A12345: status shipped; eta 2026-01-07; carrier DHL"
    assert facts[1].text == "Order 999999: no order with this number was found."
    assert orders.requests[0][2]["Authorization"] == "Bearer s3cret"
    summary = provider.provide("what happened to order 777777", None)
    assert summary[0].text == "Order 777777: cancelled on Jan 2, refund issued"
    assert provider.provide("hello there", None) == []


def test_a_failing_provider_gives_no_facts(orders):
    provider = HttpOrderStatusProvider(orders.base_url + "/orders/{order_number}")
    assert provider.provide("order 500500 please", None) == []
    assert provider.provide("order 808080 please", None) == []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    offline = HttpOrderStatusProvider(f"http://127.0.0.1:{closed_port}/o/{{order_number}}", timeout_s=0.5)
    assert offline.provide("order 123456 please", None) == []


def test_the_url_template_needs_the_order_number_placeholder():
    with pytest.raises(ValueError):
        HttpOrderStatusProvider("http://127.0.0.1/orders")


def test_ingest_returns_the_facts_and_hands_them_to_a_pipeline_that_takes_them(db_url, tmp_path, app, orders):
    real = real_pipeline(app.state.container)
    seen = []

    class PipelineWithFacts:
        def run(self, request: TriageRequest, *, facts: Sequence[ContextFact] = ()) -> TriagePipelineRead:
            seen.append(list(facts))
            return real.run(request)

    with harness(
        db_url,
        tmp_path,
        app.state.container,
        context_order_status_url=orders.base_url + "/orders/{order_number}",
    ) as h:
        use_pipeline(h.app, PipelineWithFacts())
        r = h.ingest("Hi, where is my order #A12345?")
        assert [f["text"] for f in r["facts"]] == [
            "Order A12345: status shipped; eta 2026-01-07; carrier DHL"
        ]
        assert seen and seen[0][0].key == "A12345"
        assert r["suggestions"]
        again = h.ingest("Hi, where is my order #A12345?", channel_message_id=None)
        assert again["facts"][0]["source"] == "order_status"
