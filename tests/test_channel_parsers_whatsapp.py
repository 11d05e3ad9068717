"""WhatsApp Cloud API webhooks as Meta documents them become customer messages (every content type an agent
needs), receipts with error codes and replies sent from the WhatsApp Business app; what ReplyDesk does not
act on is recorded as skipped, never lost with the rest of its batch. Payloads: tests/data/channels/, each
citing its Meta doc section."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.errors import InvalidInput
from service.integrations.adapters.meta import parse_whatsapp
from service.workflow.ingest import is_reaction
from service.workflow.models import ReceiptStatus

DATA = Path(__file__).parent / "data" / "channels"
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
THREAD = "wa:106540352242922:16505551234"


def fixture(name: str) -> dict[str, Any]:
    doc = json.loads((DATA / name).read_text(encoding="utf-8"))
    assert doc["_doc"]  # every fixture names the doc section it follows
    return doc["payload"]


def test_a_text_reply_keeps_the_quoted_message_and_the_ad_it_came_from():
    out = parse_whatsapp(fixture("whatsapp_text_reply_referral.json"), NOW)
    (msg,) = out.messages
    assert out.channel == "whatsapp" and out.skipped == []
    assert msg.conversation_external_id == THREAD
    assert msg.customer.id == "16505551234" and msg.customer.name == "Sheena Nelson"
    assert msg.customer.country == "US"
    assert msg.text == "Does it come in another colour?"
    assert msg.sent_at == datetime.fromtimestamp(1739321024, tz=UTC)
    assert msg.reply_to == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI4QjgyNkJFNjNCMzc1RDdDNTQA"
    (ad,) = msg.attachments
    assert ad.type == "referral" and ad.url == "https://fb.me/3cr4Wqqkv" and ad.caption == "Chat with us"
    assert ad.data is not None and ad.data["source_type"] == "ad" and ad.data["ctwa_clid"].startswith("Aff-")


def test_a_user_who_hides_their_number_is_ingested_under_their_business_scoped_id():
    out = parse_whatsapp(fixture("whatsapp_username_bsuid.json"), NOW)
    (msg,) = out.messages
    assert msg.customer.id == "US.13491208655302741918"
    assert msg.conversation_external_id == "wa:106540352242922:US.13491208655302741918"
    assert msg.customer.name == "Pablo Morales" and msg.customer.country == "US"
    (receipt,) = out.receipts  # a status with recipient_user_id and no recipient_id is still a receipt
    assert receipt.status is ReceiptStatus.delivered
    assert receipt.channel_message_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"


def _by_id(out) -> dict[str, Any]:
    return {m.channel_message_id: m for m in out.messages}


def test_every_content_type_becomes_something_an_agent_can_see_and_one_bad_message_loses_no_other():
    out = parse_whatsapp(fixture("whatsapp_message_types.json"), NOW)
    msgs = _by_id(out)
    assert len(msgs) == 13 and len(out.skipped) == 2  # 15 in the batch
    assert [(s.type, "from" in s.reason) for s in out.skipped if s.type == "whatsapp.malformed"] == [
        ("whatsapp.malformed", True)
    ]
    (unsupported,) = [s for s in out.skipped if s.type == "whatsapp.unsupported"]
    assert "131051" in unsupported.reason and "Message type unknown" in unsupported.reason


def test_reactions_name_their_target_and_an_empty_emoji_means_removed():
    msgs = _by_id(parse_whatsapp(fixture("whatsapp_message_types.json"), NOW))
    react, unreact = msgs["wamid.REACT"], msgs["wamid.UNREACT"]
    assert is_reaction(react) and is_reaction(unreact)
    assert react.text == "" and react.reply_to == "wamid.OUT1"
    assert react.attachments[0].data == {"emoji": "👍", "message_id": "wamid.OUT1"}
    assert unreact.attachments[0].data == {"emoji": "", "message_id": "wamid.OUT1"}


def test_contact_cards_orders_and_flow_answers_keep_their_structured_data():
    msgs = _by_id(parse_whatsapp(fixture("whatsapp_message_types.json"), NOW))
    (card,) = msgs["wamid.CONTACTS"].attachments
    assert card.type == "contact" and card.caption == "Barbara J. Johnson"
    assert card.data == {
        "name": "Barbara J. Johnson",
        "phones": [{"phone": "+1 (940) 555-1234"}, {"phone": "+1 (650) 555-1234", "wa_id": "16505551234"}],
        "emails": ["bjohnson@example.com"],
        "org": "Social Tsunami",
    }
    order = msgs["wamid.ORDER"]
    assert order.text == "Please gift wrap it"
    assert order.attachments[0].type == "order"
    assert order.attachments[0].data == {
        "catalog_id": "194836987003835",
        "product_items": [
            {"product_retailer_id": "di9ozbzfi4", "quantity": 2, "item_price": 30, "currency": "USD"}
        ],
    }
    (form,) = msgs["wamid.FLOW"].attachments
    assert form.type == "form" and form.caption == "Sent"
    assert form.data == {
        "flow_token": "AQAAAAACS5FpgQ_cAAAAAD0QI3s.",
        "delivery_date": "2026-02-01",
        "size": "M",
    }


def test_button_and_list_replies_keep_id_title_and_description_and_template_buttons_their_payload():
    msgs = _by_id(parse_whatsapp(fixture("whatsapp_message_types.json"), NOW))
    button, listed, quick = msgs["wamid.BTN"], msgs["wamid.LIST"], msgs["wamid.QUICK"]
    assert button.text == "Track my order"
    assert button.attachments[0].type == "button"
    assert button.attachments[0].data == {"id": "track-order", "title": "Track my order"}
    assert listed.attachments[0].data == {
        "id": "priority_express",
        "title": "Express",
        "description": "Next day to most cities",
    }
    assert quick.text == "Stop promotions" and quick.reply_to == "wamid.TEMPLATE1"
    assert quick.attachments[0].data == {"payload": "STOP_PROMOS", "text": "Stop promotions"}


def test_media_keep_file_name_and_mime_type_and_locations_their_name_and_address():
    msgs = _by_id(parse_whatsapp(fixture("whatsapp_message_types.json"), NOW))
    (doc,) = msgs["wamid.DOC"].attachments
    assert (doc.type, doc.url, doc.filename, doc.mime_type, doc.caption) == (
        "file",
        "whatsapp-media:2272869999716018",
        "invoice-4471.pdf",
        "application/pdf",
        "My invoice",
    )
    assert msgs["wamid.DOC"].text == "My invoice"
    (img,) = msgs["wamid.IMG"].attachments
    assert img.type == "image" and img.mime_type == "image/jpeg"
    (voice,) = msgs["wamid.VOICE"].attachments
    assert (
        voice.type == "audio"
        and voice.mime_type == "audio/ogg; codecs=opus"
        and voice.data == {"voice": True}
    )
    (sticker,) = msgs["wamid.STICKER"].attachments
    assert sticker.type == "sticker" and sticker.mime_type == "image/webp"
    (loc,) = msgs["wamid.LOC"].attachments
    assert (
        loc.type == "location" and loc.url == "geo:37.483307,-122.148981" and loc.caption == "Main Warehouse"
    )
    assert loc.data == {
        "name": "Main Warehouse",
        "address": "1 Hacker Way, Menlo Park, CA 94025",
        "url": "https://www.example.com/warehouse",
    }


def test_statuses_become_receipts_and_a_failure_keeps_meta_s_code_title_and_details():
    out = parse_whatsapp(fixture("whatsapp_statuses.json"), NOW)
    assert [(r.channel_message_id, r.status) for r in out.receipts] == [
        ("wamid.OUT1", ReceiptStatus.sent),
        ("wamid.OUT1", ReceiptStatus.delivered),
        ("wamid.OUT1", ReceiptStatus.read),
        ("wamid.OUT2", ReceiptStatus.failed),
    ]
    failed = out.receipts[-1]
    assert failed.error_code == "131047"
    assert failed.error is not None and failed.error.startswith(
        "Re-engagement message: Message failed to send"
    )
    assert failed.at == datetime.fromtimestamp(1750263790, tz=UTC)
    assert all(r.error is None and r.error_code is None for r in out.receipts[:3])


def test_messages_sent_from_the_business_app_are_replies_on_the_customer_s_thread():
    out = parse_whatsapp(fixture("whatsapp_smb_message_echoes.json"), NOW)
    assert out.messages == []
    text, image = out.replies
    assert text.conversation_external_id == THREAD  # `to` "+1650..." is the wa_id thread of incoming messages
    assert text.text.startswith("Here's the info you requested!")
    assert text.channel_message_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA"
    assert text.sent_at == datetime.fromtimestamp(1739321024, tz=UTC)
    assert image.attachments[0].url == "whatsapp-media:1479537139650973" and image.text == "Your parcel label"
    assert [s.type for s in out.skipped] == ["whatsapp.echo_reaction", "whatsapp.field"]
    assert "message_template_status_update" in out.skipped[1].reason


def _one_message(**message: Any) -> dict[str, Any]:
    value = {"metadata": {"phone_number_id": "106540352242922"}, "messages": [message]}
    return {
        "object": "whatsapp_business_account",
        "entry": [{"changes": [{"field": "messages", "value": value}]}],
    }


def test_a_missing_or_broken_timestamp_is_now_not_an_error():
    for stamp in ({}, {"timestamp": "yesterday"}):
        out = parse_whatsapp(
            _one_message(
                **{"from": "16505551234", "id": "wamid.X", "type": "text"}, **stamp, text={"body": "hi"}
            ),
            NOW,
        )
        assert out.messages[0].sent_at == NOW


def test_unknown_types_and_notices_are_skipped_with_a_reason():
    for kind, skipped in (("system", "whatsapp.system"), ("ephemeral", "whatsapp.unsupported")):
        out = parse_whatsapp(_one_message(**{"from": "16505551234", "id": "wamid.Y", "type": kind}), NOW)
        assert out.messages == [] and [s.type for s in out.skipped] == [skipped]
        assert out.skipped[0].reason


def test_a_payload_of_another_platform_is_invalid_input():
    with pytest.raises(InvalidInput):
        parse_whatsapp({"object": "page", "entry": []}, NOW)
