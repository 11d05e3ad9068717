"""Replies sent through the channels' own APIs (`service/integrations/senders`), against local stand-ins of
Meta's Graph API and Twilio's Messages API (tests/channel_fakes.py) that check every request's documented
shape and answer like the platforms: the sender answers the dispatcher with the channel's message id, a
refusal no retry can fix fails the delivery at once with the channel's code and a sentence the agent can act
on, and rate limits and outages are retried with backoff. Credentials never show in a stored or logged
error."""

from __future__ import annotations

import base64
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.auth.models import Principal, Role
from service.clock import ManualClock
from service.container import Container
from service.db import Database
from service.db.models import Event, Message, WebhookDelivery
from service.integrations.senders import (
    InstagramSender,
    MessengerSender,
    TwilioSender,
    WhatsAppCloudSender,
    WhatsAppReadMarker,
    channel_senders,
    missing_credentials,
)
from service.settings import REPO_ROOT, Settings
from service.workflow.events import EventLog
from service.workflow.models import CustomerIn, MessageCreate, ReplyRequest
from service.workflow.webhooks import PermanentFailure, WebhookDispatcher
from tests.channel_fakes import (
    ACCOUNT_SID,
    FB_OUTSIDE_WINDOW,
    FB_RATE_LIMIT,
    FB_TEMPORARY,
    FB_UNAVAILABLE,
    IG_ACCOUNT_ID,
    IG_OUTSIDE_WINDOW,
    PAGE_ID,
    PHONE_NUMBER_ID,
    TW_INVALID_TO,
    TW_OUTSIDE_WINDOW,
    TW_TOO_MANY,
    TW_UNSUBSCRIBED,
    WA_ACCOUNT_LIMIT,
    WA_INVALID_PARAMETER,
    WA_REENGAGEMENT,
    WA_SOMETHING_WRONG,
    WA_SPAM_LIMIT,
    WA_THROUGHPUT,
    WA_TOKEN_EXPIRED,
    WA_UNDELIVERABLE,
    WA_UNSUPPORTED,
    FakeGraph,
    FakeTwilio,
    graph_error,
    twilio_error,
)

WA_ID = "5215512345678"
BSUID = "US.13491208655302741918"
PSID = "6789012345678901"
IGSID = "17841453210987654"
OUR_WHATSAPP = "whatsapp:+14155238886"
CUSTOMER_WHATSAPP = "whatsapp:+5215512345678"

WINDOW_SENTENCE = (
    "WhatsApp refused a free-form reply: more than 24 hours since the customer's last message (131047). "
    "Send an approved template instead."
)


def outbound(external_id: str, text: str = "Your order ships today.", **data: Any) -> dict[str, Any]:
    """A `message.outbound` envelope as the dispatcher builds it (`service.workflow.webhooks.envelope`)."""
    return {
        "id": 41,
        "type": "message.outbound",
        "created_at": "2026-01-05T09:00:00+00:00",
        "conversation_id": 7,
        "message_id": 12,
        "data": {
            "message": {"id": 12, "text": text, "kind": "reply", "status": "queued"},
            "conversation": {"id": 7, "channel": "whatsapp", "external_id": external_id},
            "customer": {"id": WA_ID, "name": "Ana", "locale": "es-MX"},
            **data,
        },
    }


def read_event(external_id: str, channel_ids: list[str]) -> dict[str, Any]:
    return {
        "id": 42,
        "type": "message.read",
        "created_at": "2026-01-05T09:05:00+00:00",
        "conversation_id": 7,
        "message_id": 3,
        "data": {
            "message_ids": list(range(1, len(channel_ids) + 1)),
            "channel_message_ids": channel_ids,
            "by": "ana",
            "conversation": {"id": 7, "channel": "whatsapp", "external_id": external_id},
        },
    }


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph().start()
    yield fake
    fake.stop()


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio().start()
    yield fake
    fake.stop()


