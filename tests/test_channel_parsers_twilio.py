"""Twilio Programmable Messaging webhooks as Twilio posts them (form bodies): incoming SMS/MMS and WhatsApp
messages with media, locations, button replies, ads and quoted messages; status callbacks as receipts of the
messages ReplyDesk sent, failures with Twilio's error code, in-flight statuses skipped by name; and Twilio's
X-Twilio-Signature checked with Twilio's documented example. Payloads: tests/data/channels/*.txt, each
citing its Twilio doc section."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from service.errors import InvalidInput
from service.integrations.adapters.twilio import parse_twilio
from service.signing import InvalidSignature, verify_twilio_signature
from service.workflow.models import ReceiptStatus

DATA = Path(__file__).parent / "data" / "channels"
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WA_THREAD = "twilio:whatsapp:+15550001111/whatsapp:+447700900123"


def form(name: str) -> dict[str, str]:
    """A fixture's form body (one `name=value` per line after the `#` doc citation), parsed as a web
    framework parses Twilio's `application/x-www-form-urlencoded` POST."""
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# Twilio docs")  # every fixture names the doc section it follows
    body = "&".join(line for line in lines if line and not line.startswith("#"))
    return dict(parse_qsl(body, keep_blank_values=True))


def test_an_incoming_mms_keeps_its_text_and_every_media_with_its_type():
    out = parse_twilio(form("twilio_sms_inbound.txt"), NOW)
    assert out.channel == "sms"
    (msg,) = out.messages
    assert msg.channel.value == "sms"
    assert msg.conversation_external_id == "twilio:+15550001111/+14155550123"
    assert msg.customer.id == "+14155550123" and msg.customer.country == "US"
    assert msg.text == "The lid is cracked, photos attached" and msg.sent_at == NOW
    assert msg.channel_message_id == "SM1f0e8ae6ade43cb3c0ce4525424e404f"
    photo, pdf = msg.attachments
    assert (photo.type, photo.mime_type) == ("image", "image/jpeg")
    assert photo.url is not None and photo.url.endswith("/Media/ME38d8cd5d9f3a5e4bbc6c1f2d1bd1f5e1")
    assert (pdf.type, pdf.mime_type) == ("file", "application/pdf")


def test_a_whatsapp_location_has_the_sender_s_profile_name_and_a_geo_link():
    out = parse_twilio(form("twilio_whatsapp_inbound_location.txt"), NOW)
    assert out.channel == "whatsapp"
    (msg,) = out.messages
    assert msg.channel.value == "whatsapp" and msg.conversation_external_id == WA_THREAD
    assert msg.customer.id == "whatsapp:+447700900123"
    assert msg.customer.name == "Priya"
    (place,) = msg.attachments  # ReferralNumMedia=0 alone is no ad
    assert (
        place.type == "location" and place.url == "geo:51.5072,-0.1276" and place.caption == "Meeting point"
    )
    assert place.data == {
        "latitude": "51.5072",
        "longitude": "-0.1276",
        "name": "Meeting point",
        "address": "Trafalgar Square, London",
    }


def test_a_template_button_reply_keeps_its_payload_and_the_message_it_answers():
    (msg,) = parse_twilio(form("twilio_whatsapp_inbound_button_reply.txt"), NOW).messages
    assert msg.text == "Yes, reschedule"
    assert msg.reply_to == "MM0123456789abcdef0123456789abcdef"
    (button,) = msg.attachments
    assert button.type == "button" and button.data == {"payload": "RESCHEDULE_YES", "text": "Yes, reschedule"}


def test_a_message_from_a_click_to_whatsapp_ad_keeps_the_ad():
    (msg,) = parse_twilio(form("twilio_whatsapp_inbound_referral.txt"), NOW).messages
    (ad,) = msg.attachments
    assert ad.type == "referral" and ad.url == "https://fb.me/2abcDEF" and ad.caption == "Weekend offer"
    assert ad.data is not None
    assert ad.data["source_type"] == "ad" and ad.data["source_id"] == "120208012345678901"
    assert ad.data["ctwa_clid"].startswith("ARAkLkA8")


