"""WhatsApp Cloud API and Messenger webhooks: Meta's GET handshake, X-Hub-Signature-256 verification, messages
in, statuses and read watermarks applied to the messages ReplyDesk sent."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from tests.workflow_harness import harness

SECRET = "meta-app-secret"
TOKEN = "verify-me"
T = 1767603600  # 2026-01-05T09:00:00Z


def _sig(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def meta(db_url, tmp_path, app):
    with harness(
        db_url,
        tmp_path,
        app.state.container,
        whatsapp_app_secret=SECRET,
        whatsapp_verify_token=TOKEN,
        messenger_app_secret=SECRET,
        messenger_verify_token=TOKEN,
    ) as h:
        yield h


def _post(h, path: str, payload: dict, *, signature: str | None = "auto", query_key: bool = True):
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if signature == "auto":
        headers["X-Hub-Signature-256"] = _sig(body)
    elif signature is not None:
        headers["X-Hub-Signature-256"] = signature
    params = {"api_key": h.keys["integration"]} if query_key else None
    return h.client.post(path, content=body, headers=headers, params=params)


def wa_message(
    text: str, wamid: str, sender: str = "5215512345678", *, name: str = "Ana", timestamp: int = T
) -> dict:
    """A WhatsApp Cloud API text-message webhook payload (shape: Meta's webhook reference, `messages`)."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN1"},
                            "contacts": [{"profile": {"name": name}, "wa_id": sender}],
                            "messages": [
                                {
                                    "from": sender,
                                    "id": wamid,
                                    "timestamp": str(timestamp),
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


def wa_status(wamid: str, status: str, ts: int) -> dict:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": "PN1"},
                            "statuses": [
                                {
                                    "id": wamid,
                                    "status": status,
                                    "timestamp": str(ts),
                                    "recipient_id": "5215512345678",
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


@pytest.mark.parametrize("channel", ["whatsapp", "messenger"])
def test_the_get_handshake_echoes_the_challenge_only_for_the_right_token(meta, channel):
    path = f"/v1/channels/{channel}/webhook"
    ok = meta.client.get(
        path,
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": TOKEN,
            "hub.challenge": "8817",
            "api_key": meta.keys["integration"],
        },
    )
    assert ok.status_code == 200 and ok.text == "8817"
    bad = meta.client.get(
        path,
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": "nope",
            "hub.challenge": "1",
            "api_key": meta.keys["integration"],
        },
    )
    assert bad.status_code == 403


def test_a_signed_whatsapp_message_is_acknowledged_stored_once_and_triaged_by_the_workers(meta):
    r = _post(
        meta, "/v1/channels/whatsapp/webhook", wa_message("Hola, ¿dónde está mi pedido 123456?", "wamid.1")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ingested"] == 1 and body["duplicates"] == 0
    queued = body["queued"][0]
    assert queued["queued"] is True and body["results"] == []  # acknowledged before any triage
    conv = meta.get(f"/v1/conversations/{queued['conversation_id']}").json()
    assert conv["external_id"] == "wa:PN1:5215512345678"
    assert conv["customer"]["country"] == "MX" and conv["customer"]["name"] == "Ana"
    assert meta.get(f"/v1/messages/{queued['message_id']}").json()["channel_message_id"] == "wamid.1"
    assert meta.get("/v1/suggestions", params={"conversation_id": conv["id"]}).json() == []

    assert meta.run_pipelines() == 1
    assert meta.get("/v1/suggestions", params={"conversation_id": conv["id"]}).json()
    again = _post(
        meta, "/v1/channels/whatsapp/webhook", wa_message("Hola, ¿dónde está mi pedido 123456?", "wamid.1")
    )
    assert again.json()["duplicates"] == 1 and again.json()["queued"][0]["queued"] is False
    assert meta.run_pipelines() == 0


def test_inline_mode_runs_the_pipeline_inside_the_request(db_url, tmp_path, app):
    with harness(
        db_url, tmp_path, app.state.container, whatsapp_app_secret=SECRET, channel_pipeline="inline"
    ) as h:
        body = _post(
            h, "/v1/channels/whatsapp/webhook", wa_message("Where is my order 123456?", "wamid.i")
        ).json()
        assert body["queued"] == [] and body["results"][0]["suggestions"]


def _first_suggestion(h, conversation_id: int) -> dict:
    h.run_pipelines()
    return h.get("/v1/suggestions", params={"conversation_id": conversation_id}).json()[0]


@pytest.mark.parametrize("signature", [None, "sha256=deadbeef", _sig(b"other body")])
def test_unsigned_or_badly_signed_meta_webhooks_are_401(meta, signature):
    r = _post(meta, "/v1/channels/whatsapp/webhook", wa_message("hi", "wamid.x"), signature=signature)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_signature"
    assert meta.get("/v1/messages", role="integration").json() == []


def test_the_integration_key_is_still_required(meta):
    r = _post(meta, "/v1/channels/whatsapp/webhook", wa_message("hi", "wamid.y"), query_key=False)
    assert r.status_code == 401


def test_without_an_app_secret_the_adapter_refuses_to_run(db_url, tmp_path, app):
    with harness(db_url, tmp_path, app.state.container) as h:
        r = _post(h, "/v1/channels/whatsapp/webhook", wa_message("hi", "wamid.z"))
        assert r.status_code == 503 and r.json()["error"]["code"] == "adapter_not_configured"


def test_whatsapp_statuses_update_the_messages_replydesk_sent(meta):
    result = _post(
        meta, "/v1/channels/whatsapp/webhook", wa_message("Where is my order 123456?", "wamid.2")
    ).json()
    sug = _first_suggestion(meta, result["queued"][0]["conversation_id"])
    out = meta.post(f"/v1/suggestions/{sug['id']}/approve").json()["message"]
    meta.deliver()  # the helpdesk answers with the channel id it sent the message under
    wamid = meta.get(f"/v1/messages/{out['id']}").json()["channel_message_id"]
    assert wamid == f"wamid.test{out['id']}"

    r = _post(meta, "/v1/channels/whatsapp/webhook", wa_status(wamid, "delivered", T + 60)).json()
    assert r["receipts"] == 1
    _post(meta, "/v1/channels/whatsapp/webhook", wa_status(wamid, "read", T + 120))
    late = _post(meta, "/v1/channels/whatsapp/webhook", wa_status(wamid, "delivered", T + 130)).json()
    assert late["receipts_refused"] == 1  # late, out of order: never moves the status back
    msg = meta.get(f"/v1/messages/{out['id']}").json()
    assert msg["status"] == "read"


def test_a_status_that_comes_before_its_message_id_is_kept_and_applied_when_the_id_arrives(meta):
    """The channel can report `delivered` before the helpdesk has answered our webhook with the id it sent
    the reply under: the status waits, and the worker applies it once the id is known."""
    result = _post(meta, "/v1/channels/whatsapp/webhook", wa_message("Where is my order 123456?", "wamid.3"))
    sug = _first_suggestion(meta, result.json()["queued"][0]["conversation_id"])
    out = meta.post(f"/v1/suggestions/{sug['id']}/approve").json()["message"]
    early = _post(
        meta, "/v1/channels/whatsapp/webhook", wa_status(f"wamid.test{out['id']}", "delivered", T + 5)
    )
    assert early.json()["receipts_pending"] == 1
    assert meta.container.workflow.apply_pending_receipts().applied == 0  # the id is still unknown

    meta.deliver()  # now the helpdesk answers with wamid.test<id>
    assert meta.get(f"/v1/messages/{out['id']}").json()["status"] == "sent"
    assert meta.container.workflow.apply_pending_receipts().applied == 1
    assert meta.get(f"/v1/messages/{out['id']}").json()["status"] == "delivered"
    assert meta.container.workflow.apply_pending_receipts().applied == 0  # applied once


def test_statuses_whose_message_id_never_arrives_expire(meta):
    _post(meta, "/v1/channels/whatsapp/webhook", wa_status("wamid.never", "read", T))
    meta.clock.advance(seconds=meta.container.settings.pending_receipt_ttl_s + 1)
    counts = meta.container.workflow.apply_pending_receipts()
    assert counts.expired == 1
    assert (
        'replydesk_pending_receipts_total{outcome="expired"} 1.0' in meta.get("/metrics", role="admin").text
    )


def fb(*events: dict) -> dict:
    return {"object": "page", "entry": [{"id": "PAGE1", "time": T * 1000, "messaging": list(events)}]}


def test_messenger_messages_deliveries_and_read_watermarks(meta):
    msg = {
        "sender": {"id": "PSID9"},
        "recipient": {"id": "PAGE1"},
        "timestamp": T * 1000,
        "message": {"mid": "m_1", "text": "Do you have the blue kettle in stock?"},
    }
    r = _post(meta, "/v1/channels/messenger/webhook", fb(msg)).json()
    assert r["ingested"] == 1
    conv = meta.get(f"/v1/conversations/{r['queued'][0]['conversation_id']}").json()
    assert conv["channel"] == "messenger" and conv["external_id"] == "fb:PAGE1:PSID9"

    sug = _first_suggestion(meta, conv["id"])
    out = meta.post(f"/v1/suggestions/{sug['id']}/approve").json()["message"]
    meta.post(
        f"/v1/messages/{out['id']}/status",
        role="integration",
        json={"status": "sent", "channel_message_id": "m_out1"},
    )
    # Meta's Messenger `message_deliveries` reference: no `timestamp` on the event, a watermark instead
    delivery = {
        "sender": {"id": "PSID9"},
        "recipient": {"id": "PAGE1"},
        "delivery": {"mids": ["m_out1"], "watermark": (T + 10) * 1000},
    }
    assert _post(meta, "/v1/channels/messenger/webhook", fb(delivery)).json()["receipts"] == 1
    read_at = int(meta.clock.now().timestamp()) + 60
    read = {
        "sender": {"id": "PSID9"},
        "recipient": {"id": "PAGE1"},
        "timestamp": read_at * 1000,
        "read": {"watermark": read_at * 1000},
    }
    assert _post(meta, "/v1/channels/messenger/webhook", fb(read)).json()["receipts"] == 1
    assert meta.get(f"/v1/messages/{out['id']}").json()["status"] == "read"


def test_a_payload_from_another_platform_is_422(meta):
    r = _post(meta, "/v1/channels/whatsapp/webhook", {"object": "page", "entry": []})
    assert r.status_code == 422
    r = _post(meta, "/v1/channels/messenger/webhook", {"object": "whatsapp_business_account"})
    assert r.status_code == 422