@pytest.fixture
def whatsapp(graph: FakeGraph) -> Iterator[WhatsAppCloudSender]:
    sender = WhatsAppCloudSender(graph.base_url, graph.whatsapp_token, timeout_s=5)
    yield sender
    sender.close()


@pytest.fixture
def messenger(graph: FakeGraph) -> Iterator[MessengerSender]:
    sender = MessengerSender(graph.base_url, graph.page_token, timeout_s=5)
    yield sender
    sender.close()


@pytest.fixture
def instagram(graph: FakeGraph) -> Iterator[InstagramSender]:
    sender = InstagramSender(graph.base_url, graph.page_token, timeout_s=5)
    yield sender
    sender.close()


@pytest.fixture
def twilio_sender(twilio: FakeTwilio) -> Iterator[TwilioSender]:
    sender = TwilioSender(twilio.base_url, twilio.account_sid, twilio.auth_token, timeout_s=5)
    yield sender
    sender.close()


def _channel_id(response: httpx.Response) -> str | None:
    assert response.status_code == 200, response.text
    value = response.json().get("channel_message_id")
    return value if isinstance(value, str) else None


# -- sending: each platform's documented request, and the id it answers --------------------------------------


def test_a_whatsapp_reply_is_a_text_message_to_the_customers_number_and_answers_its_wamid(graph, whatsapp):
    response = whatsapp.post(outbound(f"wa:{PHONE_NUMBER_ID}:{WA_ID}", "Your order ships today."))
    assert _channel_id(response) == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI00001"
    [seen] = graph.requests
    assert graph.problems == []
    assert seen.path == f"/{PHONE_NUMBER_ID}/messages"
    assert seen.headers["Authorization"] == f"Bearer {graph.whatsapp_token}"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": WA_ID,
        "type": "text",
        "text": {"preview_url": False, "body": "Your order ships today."},
    }


def test_a_link_in_a_whatsapp_reply_asks_for_its_preview(graph, whatsapp):
    whatsapp.post(outbound(f"wa:{PHONE_NUMBER_ID}:{WA_ID}", "Track it at https://example.com/t/4471"))
    assert graph.requests[0].json["text"]["preview_url"] is True


def test_a_customer_who_hides_their_number_is_reached_by_business_scoped_user_id_in_recipient(
    graph, whatsapp
):
    response = whatsapp.post(outbound(f"wa:{PHONE_NUMBER_ID}:{BSUID}"))
    assert _channel_id(response)
    body = graph.requests[0].json
    assert body["recipient"] == BSUID and "to" not in body
    assert graph.problems == []


def test_a_template_is_sent_instead_of_the_text_with_its_body_parameters(graph, whatsapp):
    template = {"name": "order_update", "language": "es_MX", "parameters": ["Ana", "#4471"]}
    response = whatsapp.post(outbound(f"wa:{PHONE_NUMBER_ID}:{WA_ID}", "Hola Ana", template=template))
    assert _channel_id(response)
    assert graph.problems == []
    assert graph.requests[0].json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": WA_ID,
        "type": "template",
        "template": {
            "name": "order_update",
            "language": {"code": "es_MX"},
            "components": [
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "#4471"}],
                }
            ],
        },
    }


def test_a_template_without_parameters_has_no_components(graph, whatsapp):
    template = {"name": "hello_world", "language": "en_US"}
    whatsapp.post(outbound(f"wa:{PHONE_NUMBER_ID}:{WA_ID}", "", template=template))
    assert graph.requests[0].json["template"] == {"name": "hello_world", "language": {"code": "en_US"}}


def test_a_messenger_reply_is_a_response_to_the_psid_from_the_page(graph, messenger):
    response = messenger.post(outbound(f"fb:{PAGE_ID}:{PSID}", "Your order ships today."))
    assert _channel_id(response) == "m_00001Xq7vZ"
    [seen] = graph.requests
    assert graph.problems == []
    assert seen.path == f"/{PAGE_ID}/messages"
    assert seen.headers["Authorization"] == f"Bearer {graph.page_token}"
    assert seen.json == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "Your order ships today."},
    }


