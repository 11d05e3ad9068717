"""Chatwoot webhooks as Chatwoot sends them: a customer's `message_created` becomes a message with its
attachments (locations, files, contact cards, links) and quoted message; an agent's reply typed in Chatwoot
becomes a reply made outside ReplyDesk; notes, bot and automated messages are skipped; a resolved or reopened
conversation becomes a status change; delivery updates of sent messages become receipts. Payloads:
tests/data/channels/, each citing its Chatwoot doc or source."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.errors import InvalidInput
from service.integrations.adapters.chatwoot import parse_chatwoot
from service.integrations.adapters.parsed import StatusChange
from service.workflow.models import ReceiptStatus

DATA = Path(__file__).parent / "data" / "channels"
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def fixture(name: str) -> dict[str, Any]:
    doc = json.loads((DATA / name).read_text(encoding="utf-8"))
    assert doc["_doc"]  # every fixture names the doc section it follows
    return doc["payload"]


def test_an_incoming_message_keeps_location_files_contact_cards_links_and_the_quoted_message():
    parsed = parse_chatwoot(fixture("chatwoot_message_created_incoming.json"), NOW)
    assert (parsed.account_id, parsed.conversation_id) == (7, 42)
    out = parsed.webhook
    (msg,) = out.messages
    assert out.channel == "whatsapp" and msg.channel.value == "whatsapp"
    assert msg.conversation_external_id == "chatwoot:7:42" and msg.channel_message_id == "chatwoot:7:1201"
    assert msg.customer.id == "chatwoot:7:14" and msg.customer.name == "Ana Ruiz"
    assert (msg.customer.locale, msg.customer.country) == ("es", "MX")
    assert msg.sent_at == datetime(2021, 7, 23, 18, 2, 48, tzinfo=UTC)
    assert msg.reply_to == "chatwoot:7:1188"
    place, photo, card, link = msg.attachments
    assert place.type == "location" and place.url == "geo:19.4326,-99.1332"
    assert place.caption == "Plaza de la Constitución"
    assert place.data == {"latitude": 19.4326, "longitude": -99.1332, "title": "Plaza de la Constitución"}
    assert photo.type == "image" and photo.filename == "damaged box.jpg"
    assert photo.url is not None and photo.url.startswith(
        "https://chatwoot.example.com/rails/active_storage/"
    )
    assert card.type == "contact" and card.caption == "+52 55 1234 5678"
    assert (link.type, link.url, link.caption) == (
        "link",
        "https://track.example.com/A12345",
        "Tracking page",
    )


def test_an_agent_reply_typed_in_chatwoot_is_a_reply_made_outside_replydesk():
    parsed = parse_chatwoot(fixture("chatwoot_message_created_outgoing.json"), NOW)
    out = parsed.webhook
    assert out.messages == [] and out.skipped == []
    (reply,) = out.replies
    assert reply.conversation_external_id == "chatwoot:7:42" and reply.channel.value == "whatsapp"
    assert reply.text == "Hola Ana, your replacement ships today." and reply.author == "John"
    # the same id ChatwootReplies records for what ReplyDesk posts: the store can recognise its own sends
    assert reply.channel_message_id == "chatwoot:7:1202"


@pytest.mark.parametrize(
    ("change", "skipped"),
    [
        ({"private": True}, "chatwoot.private_note"),
        ({"sender": {"id": 2, "name": "ReplyDesk", "type": "agent_bot"}}, "chatwoot.bot_message"),
        ({"content_attributes": {"automation_rule_id": 5}}, "chatwoot.automated"),
        ({"message_type": "template", "content_type": "input_csat"}, "chatwoot.template"),
        ({"message_type": "activity", "content": "Conversation was resolved by John"}, "chatwoot.activity"),
    ],
)
def test_notes_bot_automated_and_chatwoot_generated_messages_are_skipped(change, skipped):
    payload = {**fixture("chatwoot_message_created_outgoing.json"), **change}
    out = parse_chatwoot(payload, NOW).webhook
    assert out.replies == [] and out.messages == []
    assert [s.type for s in out.skipped] == [skipped]


def test_resolving_or_reopening_a_conversation_is_a_status_change():
    payload = fixture("chatwoot_conversation_status_changed.json")
    out = parse_chatwoot(payload, NOW).webhook
    assert out.status_changes == [
        StatusChange("chatwoot:7:42", "resolved", datetime.fromtimestamp(1627063521.25, tz=UTC))
    ]
    reopened = parse_chatwoot({**payload, "status": "open"}, NOW).webhook
    assert reopened.status_changes[0].status == "open"
    snoozed = parse_chatwoot({**payload, "status": "snoozed"}, NOW).webhook
    assert snoozed.status_changes == [] and snoozed.skipped[0].type == "chatwoot.conversation_status_changed"


def test_a_status_change_without_any_account_id_is_skipped_as_malformed():
    payload = copy.deepcopy(fixture("chatwoot_conversation_status_changed.json"))
    payload["messages"] = []
    out = parse_chatwoot(payload, NOW).webhook
    assert out.status_changes == [] and [s.type for s in out.skipped] == ["chatwoot.malformed"]


def test_delivery_updates_of_sent_messages_are_receipts_and_failures_keep_the_channel_error():
    payload = {
        **fixture("chatwoot_message_created_outgoing.json"),
        "event": "message_updated",
        "status": "failed",
        "content_attributes": {"external_error": "(#131047) Re-engagement message"},
    }
    out = parse_chatwoot(payload, NOW).webhook
    (receipt,) = out.receipts
    assert (receipt.channel_message_id, receipt.status) == ("chatwoot:7:1202", ReceiptStatus.failed)
    assert receipt.error == "(#131047) Re-engagement message" and out.channel == "whatsapp"
    edited = parse_chatwoot({**payload, "status": "sent"}, NOW).webhook
    assert edited.receipts == [] and edited.skipped[0].type == "chatwoot.message_updated"


def test_other_events_are_skipped_by_name_and_a_body_without_event_is_invalid():
    created = {**fixture("chatwoot_conversation_status_changed.json"), "event": "conversation_created"}
    assert [s.type for s in parse_chatwoot(created, NOW).webhook.skipped] == ["chatwoot.conversation_created"]
    with pytest.raises(InvalidInput):
        parse_chatwoot({"object": "page"}, NOW)
