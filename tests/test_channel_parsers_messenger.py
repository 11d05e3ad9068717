"""Messenger (`object: page`) and Instagram (`object: instagram`) webhooks as Meta documents them: customer
messages with their attachments, postbacks and reactions; echoes as replies made outside ReplyDesk on the
customer's thread; deliveries (with or without mids, never with a timestamp) and reads as receipts and
watermarks; standby (handover) events counted as skipped. Payloads: tests/data/channels/, each citing its
Meta doc section."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.errors import InvalidInput
from service.integrations.adapters.meta import parse_messenger
from service.integrations.adapters.parsed import Watermark
from service.workflow.ingest import is_reaction
from service.workflow.models import MessageCreate, ReceiptStatus

DATA = Path(__file__).parent / "data" / "channels"
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def fixture(name: str) -> dict[str, Any]:
    doc = json.loads((DATA / name).read_text(encoding="utf-8"))
    assert doc["_doc"]  # every fixture names the doc section it follows
    return doc["payload"]


def _ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _by_id(messages: list[MessageCreate]) -> dict[str | None, MessageCreate]:
    return {m.channel_message_id: m for m in messages}


def test_messenger_messages_keep_text_quotes_quick_replies_attachments_and_ads():
    out = parse_messenger(fixture("messenger_messages.json"), NOW)
    assert out.channel == "messenger"
    msgs = _by_id(out.messages)
    text = msgs["m_text"]
    assert text.conversation_external_id == "fb:1234567890:PSID1" and text.customer.id == "PSID1"
    assert text.reply_to == "m_out_9" and text.sent_at == _ms(1739321024000)
    quick = msgs["m_quick"]
    assert quick.text == "Red" and quick.attachments[0].type == "button"
    assert quick.attachments[0].data == {"payload": "COLOR_RED"}
    image, sticker, place, link = msgs["m_media"].attachments
    assert (image.type, image.url) == ("image", "https://scontent.xx.fbcdn.net/v/t1.15752-9/photo.jpg")
    assert sticker.type == "sticker" and sticker.data == {"sticker_id": "369239263222822"}
    assert place.type == "location" and place.url == "geo:40.4168,-3.7038" and place.caption == "Pickup point"
    assert (link.type, link.url, link.caption) == (
        "link",
        "https://shop.example.com/kettle",
        "Kettle 1.7L - Shop",
    )
    (ad,) = msgs["m_ad"].attachments
    assert ad.type == "referral" and ad.caption == "Summer sale"
    assert ad.data is not None and ad.data["ad_id"] == "6045246247433" and ad.data["source"] == "ADS"


def test_a_postback_is_a_message_titled_by_the_button_with_its_payload():
    msgs = _by_id(parse_messenger(fixture("messenger_messages.json"), NOW).messages)
    postback = msgs["m_postback"]
    assert postback.text == "Get Started"
    button, ref = postback.attachments
    assert button.type == "postback" and button.data == {"payload": "GET_STARTED", "title": "Get Started"}
    assert ref.type == "referral" and ref.data is not None and ref.data["source"] == "SHORTLINK"


def test_reactions_and_their_removal_point_at_the_message_reacted_to():
    out = parse_messenger(fixture("messenger_messages.json"), NOW)
    react, unreact = [m for m in out.messages if is_reaction(m)]
    assert react.reply_to == unreact.reply_to == "m_out_9"
    assert react.attachments[0].data == {
        "emoji": "❤️",
        "message_id": "m_out_9",
        "reaction": "love",
        "action": "react",
    }
    assert unreact.attachments[0].data is not None and unreact.attachments[0].data["emoji"] == ""
    assert react.idempotency_key and react.idempotency_key != unreact.idempotency_key


def test_a_link_opening_an_existing_thread_and_opt_ins_are_skipped_not_dropped():
    out = parse_messenger(fixture("messenger_messages.json"), NOW)
    assert [s.type for s in out.skipped] == ["messenger.referral", "messenger.optin"]
    assert len(out.messages) == 7


def test_deliveries_without_timestamp_become_receipts_or_delivered_watermarks_and_reads_read_watermarks():
    out = parse_messenger(fixture("messenger_receipts_echo_standby.json"), NOW)
    (receipt,) = out.receipts
    assert receipt.channel_message_id == "mid.1458668856218:ed81099e15d3f4f233"
    assert receipt.status is ReceiptStatus.delivered and receipt.at == _ms(1458668856253)
    assert out.watermarks == [
        Watermark("fb:1234567890:PSID1", _ms(1458668856300), ReceiptStatus.delivered),
        Watermark("fb:1234567890:PSID1", _ms(1458668856253), ReceiptStatus.read),
    ]


def test_an_echo_is_a_reply_on_the_recipient_s_thread_and_standby_events_are_counted():
    out = parse_messenger(fixture("messenger_receipts_echo_standby.json"), NOW)
    assert out.messages == []
    (reply,) = out.replies
    assert reply.conversation_external_id == "fb:1234567890:PSID1"  # the customer's thread, not the Page's
    assert (
        reply.text == "We ship on Monday."
        and reply.channel_message_id == "mid.1457764197618:41d102a3e1ae206a38"
    )
    assert reply.author == "app 1517776481860111" and reply.sent_at == _ms(1458668856500)
    assert [s.type for s in out.skipped] == ["messenger.standby", "messenger.standby"]
    assert "handover" in out.skipped[0].reason


def test_instagram_messages_stories_and_shares_are_ingested_on_the_ig_thread():
    out = parse_messenger(fixture("instagram_messages.json"), NOW)
    assert out.channel == "instagram"
    msgs = _by_id(out.messages)
    reply = msgs["ig_text"]
    assert reply.channel.value == "instagram"
    assert reply.conversation_external_id == "ig:17841405822304914:IGSID1"
    (story,) = reply.attachments
    assert story.type == "story" and story.url is not None and story.url.endswith("story1")
    assert story.data == {"story_id": "17893721187224518", "reply": True}
    (mention,) = msgs["ig_mention"].attachments
    assert mention.type == "story" and mention.data == {"mention": True}
    share, reel = msgs["ig_share"].attachments
    assert share.type == "share" and share.url is not None and share.url.endswith("post1")
    assert reel.type == "share" and reel.caption == "How we pack orders"
    assert reel.data == {"kind": "ig_reel", "reel_video_id": "18014578432078652"}
    assert msgs["ig_postback"].text == "Shipping times"
    (reaction,) = [m for m in out.messages if is_reaction(m)]
    assert reaction.reply_to == "ig_echo"


def test_instagram_echoes_reads_deletions_and_comments():
    out = parse_messenger(fixture("instagram_messages.json"), NOW)
    (echo,) = out.replies
    assert echo.conversation_external_id == "ig:17841405822304914:IGSID1" and echo.author == "page"
    (read,) = out.receipts  # messaging_seen names the last message read
    assert (read.channel_message_id, read.status, read.at) == (
        "ig_echo",
        ReceiptStatus.read,
        _ms(1569262485800),
    )
    assert out.watermarks == [
        Watermark("ig:17841405822304914:IGSID1", _ms(1569262485800), ReceiptStatus.read)
    ]
    assert [s.type for s in out.skipped] == ["instagram.deleted", "instagram.changes"]


def test_one_malformed_event_is_skipped_and_the_rest_of_the_batch_kept():
    payload = fixture("messenger_messages.json")
    payload["entry"][0]["messaging"].insert(0, {"recipient": {"id": "1234567890"}, "message": {"text": "?"}})
    payload["entry"][0]["messaging"].insert(0, "not an event")
    out = parse_messenger(payload, NOW)
    assert len(out.messages) == 7 and out.skipped[0].type == "messenger.malformed"


def test_a_payload_of_another_platform_is_invalid_input():
    with pytest.raises(InvalidInput):
        parse_messenger({"object": "whatsapp_business_account", "entry": []}, NOW)
