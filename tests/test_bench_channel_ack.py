"""`replydesk bench channel-ack` (issue #14's acknowledgement figures): its webhook bodies are ones the
service's own WhatsApp parser and signature check accept, and a tiny run against two real servers writes
the JSON the note is made from. Correctness only: no timing is asserted here, the figures come from the
full-size run."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.channel_ack import APP_SECRET, Payloads
from bench.cli import app
from service.errors import Unauthorized
from service.integrations.adapters.meta import parse_whatsapp
from service.signing import verify_meta_signature

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
STATS = {"n", "p50", "p95", "max", "mean"}


def test_a_batch_is_a_signed_whatsapp_webhook_of_distinct_senders_and_wamids_that_the_service_parses() -> (
    None
):
    hook = Payloads(APP_SECRET, seed=3).webhook(40)

    verify_meta_signature(APP_SECRET, hook.signature, hook.body)
    with pytest.raises(Unauthorized):
        verify_meta_signature("another-secret", hook.signature, hook.body)
    parsed = parse_whatsapp(json.loads(hook.body), NOW)
    assert parsed.skipped == []
    assert [m.channel_message_id for m in parsed.messages] == hook.wamids
    assert len(set(hook.wamids)) == 40
    # one conversation per message: every sender is a different WhatsApp user with a profile name
    assert len({m.conversation_external_id for m in parsed.messages}) == 40
    assert all(m.customer.name and m.text for m in parsed.messages)
    # the senders' numbers are real mobile numbers of several countries (the texts' languages)
    assert all(m.customer.country for m in parsed.messages)
    assert len({m.customer.country for m in parsed.messages}) >= 4


def test_the_next_webhook_never_repeats_a_wamid_or_a_text() -> None:
    payloads = Payloads(APP_SECRET)
    first, second = payloads.webhook(5), payloads.webhook(5)
    assert not set(first.wamids) & set(second.wamids)
    texts = [m.text for hook in (first, second) for m in parse_whatsapp(json.loads(hook.body), NOW).messages]
    assert len(set(texts)) == 10


@pytest.mark.slow
def test_a_tiny_run_acknowledges_stores_and_drains_every_message_in_both_modes(tmp_path: Path) -> None:
    out = tmp_path / "channel-ack.json"
    args = ["channel-ack", "--singles", "1", "--batches", "1", "--batch-size", "3", "--out", str(out)]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, f"{done.output}\n{done.exception!r}"

    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["benchmark"] == "channel-ack"
    assert set(result["modes"]) == {"background", "inline"}
    for mode, r in result["modes"].items():
        assert r["problems"] == [], mode
        assert r["statuses"] == {"200": 3}, mode  # the warm-up POST, 1 single, 1 batch
        # every message sent (2 warm-up + 1 + 3) is stored and has had its pipeline run
        assert r["durability"] == {"sent": 6, "stored": 6, "lost": 0, "pipeline_status": {"done": 6}}
        assert set(r["by_messages_per_post"]) == {"1", "3"}
        for n, e in r["by_messages_per_post"].items():
            assert (e["posts"], e["messages"]) == (1, int(n))
            assert set(e["ack_ms"]) == STATS and e["ack_ms"]["n"] == 1
            assert e["pipeline_drain_ms"]["n"] == 1 and e["pipeline_drain_ms"]["p50"] > 0
            assert e["server_cpu_ms_per_message"] > 0
    # inline, the pipelines are done when the 200 comes
    for e in result["modes"]["inline"]["by_messages_per_post"].values():
        assert e["pipeline_drain_ms"]["p50"] == e["ack_ms"]["p50"]
    assert set(result["inline_over_background"]) == {"1", "3"}
    assert result["code"]["commit"]
    assert "| background | 3 |" in done.output and "| inline | 1 |" in done.output