def test_an_instagram_reply_goes_through_the_linked_page_to_the_igsid(graph, instagram):
    response = instagram.post(outbound(f"ig:{IG_ACCOUNT_ID}:{IGSID}", "Your order ships today."))
    assert _channel_id(response) == "aWdfZAG100001Xq7vZ"
    [seen] = graph.requests
    assert graph.problems == []
    assert seen.path == "/me/messages"  # the Page of the token, linked to the Instagram account
    assert seen.headers["Authorization"] == f"Bearer {graph.page_token}"
    assert seen.json == {"recipient": {"id": IGSID}, "message": {"text": "Your order ships today."}}


def test_a_twilio_reply_goes_from_our_number_to_the_customers_with_basic_auth(twilio, twilio_sender):
    response = twilio_sender.post(outbound(f"twilio:{OUR_WHATSAPP}/{CUSTOMER_WHATSAPP}", "Ships today."))
    assert _channel_id(response) == f"SM{1:032x}"
    [seen] = twilio.requests
    assert twilio.problems == []
    assert seen.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    token = base64.b64encode(f"{ACCOUNT_SID}:{twilio.auth_token}".encode()).decode()
    assert seen.headers["Authorization"] == f"Basic {token}"
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert seen.form == {"From": OUR_WHATSAPP, "To": CUSTOMER_WHATSAPP, "Body": "Ships today."}


def test_an_sms_thread_replies_between_the_plain_numbers(twilio, twilio_sender):
    twilio_sender.post(outbound("twilio:+14155550100/+15551234567", "Ships today."))
    assert twilio.requests[0].form["From"] == "+14155550100"
    assert twilio.requests[0].form["To"] == "+15551234567"


# -- mark as read --------------------------------------------------------------------------------------------


def test_marking_read_posts_the_newest_wamid_once(graph):
    marker = WhatsAppReadMarker(graph.base_url, graph.whatsapp_token, timeout_s=5)
    try:
        response = marker.post(read_event(f"wa:{PHONE_NUMBER_ID}:{WA_ID}", ["wamid.AAA1", "wamid.AAA2"]))
    finally:
        marker.close()
    assert response.status_code == 200
    [seen] = graph.requests
    assert graph.problems == []
    assert seen.path == f"/{PHONE_NUMBER_ID}/messages"
    assert seen.headers["Authorization"] == f"Bearer {graph.whatsapp_token}"
    assert seen.json == {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.AAA2"}


def test_messages_without_a_wamid_have_nothing_to_mark_and_call_nothing(graph):
    marker = WhatsAppReadMarker(graph.base_url, graph.whatsapp_token, timeout_s=5)
    try:
        response = marker.post(read_event(f"wa:{PHONE_NUMBER_ID}:{WA_ID}", []))
    finally:
        marker.close()
    assert response.status_code == 200 and graph.requests == []


# -- refusals: permanent (no retry) vs. retried --------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "code", "says"),
    [
        (WA_REENGAGEMENT, "131047", WINDOW_SENTENCE),
        (WA_UNDELIVERABLE, "131026", "WhatsApp could not deliver the message (131026)"),
        (WA_UNSUPPORTED, "131051", "WhatsApp does not support this message type (131051)"),
        (WA_INVALID_PARAMETER, "100", "WhatsApp refused the request as invalid (100)"),
        (WA_TOKEN_EXPIRED, "190", "REPLYDESK_WHATSAPP_ACCESS_TOKEN"),
        (
            (400, graph_error(132001, "(#132001) Template name does not exist in the translation")),
            "132001",
            "WhatsApp refused the template (132001)",
        ),
    ],
    ids=["131047-window", "131026-undeliverable", "131051-unsupported", "100-invalid", "190-token", "132001"],
)
def test_a_whatsapp_refusal_no_retry_fixes_is_permanent_with_its_code(graph, whatsapp, answer, code, says):
    graph.fail_next(*answer)
    with pytest.raises(PermanentFailure) as refused:
        whatsapp.post(outbound(f"wa:{PHONE_NUMBER_ID}:{WA_ID}"))
    assert refused.value.code == code
    assert says in refused.value.reason