def test_an_undelivered_sms_is_a_failed_receipt_with_twilio_s_error_code():
    out = parse_twilio(form("twilio_status_undelivered.txt"), NOW)
    assert out.messages == [] and out.channel == "sms"
    (receipt,) = out.receipts
    assert receipt.channel_message_id == "SM5d0a6b7c8e9f00112233445566778899"
    assert (receipt.status, receipt.error_code, receipt.at) == (ReceiptStatus.failed, "30008", NOW)
    assert receipt.error and "30008" in receipt.error


def test_a_whatsapp_read_callback_is_a_read_receipt_on_the_whatsapp_channel():
    out = parse_twilio(form("twilio_whatsapp_status_read.txt"), NOW)
    assert out.channel == "whatsapp"  # From is our whatsapp: sender: the outbound message's channel
    (receipt,) = out.receipts
    assert receipt.status is ReceiptStatus.read and receipt.error is None and receipt.error_code is None


@pytest.mark.parametrize(
    ("status", "expected"),
    [("sent", ReceiptStatus.sent), ("delivered", ReceiptStatus.delivered), ("failed", ReceiptStatus.failed)],
)
def test_outcome_statuses_become_receipts(status, expected):
    callback = {**form("twilio_status_undelivered.txt"), "MessageStatus": status, "SmsStatus": status}
    (receipt,) = parse_twilio(callback, NOW).receipts
    assert receipt.status is expected


@pytest.mark.parametrize("status", ["queued", "accepted", "sending", "scheduled", "canceled", "brand_new"])
def test_in_flight_and_unknown_statuses_are_skipped_by_name(status):
    callback = {**form("twilio_status_undelivered.txt"), "MessageStatus": status, "SmsStatus": status}
    out = parse_twilio(callback, NOW)
    assert out.receipts == [] and out.messages == []
    name = "unknown" if status == "brand_new" else status
    assert [s.type for s in out.skipped] == [f"twilio.status.{name}"]


def test_an_incoming_message_with_nothing_to_show_is_skipped_and_a_foreign_form_is_invalid():
    empty = {
        **form("twilio_whatsapp_inbound_location.txt"),
        "Latitude": "",
        "Longitude": "",
        "MessageType": "unsupported",
    }
    out = parse_twilio(empty, NOW)
    assert out.messages == [] and [s.type for s in out.skipped] == ["twilio.unsupported"]
    with pytest.raises(InvalidInput):
        parse_twilio({"Body": "hello"}, NOW)


# Twilio docs, "Webhooks security" › Validate signatures: the documented example (auth token 12345).
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675310",
    "Digits": "1234",
    "From": "+14158675310",
    "To": "+18005551212",
}
DOC_SIGNATURE = "GvWf1cFY/Q7PnoempGyD5oXAezc="


def test_twilio_s_documented_signature_verifies():
    verify_twilio_signature("12345", DOC_URL, DOC_PARAMS, DOC_SIGNATURE)


def test_the_url_may_carry_the_default_port_or_not_as_twilio_s_own_validator_accepts():
    verify_twilio_signature(
        "12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", DOC_PARAMS, DOC_SIGNATURE
    )


@pytest.mark.parametrize(
    ("token", "url", "params", "signature"),
    [
        ("54321", DOC_URL, DOC_PARAMS, DOC_SIGNATURE),  # another account's token
        ("12345", DOC_URL.replace("bar=2", "bar=3"), DOC_PARAMS, DOC_SIGNATURE),  # another URL
        ("12345", DOC_URL, {**DOC_PARAMS, "Digits": "9999"}, DOC_SIGNATURE),  # a changed parameter
        ("12345", DOC_URL, DOC_PARAMS, None),  # no header
        ("12345", DOC_URL, DOC_PARAMS, "ünïcödé"),  # garbage, not a 500
    ],
)
def test_a_signature_that_does_not_match_is_refused(token, url, params, signature):
    with pytest.raises(InvalidSignature):
        verify_twilio_signature(token, url, params, signature)
