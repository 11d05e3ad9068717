"""Channel webhooks end to end, through the real app: what each platform sends is acknowledged, stored where
an agent sees it, and moves the conversation the way a reply from here would (issue #14).

Payload shapes follow the platforms' docs (cited per builder); the parsers' own unit tests cover every field
(tests/test_channel_parsers_*.py). These tests check what the workflow does with the result.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.channel_fakes import PHONE_NUMBER_ID, FakeGraph
from tests.workflow_harness import Harness, harness

SECRET = "meta-app-secret"
TWILIO_TOKEN = "twilio-auth-token-9f"
T = 1767603600  # 2026-01-05T09:00:00Z


@pytest.fixture
def ch(db_url, tmp_path, app):
    with harness(
        db_url,
        tmp_path,
        app.state.container,
        whatsapp_app_secret=SECRET,
        messenger_app_secret=SECRET,
        twilio_auth_token=TWILIO_TOKEN,
    ) as h:
        yield h


def meta_post(h: Harness, channel: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(payload).encode()
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    r = h.client.post(
        f"/v1/channels/{channel}/webhook",
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sig},
        params={"api_key": h.keys["integration"]},
    )
    assert r.status_code == 200, r.text
    return r.json()


def wa(value: dict[str, Any], field: str = "messages") -> dict[str, Any]:
    """WhatsApp Cloud API webhook envelope (Meta, WhatsApp Cloud API › Webhooks › `messages` field)."""
    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": PHONE_NUMBER_ID}, **value}
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": field, "value": value}]}],
    }


def wa_text(text: str, wamid: str, sender: str = "5215512345678", ts: int = T) -> dict[str, Any]:
    return wa(
        {
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": sender}],
            "messages": [
                {"from": sender, "id": wamid, "timestamp": str(ts), "type": "text", "text": {"body": text}}
            ],
        }
    )


def thread(h: Harness, conversation_id: int) -> list[dict[str, Any]]:
    return h.get("/v1/messages", params={"conversation_id": conversation_id}).json()


def first_conversation(body: dict[str, Any]) -> int:
    return int(body["queued"][0]["conversation_id"])


# -- what customers send ----------------------------------------------------------------------------------


def test_a_reaction_is_kept_in_the_thread_but_starts_no_wait_and_no_triage(ch):
    body = meta_post(ch, "whatsapp", wa_text("Where is my order 123456?", "wamid.q1"))
    conversation_id = first_conversation(body)
    ch.run_pipelines()
    reply = ch.get("/v1/suggestions", params={"conversation_id": conversation_id}).json()[0]
    ch.post(f"/v1/suggestions/{reply['id']}/approve")
    assert ch.get(f"/v1/conversations/{conversation_id}").json()["sla"] is None  # answered

    # WhatsApp Cloud API › Webhooks › messages › reaction
    reaction = wa(
        {
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "5215512345678"}],
            "messages": [
                {
                    "from": "5215512345678",
                    "id": "wamid.r1",
                    "timestamp": str(T + 60),
                    "type": "reaction",
                    "reaction": {"message_id": "wamid.out1", "emoji": "👍"},
                }
            ],
        }
    )
    body = meta_post(ch, "whatsapp", reaction)
    assert body["ingested"] == 1 and body["queued"][0]["queued"] is False
    stored = thread(ch, conversation_id)[-1]
    assert stored["kind"] == "reaction" and stored["reply_to"] == "wamid.out1"
    assert (
        stored["attachments"][0]["type"] == "reaction" and stored["attachments"][0]["data"]["emoji"] == "👍"
    )
    assert ch.get(f"/v1/conversations/{conversation_id}").json()["sla"] is None  # a 👍 asks nothing
    assert ch.run_pipelines() == 0


def test_a_customer_who_hides_their_number_is_ingested_by_their_user_id(ch):
    """Meta's business-scoped user ids: `from_user_id` / contacts `user_id`, no `from` / `wa_id`."""
    payload = wa(
        {
            "contacts": [{"profile": {"name": "Kai"}, "user_id": "US.13491208655302741918"}],
            "messages": [
                {
                    "from_user_id": "US.13491208655302741918",
                    "id": "wamid.u1",
                    "timestamp": str(T),
                    "type": "text",
                    "text": {"body": "Hi, my parcel never arrived"},
                }
            ],
        }
    )
    body = meta_post(ch, "whatsapp", payload)
    assert body["ingested"] == 1
    conv = ch.get(f"/v1/conversations/{first_conversation(body)}").json()
    assert conv["external_id"] == f"wa:{PHONE_NUMBER_ID}:US.13491208655302741918"
    assert conv["customer"]["name"] == "Kai"