def test_the_24_hour_refusal_tells_the_agent_exactly_what_to_do(graph, whatsapp):
    graph.fail_next(*WA_REENGAGEMENT)
    with pytest.raises(PermanentFailure) as refused:
        whatsapp.post(outbound(f"wa:{PHONE_NUMBER_ID}:{WA_ID}"))
    assert refused.value.reason == WINDOW_SENTENCE


@pytest.mark.parametrize(
    ("answer", "code", "says"),
    [
        (FB_OUTSIDE_WINDOW, "10", "more than 24 hours since the customer's last message (10/2018278)"),
        (FB_UNAVAILABLE, "551", "can't be reached on Messenger"),
        (
            (400, graph_error(100, "(#100) No matching user found", subcode=2018001)),
            "100",
            "no such customer",
        ),
    ],
    ids=["window", "unavailable", "no-user"],
)
def test_a_messenger_refusal_no_retry_fixes_is_permanent(graph, messenger, answer, code, says):
    graph.fail_next(*answer)
    with pytest.raises(PermanentFailure) as refused:
        messenger.post(outbound(f"fb:{PAGE_ID}:{PSID}"))
    assert refused.value.code == code and says in refused.value.reason


def test_instagrams_window_refusal_is_permanent_and_named_for_instagram(graph, instagram):
    graph.fail_next(*IG_OUTSIDE_WINDOW)
    with pytest.raises(PermanentFailure) as refused:
        instagram.post(outbound(f"ig:{IG_ACCOUNT_ID}:{IGSID}"))
    assert refused.value.code == "10"
    assert refused.value.reason.startswith("Instagram refused the reply: more than 24 hours")


@pytest.mark.parametrize(
    ("answer", "code", "says"),
    [
        (TW_UNSUBSCRIBED, "21610", "unsubscribed from this number by replying STOP (21610)"),
        (TW_INVALID_TO, "21211", "not a valid phone number (21211)"),
        (TW_OUTSIDE_WINDOW, "63016", "more than 24 hours since the customer's last message (63016)"),
        (twilio_error(401, 20003, "Authenticate"), "20003", "REPLYDESK_TWILIO_AUTH_TOKEN"),
    ],
    ids=["21610-stop", "21211-invalid-to", "63016-window", "20003-auth"],
)
def test_a_twilio_refusal_no_retry_fixes_is_permanent(twilio, twilio_sender, answer, code, says):
    twilio.fail_next(*answer)
    with pytest.raises(PermanentFailure) as refused:
        twilio_sender.post(outbound(f"twilio:{OUR_WHATSAPP}/{CUSTOMER_WHATSAPP}"))
    assert refused.value.code == code and says in refused.value.reason


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (WA_THROUGHPUT, "WhatsApp rate limit (130429)"),
        (WA_SPAM_LIMIT, "WhatsApp rate limit (131048)"),
        (WA_ACCOUNT_LIMIT, "WhatsApp rate limit (80007)"),
        (WA_SOMETHING_WRONG, "WhatsApp temporary error (131000)"),
        ((503, "<html>Service Unavailable</html>"), "WhatsApp answered HTTP 503 without a Graph error"),
    ],
    ids=["130429", "131048", "80007", "131000-500", "503-no-body"],
)
def test_whatsapp_rate_limits_and_outages_are_answered_for_a_retry(graph, whatsapp, answer, says):
    graph.fail_next(*answer)
    response = whatsapp.post(outbound(f"wa:{PHONE_NUMBER_ID}:{WA_ID}"))
    assert not response.is_success
    assert says in response.json()["error"]


