"""The LLM seam against a scripted OpenAI-compatible server on 127.0.0.1 (real HTTP, real `openai` client).

The scripted server answers with exactly what a test needs (a bad first answer, a 500, silence) — behaviour
the real recording model cannot be made to produce on demand. Recorded answers of a real model are replayed in
`test_drafting_llm.py`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest

from bench.stub_llm import StubHandler, StubServer, chat_completion
from service.drafting.drafter import Drafter
from service.drafting.llm import PROMPT_HEADER, ChatPrompt, LLMCallLog, LLMClient
from service.drafting.models import LLMReply
from service.errors import LLMError
from service.settings import Settings
from service.tone.checker import ToneChecker
from tests.test_drafting_templates import TRACKING, make_triage

GOOD = {
    "language": "en",
    "drafts": ["Thanks for your message! You can track your order in the app under Orders."],
    "cited_article_ids": ["track-your-order"],
    "needs_human": False,
    "missing_info": [],
}


def completion(content: str) -> dict:
    return chat_completion(
        content, completion_id="chatcmpl-1", model="scripted", prompt_tokens=120, completion_tokens=30
    )


class ScriptedLLM:
    """Answers POST /v1/chat/completions from a script: a list of (status, body-or-None, delay_s)."""

    def __init__(self) -> None:
        self.script: list[tuple[int, str | None, float]] = []
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        owner = self

        class Handler(StubHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                owner.requests.append(json.loads(self.read_body()))
                owner.headers.append({k.lower(): v for k, v in self.headers.items()})
                status, body, delay = owner.script.pop(0) if owner.script else (500, "{}", 0.0)
                time.sleep(delay)
                self.send_json(status, (body or "").encode())  # a client that timed out and hung up: ignored

        self.server = StubServer(Handler)
        self.url = self.server.base_url
        self.thread = self.server.thread

    def answer(self, content: str, *, status: int = 200, delay: float = 0.0) -> None:
        self.script.append((status, json.dumps(completion(content)) if status == 200 else content, delay))


@pytest.fixture()
def llm_server() -> Iterator[ScriptedLLM]:
    server = ScriptedLLM()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def client_for(server: ScriptedLLM, **kw) -> LLMClient:
    return LLMClient(base_url=server.url, model="scripted", api_key="sk-test", **kw)


PROMPT = ChatPrompt(name="draft", version="v1", messages=[{"role": "user", "content": "hi"}])


def test_a_valid_answer_is_parsed_into_the_schema_with_one_call(llm_server):
    llm_server.answer(json.dumps(GOOD))
    reply = client_for(llm_server).structured(PROMPT, LLMReply)
    assert reply.drafts == GOOD["drafts"]
    assert len(llm_server.requests) == 1
    body = llm_server.requests[0]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["language", "drafts"]
    assert llm_server.headers[0][PROMPT_HEADER.lower()] == "draft.v1"


def test_an_unparsable_answer_is_re_asked_once_with_the_error_and_the_second_answer_is_used(llm_server):
    llm_server.answer("Sure! Here are some drafts: Hello there")
    llm_server.answer("```json\n" + json.dumps(GOOD) + "\n```")  # fenced JSON is accepted
    reply = client_for(llm_server).structured(PROMPT, LLMReply)
    assert reply.cited_article_ids == ["track-your-order"]
    assert len(llm_server.requests) == 2
    reask = llm_server.requests[1]["messages"]
    assert reask[-2] == {"role": "assistant", "content": "Sure! Here are some drafts: Hello there"}
    assert "could not be used" in reask[-1]["content"] and "invalid JSON" in reask[-1]["content"]


def test_an_answer_failing_schema_validation_is_re_asked_with_the_field_errors(llm_server):
    llm_server.answer(json.dumps({**GOOD, "drafts": []}))
    llm_server.answer(json.dumps(GOOD))
    client_for(llm_server).structured(PROMPT, LLMReply)
    assert "drafts" in llm_server.requests[1]["messages"][-1]["content"]


def test_two_bad_answers_raise_llm_error_after_exactly_one_re_ask(llm_server):
    llm_server.answer("not json")
    llm_server.answer('{"drafts": "still wrong"}')
    with pytest.raises(LLMError) as err:
        client_for(llm_server).structured(PROMPT, LLMReply)
    assert err.value.details["reason"] == "invalid_output"
    assert len(llm_server.requests) == 2


def test_a_timeout_fails_at_once_without_any_retry(llm_server):
    llm_server.answer(json.dumps(GOOD), delay=1.5)
    with pytest.raises(LLMError) as err:
        client_for(llm_server, timeout_s=0.3).structured(PROMPT, LLMReply)
    assert err.value.details["reason"] == "timeout"
    assert len(llm_server.requests) == 1


def test_a_server_error_fails_at_once_without_any_retry(llm_server):
    llm_server.answer('{"error": {"message": "model overloaded"}}', status=503)
    with pytest.raises(LLMError) as err:
        client_for(llm_server).structured(PROMPT, LLMReply)
    assert err.value.details["reason"] == "http_error"
    assert len(llm_server.requests) == 1


def test_an_unreachable_server_is_a_transport_error():
    client = LLMClient(base_url="http://127.0.0.1:9/v1", model="m", timeout_s=2)
    with pytest.raises(LLMError) as err:
        client.structured(PROMPT, LLMReply)
    assert err.value.details["reason"] == "transport_error"


def test_every_call_is_logged_as_json_fields_and_handed_to_the_sinks(llm_server, caplog):
    llm_server.answer("garbage")
    llm_server.answer(json.dumps(GOOD))
    records: list[LLMCallLog] = []
    client = client_for(llm_server, sinks=[records.append])
    with caplog.at_level(logging.INFO, logger="replydesk.llm"):
        client.structured(PROMPT, LLMReply)
    assert [r.outcome for r in records] == ["parse_error", "ok"]
    assert [r.attempt for r in records] == [1, 2]
    assert records[0].exchange_id == records[1].exchange_id
    assert all(
        r.model == "scripted" and r.prompt_name == "draft" and r.prompt_version == "v1" for r in records
    )
    assert records[1].prompt_tokens == 120 and records[1].completion_tokens == 30
    assert all(r.latency_ms >= 0 for r in records)
    logged = [r for r in caplog.records if r.name == "replydesk.llm"]
    assert [(r.outcome, r.model, r.prompt_version) for r in logged] == [
        ("parse_error", "scripted", "v1"),
        ("ok", "scripted", "v1"),
    ]
    assert client.stats()["calls"] == 2 and client.stats()["last_outcome"] == "ok"


@pytest.fixture(scope="module")
def tone() -> ToneChecker:
    return ToneChecker.from_path(None, default_locale="en")


def drafter_for(server: ScriptedLLM, tone: ToneChecker, **kw) -> Drafter:
    settings = Settings(llm_base_url=server.url, llm_model="scripted", **kw)
    return Drafter.from_settings(settings, tone=tone)


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ([(200, "no json here"), (200, "nor here")], "fallback:invalid_output"),
        ([(503, "{}")], "fallback:http_error"),
    ],
)
def test_the_drafter_falls_back_to_templates_when_the_llm_fails(llm_server, tone, script, reason):
    for status, content in script:
        llm_server.answer(content, status=status)
    result = drafter_for(llm_server, tone).draft(
        "where is my order NW-48213?", make_triage("en", "order_status"), [TRACKING]
    )
    assert result.llm_outcome == reason
    assert result.drafts and all(d.generator == "template" for d in result.drafts)
    assert result.prompt_version == "templates.en.v1"


def test_the_drafter_falls_back_on_timeout_after_a_single_attempt(llm_server, tone):
    llm_server.answer(json.dumps(GOOD), delay=1.5)
    drafter = drafter_for(llm_server, tone, llm_timeout_s=0.3)
    result = drafter.draft("where is my order NW-48213?", make_triage("en", "order_status"), [TRACKING])
    assert result.llm_outcome == "fallback:timeout"
    assert all(d.generator == "template" for d in result.drafts)
    assert len(llm_server.requests) == 1
    assert drafter.health()["status"] == "degraded"


def test_llm_drafts_that_all_fail_validation_fall_back_to_templates(llm_server, tone):
    promise = {
        **GOOD,
        "drafts": ["We will give you a 100% refund and a voucher, visit https://evil.example now!"],
    }
    llm_server.answer(json.dumps(promise))
    result = drafter_for(llm_server, tone).draft(
        "where is my order NW-48213?", make_triage("en", "order_status"), [TRACKING]
    )
    assert result.llm_outcome == "fallback:all_drafts_rejected"
    assert all(d.generator == "template" for d in result.drafts)


def test_a_valid_llm_draft_ships_with_generator_llm_and_the_prompt_versions(llm_server, tone):
    llm_server.answer(json.dumps(GOOD))
    result = drafter_for(llm_server, tone).draft(
        "where is my order NW-48213?", make_triage("en", "order_status"), [TRACKING]
    )
    assert result.llm_outcome == "ok"
    assert [d.generator for d in result.drafts] == ["llm"]
    assert result.drafts[0].cited_article_ids == ["track-your-order"]
    assert result.prompt_version == "system.v1+draft.v1"


def test_placeholders_in_llm_drafts_are_restored_to_the_customers_values(llm_server, tone):
    answer = {
        **GOOD,
        "drafts": ["Thanks! We are checking order [ORDER_1] and will write to [EMAIL_1] shortly."],
    }
    llm_server.answer(json.dumps(answer))
    text = "order NW-48213 hasn't arrived, email me at ana.diaz@example.com"
    result = drafter_for(llm_server, tone).draft(text, make_triage("en", "order_status"), [TRACKING])
    sent = json.dumps(llm_server.requests[0])
    assert "NW-48213" not in sent and "ana.diaz@example.com" not in sent
    assert "[ORDER_1]" in sent and "[EMAIL_1]" in sent
    assert (
        result.drafts[0].text
        == "Thanks! We are checking order NW-48213 and will write to ana.diaz@example.com "
        "shortly."
    )


def test_an_llm_draft_that_does_not_ask_for_missing_information_gets_the_question_added(llm_server, tone):
    answer = {**GOOD, "drafts": ["Thanks for your message, we are happy to help with your order."]}
    llm_server.answer(json.dumps(answer))
    result = drafter_for(llm_server, tone).draft(
        "where is my order", make_triage("en", "order_status"), [TRACKING]
    )
    assert result.missing_info == ["order_number"]
    assert "your order number" in result.drafts[0].text
    assert "missing_info_question_added" in result.drafts[0].repairs


def test_an_llm_draft_with_a_blocking_emoji_ships_only_with_the_tone_checkers_fix(llm_server, tone):
    upset = {
        **GOOD,
        "drafts": [
            "We are so sorry your order is late, a colleague is checking it right now 😂",
            "Sorry for the delay with your order, we are looking into it for you now.",
        ],
    }
    llm_server.answer(json.dumps(upset))
    text = "my order NW-48213 is two weeks late, this is ridiculous"
    triage = make_triage("en", "delivery_delay", sentiment="negative", urgency="high", text=text)
    result = drafter_for(llm_server, tone).draft(text, triage, [TRACKING], [], "en-US")
    assert [d.generator for d in result.drafts] == ["llm", "llm"]
    assert "😂" not in result.drafts[0].text
    assert "tone_suggestion_applied" in result.drafts[0].repairs
    assert all(f.severity != "block" for d in result.drafts for f in d.tone_findings)


def test_llm_escalation_to_a_human_is_honoured_but_never_the_reverse(llm_server, tone):
    llm_server.answer(json.dumps({**GOOD, "needs_human": True}))
    llm_server.answer(
        json.dumps(
            {"wants": "The customer wants to know where order NW-48213 is.", "known": [], "missing": []}
        )
    )
    result = drafter_for(llm_server, tone).draft(
        "where is my order NW-48213?", make_triage("en", "order_status"), [TRACKING]
    )
    assert result.needs_human is True
    assert result.handoff_summary.generator == "llm"
    assert result.prompt_version == "system.v1+draft.v1+handoff.v1"

    llm_server.answer(json.dumps({**GOOD, "needs_human": False}))
    llm_server.answer(json.dumps({"wants": "x"}))  # too short: the template summary is kept
    result = drafter_for(llm_server, tone).draft(
        "the lamp arrived broken", make_triage("en", "damaged_item"), []
    )
    assert result.needs_human is True
    assert result.handoff_summary.generator == "template"


def test_context_facts_reach_the_llm_prompt_with_known_values_masked(llm_server, tone):
    from service.workflow.models import ContextFact

    llm_server.answer(json.dumps(GOOD))
    fact = ContextFact(
        source="order_status", key="NW-48213", text="Order NW-48213: shipped 2 days ago, arriving Friday"
    )
    drafter_for(llm_server, tone).draft(
        "where is my order NW-48213?", make_triage("en", "order_status"), [TRACKING], facts=[fact]
    )
    sent = json.dumps(llm_server.requests[0])
    assert "<facts" in sent and "arriving Friday" in sent
    assert "NW-48213" not in sent  # the order number stays behind its placeholder, in the facts too


def test_context_facts_are_listed_as_known_in_the_handoff_note(tone):
    from service.workflow.models import ContextFact

    drafter = Drafter.from_settings(Settings(llm_base_url=None), tone=tone)
    fact = ContextFact(
        source="order_status", key="NW-48213", text="Order NW-48213: delivered yesterday 14:02"
    )
    result = drafter.draft(
        "this is the wrong item, order NW-48213", make_triage("en", "wrong_item"), [], facts=[fact]
    )
    assert result.needs_human and result.handoff_summary is not None
    assert "Order NW-48213: delivered yesterday 14:02" in result.handoff_summary.known