def test_documents_locations_and_quoted_messages_keep_what_an_agent_needs(ch):
    payload = wa(
        {
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "5215512345678"}],
            "messages": [
                {
                    "from": "5215512345678",
                    "id": "wamid.d1",
                    "timestamp": str(T),
                    "type": "document",
                    "context": {"from": "15550001111", "id": "wamid.earlier"},
                    "document": {
                        "id": "MEDIA1",
                        "filename": "invoice-4471.pdf",
                        "mime_type": "application/pdf",
                        "caption": "this invoice is wrong",
                    },
                },
                {
                    "from": "5215512345678",
                    "id": "wamid.l1",
                    "timestamp": str(T + 1),
                    "type": "location",
                    "location": {
                        "latitude": 19.4326,
                        "longitude": -99.1332,
                        "name": "Oficina",
                        "address": "Av. Reforma 222, CDMX",
                    },
                },
            ],
        }
    )
    body = meta_post(ch, "whatsapp", payload)
    doc, loc = thread(ch, first_conversation(body))
    assert doc["attachments"][0]["filename"] == "invoice-4471.pdf"
    assert doc["attachments"][0]["mime_type"] == "application/pdf"
    assert doc["reply_to"] == "wamid.earlier"
    assert "Av. Reforma 222" in json.dumps(loc["attachments"][0], ensure_ascii=False)


def test_events_nobody_acts_on_are_counted_by_type_not_lost(ch):
    """Messenger's handover protocol `standby` events (Messenger Platform › Webhooks › standby)."""
    payload = {
        "object": "page",
        "entry": [
            {
                "id": "PAGE1",
                "time": T * 1000,
                "standby": [
                    {
                        "sender": {"id": "PSID9"},
                        "recipient": {"id": "PAGE1"},
                        "timestamp": T * 1000,
                        "message": {"mid": "m_sb", "text": "hello?"},
                    }
                ],
            }
        ],
    }
    body = meta_post(ch, "messenger", payload)
    assert body["skipped"] == 1 and body["skipped_types"] == ["messenger.standby"]
    metrics = ch.get("/metrics", role="admin").text
    assert 'replydesk_channel_events_skipped_total{type="messenger.standby"} 1.0' in metrics


def test_an_instagram_message_lands_in_an_instagram_conversation(ch):
    """Instagram Messaging webhooks (`object: instagram`, entry[].messaging like Messenger's)."""
    payload = {
        "object": "instagram",
        "entry": [
            {
                "id": "17841405822304914",
                "time": T * 1000,
                "messaging": [
                    {
                        "sender": {"id": "IGSID77"},
                        "recipient": {"id": "17841405822304914"},
                        "timestamp": T * 1000,
                        "message": {"mid": "ig_m1", "text": "Do you ship to Canada?"},
                    }
                ],
            }
        ],
    }
    body = meta_post(ch, "instagram", payload)
    conv = ch.get(f"/v1/conversations/{first_conversation(body)}").json()
    assert conv["channel"] == "instagram" and conv["external_id"] == "ig:17841405822304914:IGSID77"


# -- replies people sent elsewhere ------------------------------------------------------------------------


def _waiting_conversation(h: Harness, minutes: float = 2) -> int:
    body = meta_post(h, "whatsapp", wa_text("Where is my order 123456?", "wamid.w1"))
    conversation_id = first_conversation(body)
    h.run_pipelines()
    assert h.get("/v1/suggestions", params={"conversation_id": conversation_id, "status": "pending"}).json()
    h.clock.advance(minutes=minutes)
    return conversation_id