@pytest.mark.parametrize("answer", [FB_RATE_LIMIT, FB_TEMPORARY], ids=["613", "1200"])
def test_messenger_rate_limits_and_temporary_failures_are_retried(graph, messenger, answer):
    graph.fail_next(*answer)
    assert not messenger.post(outbound(f"fb:{PAGE_ID}:{PSID}")).is_success


def test_twilios_too_many_requests_is_retried(twilio, twilio_sender):
    twilio.fail_next(*TW_TOO_MANY)
    response = twilio_sender.post(outbound(f"twilio:{OUR_WHATSAPP}/{CUSTOMER_WHATSAPP}"))
    assert response.status_code == 429 and "20429" in response.json()["error"]


# -- conversation ids the sender cannot reach ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender_name", "external_id", "expected"),
    [
        (
            "whatsapp",
            "wa:5215512345678",
            "must look like wa:{phone_number_id}:{wa_id or business-scoped user id}",
        ),
        (
            "whatsapp",
            "wa:notanid:5215512345678",
            "WhatsApp cannot send to conversation 'wa:notanid:5215512345678'",
        ),
        ("whatsapp", f"wa:{PHONE_NUMBER_ID}:ana maria", "WhatsApp cannot send to conversation"),
        ("whatsapp", f"wa:{PHONE_NUMBER_ID}:ana", "neither a phone number nor a business-scoped user id"),
        (
            "messenger",
            f"fb:{PAGE_ID}",
            "Messenger cannot send to conversation 'fb:104511402404957': its id must look like "
            "fb:{page_id}:{psid}",
        ),
        ("messenger", f"fb:{PAGE_ID}:abc", "must look like fb:{page_id}:{psid}"),
        (
            "instagram",
            "ig::123",
            "Instagram cannot send to conversation 'ig::123': its id must look like "
            "ig:{ig_account_id}:{igsid}",
        ),
        ("twilio", "twilio:+14155550100", "its id must look like twilio:{our address}/{customer address}"),
        ("twilio", "twilio:+14155550100/", "Twilio cannot send to conversation"),
    ],
)
def test_a_conversation_id_the_channel_cannot_reach_fails_for_good_with_the_expected_shape(
    request, graph, twilio, sender_name, external_id, expected
):
    sender = request.getfixturevalue(sender_name if sender_name != "twilio" else "twilio_sender")
    assert sender.accepts(external_id) is False
    with pytest.raises(PermanentFailure) as refused:
        sender.post(outbound(external_id))
    assert refused.value.code is None and expected in refused.value.reason
    assert graph.requests == [] and twilio.requests == []


def test_an_envelope_without_a_conversation_fails_for_good_saying_what_is_missing(graph, whatsapp):
    envelope = outbound(f"wa:{PHONE_NUMBER_ID}:{WA_ID}")
    del envelope["data"]["conversation"]
    with pytest.raises(PermanentFailure) as refused:
        whatsapp.post(envelope)
    assert "message.outbound event is malformed: conversation: Field required" in refused.value.reason


def test_the_senders_accept_the_conversation_ids_the_channel_webhooks_make(whatsapp, messenger, instagram):
    assert whatsapp.accepts(f"wa:{PHONE_NUMBER_ID}:{WA_ID}")
    assert whatsapp.accepts(f"wa:{PHONE_NUMBER_ID}:{BSUID}")
    assert messenger.accepts(f"fb:{PAGE_ID}:{PSID}")
    assert instagram.accepts(f"ig:{IG_ACCOUNT_ID}:{IGSID}")


# -- through the outbox dispatcher ---------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path, _migrated_sqlite: Path) -> Iterator[Database]:
    target = tmp_path / "senders.db"
    shutil.copyfile(_migrated_sqlite, target)
    database = Database(f"sqlite:///{target}")
    yield database
    database.dispose()


