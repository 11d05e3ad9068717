"""Every public endpoint answers the bad-input corpus (`tests/data/bad_inputs.jsonl`: empty, huge, invalid
UTF-8, RTL and mixed scripts, zero-width characters, emoji only, HTML, injection strings, malformed JSON) with
a success or a clear 4xx — never a 5xx."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from httpx import Response

from tests.robustness_harness import LiveApp, isolated_settings, load_bad_inputs, start, stop

pytestmark = pytest.mark.slow  # a live server fed every bad input: `make test` runs it, `make test-fast` not

INPUTS = load_bad_inputs()
TEXTS = [r for r in INPUTS if "text" in r]
RAW = [r for r in INPUTS if "raw_b64" in r]
SENT_AT = "2026-01-05T09:00:00Z"
META_SECRET = "meta-app-secret-for-tests"
JSON = {"Content-Type": "application/json"}
TWILIO_TOKEN = "twilio-token-for-tests"
TWILIO_URL = "https://replydesk.example/v1/channels/twilio/webhook"  # as configured in Twilio (signed)


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[LiveApp]:
    settings = isolated_settings(
        tmp_path_factory.mktemp("bad-inputs"),
        whatsapp_app_secret=META_SECRET,
        messenger_app_secret=META_SECRET,
        twilio_auth_token=TWILIO_TOKEN,
        twilio_webhook_url=TWILIO_URL,
    )
    app = start(settings)
    yield app
    stop(app)


def _body(payload: Any) -> bytes:
    """JSON with \\u escapes (ensure_ascii), so lone surrogates reach the server as JSON escapes, as a client
    in another language could send them."""
    return json.dumps(payload).encode("ascii")


def post(a: LiveApp, path: str, payload: Any) -> Response:
    return a.client.post(path, content=_body(payload), headers=JSON)


MAX_URL_VALUE = 2000  # query and path values are cut here: clients and proxies refuse longer URLs (~8 KB)


def get(a: LiveApp, path: str, params: dict[str, Any]) -> Response:
    params = {k: v[:MAX_URL_VALUE] if isinstance(v, str) else v for k, v in params.items()}
    query = urllib.parse.urlencode(params, encoding="utf-8", errors="surrogatepass")
    return a.client.get(f"{path}?{query}")


def signed(a: LiveApp, path: str, body: bytes) -> Response:
    digest = hmac.new(META_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return a.client.post(path, content=body, headers={**JSON, "X-Hub-Signature-256": f"sha256={digest}"})


def twilio_form(a: LiveApp, form: dict[str, str]) -> Response:
    """Twilio's form-encoded webhook, signed over the configured URL and the sorted parameters."""
    signed_text = TWILIO_URL + "".join(k + form[k] for k in sorted(form))
    digest = hmac.new(
        TWILIO_TOKEN.encode(), signed_text.encode("utf-8", "surrogatepass"), hashlib.sha1
    ).digest()
    body = urllib.parse.urlencode(form, encoding="utf-8", errors="surrogatepass")
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": base64.b64encode(digest).decode(),
    }
    return a.client.post("/v1/channels/twilio/webhook", content=body, headers=headers)