def test_a_reply_from_the_whatsapp_business_app_answers_the_wait(ch):
    """Coexistence: `smb_message_echoes` (WhatsApp Cloud API › Webhooks › smb_message_echoes) carries what
    the business sent from the WhatsApp Business app."""
    conversation_id = _waiting_conversation(ch)
    sent = int(ch.clock.now().timestamp())
    echo = wa(
        {
            "message_echoes": [
                {
                    "from": "15550001111",
                    "to": "5215512345678",
                    "id": "wamid.echo1",
                    "timestamp": str(sent),
                    "type": "text",
                    "text": {"body": "Hola Ana, ya lo reviso."},
                }
            ]
        },
        field="smb_message_echoes",
    )
    assert meta_post(ch, "whatsapp", echo)["replies"] == 1
    conv = ch.get(f"/v1/conversations/{conversation_id}").json()
    assert conv["sla"] is None and conv["first_response_at"] is not None
    assert (
        ch.get("/v1/suggestions", params={"conversation_id": conversation_id, "status": "pending"}).json()
        == []
    )
    out = thread(ch, conversation_id)[-1]
    assert (out["direction"], out["status"], out["text"]) == ("outbound", "sent", "Hola Ana, ya lo reviso.")
    # Meta re-sends the same echo: still one reply
    assert meta_post(ch, "whatsapp", echo)["replies"] == 0
    assert len(thread(ch, conversation_id)) == 2


def test_a_reply_typed_in_the_page_inbox_answers_a_messenger_customer(ch):
    """Messenger `message_echoes` (`message.is_echo`): the page is the sender, the customer the recipient."""
    customer = {
        "sender": {"id": "PSID9"},
        "recipient": {"id": "PAGE1"},
        "timestamp": T * 1000,
        "message": {"mid": "m_1", "text": "Is the blue kettle in stock?"},
    }
    body = meta_post(ch, "messenger", {"object": "page", "entry": [{"id": "PAGE1", "messaging": [customer]}]})
    conversation_id = first_conversation(body)
    ch.run_pipelines()
    echo = {
        "sender": {"id": "PAGE1"},
        "recipient": {"id": "PSID9"},
        "timestamp": int(ch.clock.now().timestamp() * 1000),
        "message": {"mid": "m_echo", "text": "Yes, 4 left!", "is_echo": True, "app_id": 263902037430900},
    }
    body = meta_post(ch, "messenger", {"object": "page", "entry": [{"id": "PAGE1", "messaging": [echo]}]})
    assert body["replies"] == 1 and body["ingested"] == 0
    conv = ch.get(f"/v1/conversations/{conversation_id}").json()
    assert conv["sla"] is None and conv["first_response_at"] is not None


def test_the_echo_of_a_reply_sent_from_here_is_not_a_second_reply(ch):
    conversation_id = _waiting_conversation(ch)
    sug = ch.get("/v1/suggestions", params={"conversation_id": conversation_id}).json()[0]
    ch.post(f"/v1/suggestions/{sug['id']}/approve")  # queued; the channel's echo overtakes our delivery
    echo = wa(
        {
            "message_echoes": [
                {
                    "from": "15550001111",
                    "to": "5215512345678",
                    "id": "wamid.ours",
                    "timestamp": str(int(ch.clock.now().timestamp())),
                    "type": "text",
                    "text": {"body": sug["draft_text"]},
                }
            ]
        },
        field="smb_message_echoes",
    )
    assert meta_post(ch, "whatsapp", echo)["replies"] == 0
    outbound = [m for m in thread(ch, conversation_id) if m["direction"] == "outbound"]
    assert len(outbound) == 1 and outbound[0]["channel_message_id"] == "wamid.ours"


# -- Twilio -------------------------------------------------------------------------------------------------


def twilio_post(h: Harness, form: dict[str, str], *, token: str = TWILIO_TOKEN):
    """Twilio signs the full URL it calls plus the sorted POST parameters (Twilio › Webhooks security)."""
    url = f"http://testserver/v1/channels/twilio/webhook?api_key={h.keys['integration']}"
    signed = url + "".join(k + form[k] for k in sorted(form))
    signature = base64.b64encode(hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()).decode()
    return h.client.post(
        url,
        content=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )


def test_an_sms_comes_in_through_twilio_and_its_reply_status_comes_back(ch):
    """Twilio Messaging › incoming message webhook parameters; status callbacks (`MessageStatus`)."""
    inbound = {
        "MessageSid": "SM0001",
        "SmsSid": "SM0001",
        "AccountSid": "AC" + "0" * 32,
        "From": "+14155550123",
        "To": "+15550001111",
        "Body": "My order 4471 has not arrived",
        "NumMedia": "0",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    r = twilio_post(ch, inbound)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert "<Response></Response>" in r.text
    conv = ch.get(f"/v1/conversations/{ch.get('/v1/queue').json()['items'][0]['conversation_id']}").json()
    assert conv["channel"] == "sms" and conv["external_id"] == "twilio:+15550001111/+14155550123"

    ch.run_pipelines()
    sug = ch.get("/v1/suggestions", params={"conversation_id": conv["id"]}).json()[0]
    out = ch.post(f"/v1/suggestions/{sug['id']}/approve").json()["message"]
    ch.post(
        f"/v1/messages/{out['id']}/status",
        role="integration",
        json={"status": "sent", "channel_message_id": "SM0002"},
    )
    failed = {
        "MessageSid": "SM0002",
        "SmsSid": "SM0002",
        "From": "+15550001111",
        "To": "+14155550123",
        "MessageStatus": "undelivered",
        "SmsStatus": "undelivered",
        "ErrorCode": "30003",
        "AccountSid": "AC" + "0" * 32,
    }
    assert twilio_post(ch, failed).status_code == 200
    msg = ch.get(f"/v1/messages/{out['id']}").json()
    assert msg["status"] == "failed" and msg["error_code"] == "30003"


def test_a_twilio_post_with_a_wrong_signature_is_refused_and_stores_nothing(ch):
    form = {
        "MessageSid": "SM9",
        "From": "+14155550123",
        "To": "+15550001111",
        "Body": "hi",
        "SmsStatus": "received",
    }
    r = twilio_post(ch, form, token="not-the-token")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_signature"
    assert ch.get("/v1/messages", role="integration").json() == []


# -- WhatsApp's 24-hour window ------------------------------------------------------------------------------


def test_outside_whatsapps_24_hours_a_free_form_reply_is_refused_and_a_template_goes(ch):
    conversation_id = _waiting_conversation(ch, minutes=25 * 60)
    sug = ch.get("/v1/suggestions", params={"conversation_id": conversation_id}).json()[0]
    refused = ch.post(f"/v1/suggestions/{sug['id']}/approve")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "whatsapp_window_closed" and "template" in error["message"]
    assert error["details"]["channel_error_code"] == "131047"
    assert ch.get(f"/v1/suggestions/{sug['id']}").json()["status"] == "pending"  # nothing half-done

    own = ch.post(f"/v1/conversations/{conversation_id}/reply", json={"text": "Sorry for the wait!"})
    assert own.status_code == 409

    template = {"name": "order_update", "language": "es_MX", "parameters": ["4471"]}
    sent = ch.post(f"/v1/conversations/{conversation_id}/reply", json={"template": template})
    assert sent.status_code == 201, sent.text
    assert sent.json()["message"]["text"] == "[template order_update (es_MX): 4471]"
    ch.deliver()
    assert ch.receiver is not None
    assert ch.receiver.of_type("message.outbound")[-1].body["data"]["template"] == template


def test_within_the_window_a_free_form_reply_goes(ch):
    conversation_id = _waiting_conversation(ch, minutes=23 * 60)
    sug = ch.get("/v1/suggestions", params={"conversation_id": conversation_id}).json()[0]
    assert ch.post(f"/v1/suggestions/{sug['id']}/approve").status_code == 200


def test_a_template_on_a_channel_without_templates_is_422(ch):
    customer = {
        "sender": {"id": "PSID9"},
        "recipient": {"id": "PAGE1"},
        "timestamp": T * 1000,
        "message": {"mid": "m_t", "text": "hello"},
    }
    body = meta_post(ch, "messenger", {"object": "page", "entry": [{"id": "PAGE1", "messaging": [customer]}]})
    r = ch.post(
        f"/v1/conversations/{first_conversation(body)}/reply",
        json={"template": {"name": "order_update", "language": "en_US"}},
    )
    assert r.status_code == 422


# -- sending through WhatsApp itself ------------------------------------------------------------------------


@pytest.fixture
def graph():
    fake = FakeGraph().start()
    yield fake
    fake.stop()


def test_with_whatsapp_sending_on_replies_go_to_the_cloud_api_and_reads_turn_the_ticks_blue(
    db_url, tmp_path, app, graph
):
    with harness(
        db_url,
        tmp_path,
        app.state.container,
        whatsapp_app_secret=SECRET,
        channel_send=["whatsapp"],
        whatsapp_access_token=graph.whatsapp_token,
        meta_graph_url=graph.base_url,
    ) as h:
        body = meta_post(h, "whatsapp", wa_text("Where is my order 123456?", "wamid.c1"))
        conversation_id = first_conversation(body)
        h.run_pipelines()
        inbound = thread(h, conversation_id)[0]
        h.post(f"/v1/messages/{inbound['id']}/read")  # the agent opens it
        sug = h.get("/v1/suggestions", params={"conversation_id": conversation_id}).json()[0]
        out = h.post(f"/v1/suggestions/{sug['id']}/approve").json()["message"]
        h.deliver()
        paths = [(q.path, q.json.get("status") or q.json.get("type")) for q in graph.requests]
        assert (f"/{PHONE_NUMBER_ID}/messages", "read") in paths
        assert (f"/{PHONE_NUMBER_ID}/messages", "text") in paths
        assert graph.problems == []
        sent = h.get(f"/v1/messages/{out['id']}").json()
        assert sent["status"] == "sent" and sent["channel_message_id"].startswith("wamid.")
        assert h.receiver is not None and h.receiver.of_type("message.outbound") == []  # not by webhook


# -- the workers ------------------------------------------------------------------------------------------


def test_with_the_workers_running_a_webhook_message_gets_its_suggestions_without_anyone_asking(
    db_url, tmp_path, app
):
    with harness(
        db_url, tmp_path, app.state.container, whatsapp_app_secret=SECRET, workers_enabled=True
    ) as h:
        body = meta_post(h, "whatsapp", wa_text("Where is my order 123456?", "wamid.bg1"))
        conversation_id = first_conversation(body)
        deadline = time.monotonic() + 30
        found: list[Any] = []
        while time.monotonic() < deadline and not found:
            found = h.get("/v1/suggestions", params={"conversation_id": conversation_id}).json()
            time.sleep(0.1)
        assert found, "the pipeline workers never ran the queued message"
        events = h.get("/v1/events", params={"since": 0, "max_events": 50, "max_wait_s": 0.2})
        assert "suggestions.created" in events.text


def test_a_whole_batch_is_stored_in_one_go_and_a_repeated_id_inside_it_once(ch):
    """A POST of many messages is one transaction (its 200 does not wait for one commit per message); a
    platform repeating a message id inside the same POST still stores it once."""
    messages = [
        {"from": f"52155123456{i:02d}", "id": f"wamid.b{i}", "timestamp": str(T), "type": "text",
         "text": {"body": f"Where is my order NW-4{i:04d}?"}}
        for i in range(20)
    ]  # fmt: skip
    messages.append(dict(messages[0]))  # the same wamid again
    body = meta_post(ch, "whatsapp", wa({"messages": messages}))
    assert body["ingested"] == 21 and body["duplicates"] == 1
    assert len({q["message_id"] for q in body["queued"]}) == 20
    assert sum(q["queued"] for q in body["queued"]) == 20
    assert ch.run_pipelines() == 20


def test_the_window_counts_from_when_the_message_arrived_not_from_the_time_it_claims(ch):
    """A helpdesk backfilling old messages (or a client with a wrong clock) sends an old `sent_at`: the agent
    is not locked out; WhatsApp itself keeps the final say (131047)."""
    old = ch.clock.now() - timedelta(days=10)
    created = ch.ingest("Where is my order 123456?", conversation="wa-backfill", sent_at=old)
    sug = created["suggestions"][0]
    assert ch.post(f"/v1/suggestions/{sug['id']}/approve").status_code == 200
