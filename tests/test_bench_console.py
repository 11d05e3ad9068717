"""`replydesk bench console` (issue #13's console figures) runs end to end at tiny sizes and writes the JSON
the note is made from. Correctness only: no timing is asserted here, the figures come from the full-size run.

Tiny sizes and one poll interval (the default-poll rerun is a second server start-up, left out to stay
under a minute); a real server, a real Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app

pytestmark = [pytest.mark.slow, pytest.mark.browser]

STATS = {"n", "p50", "p95", "max", "mean"}
PAGES = {
    "console_queue",
    "console_queue_rows",
    "console_conversation",
    "console_thread",
    "console_kpis",
    "api_queue",
    "api_conversation",
}


def test_a_tiny_run_writes_every_page_the_api_ratios_and_the_browser_samples(tmp_path: Path) -> None:
    out = tmp_path / "console.json"
    args = ["console", "--conversations", "5", "--thread", "4", "--requests", "2", "--browser", "1"]
    done = CliRunner().invoke(app, [*args, "--no-default-poll", "--out", str(out)])
    assert done.exit_code == 0, f"{done.output}\n{done.exception!r}"

    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["benchmark"] == "console"
    assert result["seed"]["conversations"] == 5
    # the long thread: customer and agent in turn, ending with the customer; receipts on the replies
    thread = result["seed"]["thread"]
    counts = {k: thread[k] for k in ("messages", "inbound", "outbound", "receipts")}
    assert counts == {"messages": 4, "inbound": 3, "outbound": 1, "receipts": 2}
    assert set(result["pages"]) == PAGES
    for page in result["pages"].values():
        assert set(page["wall_ms"]) == STATS and page["wall_ms"]["n"] == 2
        assert page["bytes"] > 0
    thread_page = f"/console/conversations/{thread['conversation_id']}?fragment=thread"
    assert result["pages"]["console_thread"]["path"] == thread_page
    assert set(result["console_over_api"]) == {
        "console_queue/api_queue",
        "console_queue_rows/api_queue",
        "console_conversation/api_conversation",
        "console_thread/api_conversation",
    }
    [browser] = result["browser"]
    assert browser["events_poll_s"] == 0.25 and browser["samples"] == 1
    assert browser["ingest_to_row_ms"]["n"] == 1
    assert browser["ingest_to_row_ms"]["p50"] >= browser["ingest_request_ms"]["p50"]
    assert "| ingest → queue row in Chromium, poll 0.25 s (1 samples)" in done.output