class Outcomes:
    """The dispatcher's hooks, recorded: what the workflow would be told."""

    def __init__(self) -> None:
        self.delivered: list[tuple[int, dict[str, Any]]] = []
        self.failed: list[tuple[int, str, str | None]] = []

    def on_delivered(self, s: Any, event: Event, response: httpx.Response) -> None:
        self.delivered.append((event.id, response.json()))

    def on_failed(self, s: Any, event: Event, error: str, code: str | None) -> None:
        self.failed.append((event.id, error, code))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def outcomes() -> Outcomes:
    return Outcomes()


@pytest.fixture
def dispatcher(db, clock, outcomes, whatsapp, twilio_sender) -> Iterator[WebhookDispatcher]:
    d = WebhookDispatcher(
        db, clock, secret=None, max_attempts=3, backoff_s=1.0, backoff_max_s=5.0, timeout_s=5
    )
    d.transports[whatsapp.prefix] = whatsapp
    d.transports[twilio_sender.prefix] = twilio_sender
    d.on_delivered["message.outbound"] = outcomes.on_delivered
    d.on_failed["message.outbound"] = outcomes.on_failed
    yield d
    d.client.close()


def _queue(db: Database, clock: ManualClock, envelope: dict[str, Any], deliver_to: str) -> int:
    """Put an event in the outbox for `deliver_to`, as `queue_outbound` does."""
    with db.session() as s:
        event = EventLog(db, None).emit(
            s, envelope["type"], envelope["data"], now=clock.now(), deliver_to=deliver_to
        )
        return event.id


def _delivery(db: Database, event_id: int) -> WebhookDelivery:
    with db.session() as s:
        row = s.scalars(select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)).one()
        s.expunge(row)
        return row


def test_the_dispatcher_delivers_through_the_channel_and_hands_on_the_wamid(
    db, clock, graph, dispatcher, outcomes
):
    event_id = _queue(db, clock, outbound(f"wa:{PHONE_NUMBER_ID}:{WA_ID}"), "wa:")
    assert dispatcher.run_once() == 1
    assert _delivery(db, event_id).status == "delivered"
    assert outcomes.delivered == [
        (event_id, {"channel_message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI00001"})
    ]
    assert len(graph.requests) == 1 and graph.problems == []


def test_a_permanent_refusal_fails_the_delivery_at_once_with_its_code(db, clock, graph, dispatcher, outcomes):
    graph.fail_next(*WA_REENGAGEMENT)
    event_id = _queue(db, clock, outbound(f"wa:{PHONE_NUMBER_ID}:{WA_ID}"), "wa:")
    dispatcher.run_once()
    clock.advance(minutes=10)
    assert dispatcher.run_once() == 0  # nothing left to retry
    row = _delivery(db, event_id)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, WINDOW_SENTENCE)
    assert outcomes.failed == [(event_id, WINDOW_SENTENCE, "131047")]
    assert len(graph.requests) == 1


def test_a_malformed_conversation_id_fails_at_once_with_a_clear_reason(
    db, clock, graph, dispatcher, outcomes
):
    event_id = _queue(db, clock, outbound("wa:5215512345678"), "wa:")
    dispatcher.run_once()
    [(failed_id, error, code)] = outcomes.failed
    assert failed_id == event_id and code is None
    assert error == (
        "WhatsApp cannot send to conversation 'wa:5215512345678': its id must look like "
        "wa:{phone_number_id}:{wa_id or business-scoped user id}"
    )
    assert _delivery(db, event_id).attempts == 1 and graph.requests == []


def test_an_outage_is_retried_with_backoff_and_then_delivered(db, clock, graph, dispatcher, outcomes):
    graph.fail_next(*WA_SOMETHING_WRONG)
    event_id = _queue(db, clock, outbound(f"wa:{PHONE_NUMBER_ID}:{WA_ID}"), "wa:")
    dispatcher.run_once()
    row = _delivery(db, event_id)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
    assert row.last_error == "HTTP 500: WhatsApp temporary error (131000): (#131000) Something went wrong"
    assert dispatcher.run_once() == 0  # not due before its backoff
    clock.advance(seconds=2)
    dispatcher.run_once()
    assert _delivery(db, event_id).status == "delivered"
    assert outcomes.failed == [] and len(outcomes.delivered) == 1