@pytest.fixture(scope="module")
def thread(live: LiveApp) -> dict[str, int]:
    """A conversation with a pending suggestion, for the endpoints that act on one."""
    r = post(
        live,
        "/v1/messages",
        {
            "channel": "webchat",
            "conversation_external_id": "bad-inputs-main",
            "customer": {"id": "bad-inputs-customer", "locale": "en-GB"},
            "text": "Hi, where is my order A12345?",
            "sent_at": SENT_AT,
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    suggestion = body["suggestions"][0]["id"] if body["suggestions"] else 999_999
    return {
        "conversation": body["conversation"]["id"],
        "message": body["message"]["id"],
        "suggestion": suggestion,
    }


def _quote(text: str) -> str:
    return urllib.parse.quote(text[:MAX_URL_VALUE].encode("utf-8", "surrogatepass"), safe="")


def _whatsapp(i: str, x: str) -> dict:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "contacts": [{"wa_id": "5511999", "profile": {"name": x}}],
                            "messages": [
                                {
                                    "from": "5511999",
                                    "id": f"wamid.{i}",
                                    "timestamp": "1700000000",
                                    "type": "text",
                                    "text": {"body": x},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


def _messenger(i: str, x: str) -> dict:
    return {
        "object": "page",
        "entry": [
            {
                "id": "1",
                "time": 1700000000,
                "messaging": [
                    {
                        "sender": {"id": "psid-1"},
                        "recipient": {"id": "page-1"},
                        "timestamp": 1700000000000,
                        "message": {"mid": f"m.{i}", "text": x},
                    }
                ],
            }
        ],
    }


Sender = Callable[[LiveApp, dict[str, int], str, str], Response]

TEXT_ENDPOINTS: dict[str, Sender] = {
    "POST /v1/triage": lambda a, t, i, x: post(a, "/v1/triage", {"text": x, "locale": "en-US"}),
    "POST /v1/triage (locale)": lambda a, t, i, x: post(a, "/v1/triage", {"text": "hello", "locale": x}),
    "POST /v1/triage (history)": lambda a, t, i, x: post(
        a, "/v1/triage", {"text": "??", "history": [{"role": "customer", "text": x}]}
    ),
    "POST /v1/drafts": lambda a, t, i, x: post(a, "/v1/drafts", {"text": x, "locale": "en-GB"}),
    "POST /v1/tone/check": lambda a, t, i, x: post(a, "/v1/tone/check", {"text": x, "locale": "ar-SA"}),
    "GET /v1/kb/search": lambda a, t, i, x: get(a, "/v1/kb/search", {"q": x, "locale": "en"}),
    "GET /v1/kb/articles/{id}": lambda a, t, i, x: a.client.get(f"/v1/kb/articles/{_quote(x) or 'empty'}"),
    "PUT /v1/kb/articles/{id}": lambda a, t, i, x: a.client.put(
        f"/v1/kb/articles/bad-{i.replace('_', '-')}",
        content=x.encode("utf-8", "surrogatepass"),
        headers={"Content-Type": "text/markdown"},
    ),
    "POST /v1/messages": lambda a, t, i, x: post(
        a,
        "/v1/messages",
        {
            "channel": "webchat",
            "conversation_external_id": f"bad-{i}",
            "customer": {"id": f"c-{i}"},
            "text": x,
            "sent_at": SENT_AT,
        },
    ),
    "POST /v1/messages (customer)": lambda a, t, i, x: post(
        a,
        "/v1/messages",
        {
            "channel": "sms",
            "conversation_external_id": f"bad-cust-{i}",
            "customer": {"id": x, "name": x, "locale": x},
            "text": "hello",
            "sent_at": SENT_AT,
        },
    ),
    "POST /v1/conversations/{id}/reply": lambda a, t, i, x: post(
        a, f"/v1/conversations/{t['conversation']}/reply", {"text": x}
    ),
    "POST /v1/suggestions/{id}/reject": lambda a, t, i, x: post(
        a, f"/v1/suggestions/{t['suggestion']}/reject", {"reason": x}
    ),
    "POST /v1/suggestions/{id}/approve": lambda a, t, i, x: post(
        a, f"/v1/suggestions/{t['suggestion']}/approve", {"text": x}
    ),
    "POST /v1/surveys/{id}/responses": lambda a, t, i, x: post(a, "/v1/surveys/1/responses", {"text": x}),
    "POST /v1/keys": lambda a, t, i, x: post(a, "/v1/keys", {"name": x, "role": "agent"}),
    "GET /v1/metrics/kpis": lambda a, t, i, x: get(a, "/v1/metrics/kpis", {"from": x}),
    "GET /v1/messages": lambda a, t, i, x: get(a, "/v1/messages", {"status": x, "limit": 5}),
    "GET /v1/events": lambda a, t, i, x: get(
        a, "/v1/events", {"types": x, "since": 0, "max_events": 1, "max_wait_s": 0.05}
    ),
    "POST /v1/channels/whatsapp/webhook": lambda a, t, i, x: signed(
        a, "/v1/channels/whatsapp/webhook", _body(_whatsapp(i, x))
    ),
    "POST /v1/channels/messenger/webhook": lambda a, t, i, x: signed(
        a, "/v1/channels/messenger/webhook", _body(_messenger(i, x))
    ),
    "POST /v1/channels/instagram/webhook": lambda a, t, i, x: signed(
        a, "/v1/channels/instagram/webhook", _body({**_messenger(i, x), "object": "instagram"})
    ),
    "POST /v1/channels/twilio/webhook": lambda a, t, i, x: twilio_form(
        a,
        {
            "MessageSid": f"SMbad{i}",
            "From": "+14155550123",
            "To": "+15550001111",
            "Body": x[:1600],
            "SmsStatus": "received",
        },
    ),
    "POST /v1/channels/chatwoot/webhook": lambda a, t, i, x: post(
        a,
        "/v1/channels/chatwoot/webhook",
        {
            "event": "message_created",
            "message_type": "incoming",
            "content": x,
            "id": 1,
            "conversation": {"id": 1},
            "sender": {"id": 1, "name": x},
        },
    ),
}

RAW_ENDPOINTS = [
    "/v1/triage",
    "/v1/drafts",
    "/v1/tone/check",
    "/v1/messages",
    "/v1/keys",
    "/v1/channels/whatsapp/webhook",
    "/v1/channels/messenger/webhook",
    "/v1/channels/instagram/webhook",
    "/v1/channels/chatwoot/webhook",
]


def _problem(r: Response) -> str | None:
    """Why this response is not acceptable for a bad input: a 5xx, or an error without a JSON body."""
    if r.status_code >= 500:
        return f"{r.status_code}: {r.text[:300]}"
    if r.status_code >= 400 and "json" not in r.headers.get("content-type", ""):
        return f"{r.status_code} without a JSON error body: {r.text[:200]}"
    return None


@pytest.mark.parametrize("endpoint", list(TEXT_ENDPOINTS))
def test_bad_text_never_gets_a_server_error(live, thread, endpoint):
    send = TEXT_ENDPOINTS[endpoint]
    problems = {}
    for row in TEXTS:
        problem = _problem(send(live, thread, row["id"], row["text"]))
        if problem:
            problems[row["id"]] = problem
    assert problems == {}, f"{endpoint} failed on bad inputs: {problems}"


@pytest.mark.parametrize("path", RAW_ENDPOINTS)
def test_malformed_bodies_are_rejected_with_4xx(live, path):
    problems = {}
    for row in RAW:
        raw = base64.b64decode(row["raw_b64"])
        r = (
            signed(live, path, raw)
            if "/channels/" in path
            else live.client.post(path, content=raw, headers=JSON)
        )
        problem = _problem(r)
        if problem:
            problems[row["id"]] = problem
    assert problems == {}, f"{path} failed on malformed bodies: {problems}"


def test_invalid_utf8_in_a_json_body_is_a_4xx_with_a_json_error(live):
    bad = base64.b64decode(next(r for r in RAW if r["id"] == "raw_invalid_utf8")["raw_b64"])
    r = live.client.post("/v1/triage", content=bad, headers=JSON)
    assert r.status_code in (400, 422)
    assert r.headers["content-type"].startswith("application/json")


def test_empty_and_oversized_texts_are_422_with_the_limit_in_the_message(live):
    empty = live.client.post("/v1/triage", json={"text": " \u0000\u0007 \n"})
    huge = live.client.post("/v1/triage", json={"text": "a" * 4001})
    assert empty.status_code == 422 and huge.status_code == 422
    assert "4000" in huge.json()["error"]["message"]


def test_the_service_still_answers_normally_after_the_bad_inputs(live, thread):
    r = live.client.post(
        "/v1/triage", json={"text": "Hi, I want to return the lamp I bought", "locale": "en-GB"}
    )
    assert r.status_code == 200
    assert r.json()["intent"]["name"] == "return_item"
    assert live.client.get("/health").json()["components"]["database"]["status"] == "ok"