def test_a_rate_limit_that_outlasts_the_retries_fails_without_a_code(db, clock, graph, dispatcher, outcomes):
    graph.fail_next(*WA_THROUGHPUT, times=3)
    event_id = _queue(db, clock, outbound(f"wa:{PHONE_NUMBER_ID}:{WA_ID}"), "wa:")
    for _ in range(3):
        dispatcher.run_once()
        clock.advance(seconds=10)
    [(failed_id, error, code)] = outcomes.failed
    assert failed_id == event_id and code is None
    assert error.startswith("HTTP 400: WhatsApp rate limit (130429)")
    assert len(graph.requests) == 3


def test_credentials_never_reach_a_stored_or_logged_error(
    db, clock, graph, twilio, dispatcher, outcomes, caplog
):
    """The platform echoing the token it refused, a Twilio refusal, and an unreachable API: neither token
    appears in the deliveries' errors, the failed hook or any log record."""
    echoed = graph_error(
        190, f"Invalid OAuth access token - Cannot parse access token {graph.whatsapp_token}"
    )
    graph.fail_next(401, echoed)
    twilio.fail_next(400, {"code": 21211, "message": f"Invalid 'To' ({twilio.auth_token})", "status": 400})
    events = [
        _queue(db, clock, outbound(f"wa:{PHONE_NUMBER_ID}:{WA_ID}"), "wa:"),
        _queue(db, clock, outbound(f"twilio:{OUR_WHATSAPP}/{CUSTOMER_WHATSAPP}"), "twilio:"),
    ]
    with caplog.at_level(logging.DEBUG):
        dispatcher.run_once()
        twilio.stop()  # unreachable now: a connection error, retried
        events.append(_queue(db, clock, outbound(f"twilio:{OUR_WHATSAPP}/{CUSTOMER_WHATSAPP}"), "twilio:"))
        dispatcher.run_once()
    errors = [_delivery(db, e).last_error or "" for e in events] + [e for _, e, _ in outcomes.failed]
    assert [code for _, _, code in outcomes.failed] == ["190", "21211"]
    assert "ConnectError" in errors[2]
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for secret in (graph.whatsapp_token, twilio.auth_token):
        assert all(secret not in e for e in errors)
        assert secret not in logged
    assert "***" in errors[0]


# -- registration (service/container.py) ---------------------------------------------------------------------


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        cache_dir=REPO_ROOT / "data" / "cache",
        llm_base_url=None,
        database_url=f"sqlite:///{tmp_path / 'container.db'}",
        workers_enabled=False,
        **values,
    )


ALL_CREDENTIALS = {
    "whatsapp_access_token": "EAAwa",
    "messenger_page_access_token": "EAApage",
    "twilio_account_sid": ACCOUNT_SID,
    "twilio_auth_token": "tok",
}


def test_each_channel_listed_with_credentials_gets_its_sender_under_its_prefix(tmp_path):
    settings = _settings(
        tmp_path, channel_send=["whatsapp", "messenger", "instagram", "twilio"], **ALL_CREDENTIALS
    )
    container = Container(settings)
    try:
        transports = container.workflow.dispatcher.transports
        assert {prefix: type(t).__name__ for prefix, t in transports.items()} == {
            "wa:": "WhatsAppCloudSender",
            "wa-read:": "WhatsAppReadMarker",
            "fb:": "MessengerSender",
            "ig:": "InstagramSender",
            "twilio:": "TwilioSender",
        }
        assert container.warnings() == []
    finally:
        container.close()
        container.db.dispose()


def test_without_mark_read_whatsapp_sends_but_marks_nothing(tmp_path):
    settings = _settings(tmp_path, channel_send=["whatsapp"], whatsapp_mark_read=False, **ALL_CREDENTIALS)
    assert [s.prefix for s in channel_senders(settings)] == ["wa:"]


def test_nothing_is_sent_through_a_channel_not_listed(tmp_path):
    assert channel_senders(_settings(tmp_path, **ALL_CREDENTIALS)) == []


def test_a_channel_listed_without_credentials_is_not_registered_and_is_warned_about(tmp_path):
    settings = _settings(tmp_path, channel_send=["whatsapp", "twilio"], twilio_account_sid=ACCOUNT_SID)
    assert channel_senders(settings) == []
    warnings = Container(settings).warnings()
    assert [w["code"] for w in warnings] == [
        "channel_send_whatsapp_without_credentials",
        "channel_send_twilio_without_credentials",
    ]
    assert "REPLYDESK_WHATSAPP_ACCESS_TOKEN is not set" in warnings[0]["message"]
    assert "REPLYDESK_TWILIO_AUTH_TOKEN is not set" in warnings[1]["message"]
    assert missing_credentials(_settings(tmp_path, channel_send=["instagram"], **ALL_CREDENTIALS)) == []


# -- the workflow end to end: an agent's reply, sent on WhatsApp ---------------------------------------------


AGENT = Principal(key_id="k-agent", name="ana", role=Role.agent)


@pytest.fixture
def workflow_on_whatsapp(tmp_path, _migrated_sqlite, graph) -> Iterator[Container]:
    shutil.copyfile(_migrated_sqlite, tmp_path / "container.db")
    settings = _settings(
        tmp_path,
        channel_send=["whatsapp"],
        whatsapp_access_token=graph.whatsapp_token,
        meta_graph_url=graph.base_url,
        webhook_max_attempts=3,
    )
    container = Container(settings)
    container.clock = ManualClock()
    try:
        yield container
    finally:
        container.close()
        container.db.dispose()


def _reply_on_whatsapp(container: Container, text: str) -> int:
    wf = container.workflow
    stored = wf.enqueue(
        MessageCreate(
            channel="whatsapp",
            conversation_external_id=f"wa:{PHONE_NUMBER_ID}:{WA_ID}",
            customer=CustomerIn(id=WA_ID, name="Ana", locale="es-MX"),
            text="¿Dónde está mi pedido 4471?",
            sent_at=container.clock.now(),
            channel_message_id="wamid.IN1",
        )
    )
    decision = wf.reply(stored.conversation_id, ReplyRequest(text=text), AGENT)
    assert decision.message is not None
    return decision.message.id


def _message(container: Container, message_id: int) -> Message:
    with container.db.session() as s:
        msg = s.get(Message, message_id)
        assert msg is not None
        s.expunge(msg)
        return msg


def test_an_agents_reply_in_a_whatsapp_conversation_is_sent_and_marked_sent_with_its_wamid(
    workflow_on_whatsapp, graph
):
    message_id = _reply_on_whatsapp(workflow_on_whatsapp, "Tu pedido sale hoy.")
    workflow_on_whatsapp.workflow.dispatcher.run_once()
    msg = _message(workflow_on_whatsapp, message_id)
    assert (msg.status, msg.channel_message_id) == ("sent", "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI00001")
    assert graph.requests[0].json["text"]["body"] == "Tu pedido sale hoy."
    assert graph.problems == []


def test_a_reply_whatsapp_refuses_after_24_hours_fails_with_the_code_and_what_to_do(
    workflow_on_whatsapp, graph
):
    graph.fail_next(*WA_REENGAGEMENT)
    message_id = _reply_on_whatsapp(workflow_on_whatsapp, "Tu pedido sale hoy.")
    workflow_on_whatsapp.workflow.dispatcher.run_once()
    msg = _message(workflow_on_whatsapp, message_id)
    assert (msg.status, msg.error_code, msg.error) == ("failed", "131047", WINDOW_SENTENCE)
    assert len(graph.requests) == 1
