"""WhatsApp Cloud API, Messenger and Instagram messaging webhooks → `ParsedWebhook`.

All three are Meta webhooks: a GET handshake (`hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`)
and POSTs signed with `X-Hub-Signature-256: sha256=HMAC-SHA256(app_secret, raw body)`. The parsers raise
`InvalidInput` only for a body of another platform (wrong `object`); an event they do not act on is recorded
in `ParsedWebhook.skipped` (type, reason) and never loses the events batched with it. A missing or unusable
timestamp is `now`.

WhatsApp (`object: whatsapp_business_account`; Meta docs "WhatsApp Cloud API › Webhooks › messages",
"smb_message_echoes webhook reference", "Business-scoped user IDs"). Conversation
`wa:{phone_number_id}:{customer}`, customer = `from` (the phone, wa_id) or, for a user who hides their
number behind a username, the business-scoped user id `from_user_id` (contacts then carry `user_id`,
statuses `recipient_user_id`).
- Messages (→ `MessageCreate`): text; image, video, audio, sticker (`whatsapp-media:{id}`, mime type,
  caption), document (also the file name); location (`geo:` url, name and address in data); contacts (type
  `contact`: names, phones, emails); reaction (type `reaction`, data emoji + message id, `reply_to` = the
  target, "" emoji = reaction removed); interactive button_reply / list_reply (type `button`: id, title,
  description; text = title) and nfm_reply (Flows: type `form`, data = the parsed `response_json`); button
  (template quick reply: payload + text); order (type `order`: catalog id, product items; text = the
  note); `context.id` → `reply_to`; `context.referred_product` (product enquiry, type `share`); `referral`
  (click-to-WhatsApp ad, type `referral`).
- Statuses (→ `ChannelReceipt`): sent, delivered, read, failed (`errors[0].code` → `error_code`, title and
  details → `error`).
- Messages sent from the WhatsApp Business app (coexistence, field `smb_message_echoes`) →
  `ExternalReplyCreate`.
- Skipped: `whatsapp.unsupported` (type `unsupported`/`unknown` with Meta's `errors` in the reason, or a type
  ReplyDesk does not read), `whatsapp.system` (number / user-id change notices), `whatsapp.request_welcome`,
  `whatsapp.status.other` (statuses other than those four), `whatsapp.echo_reaction` (the business reacting
  in the app is not a reply), `whatsapp.field` (other webhook fields: templates, account, history sync...),
  `whatsapp.malformed` (no sender or id), `whatsapp.error` (webhook-level `errors`).

Messenger (`object: page`, conversation `fb:{page_id}:{psid}`) and Instagram (`object: instagram`,
conversation `ig:{ig_account_id}:{igsid}`, entry.id = the business account) share the event shapes (Meta
docs "Messenger Platform › Webhook Events Reference", "Instagram Platform › Webhook Notification Examples",
"Story Mention").
- Messages (→ `MessageCreate`): text; attachments image, video, audio, file, sticker (`sticker_id`),
  location (coordinates), fallback (a shared link: type `link`, url + title), template (type `share`);
  Instagram share, ig_reel / reel / ig_post (type `share`), story_mention and `reply_to.story` (type
  `story`); `quick_reply` payload (type `button`); `reply_to.mid` → `reply_to`; `referral` on a message
  (ads, shops: type `referral`). Postbacks (type `postback`, text = title, payload in data). Reactions
  (`reaction` event, react / unreact: type `reaction`, `reply_to` = the target).
- Receipts: `delivery` with `mids` → `ChannelReceipt(delivered)` per mid (an event without `timestamp` is
  normal); watermark-only `delivery` → `Watermark(delivered)`; `read` with `watermark` (Messenger) →
  `Watermark(read)`; Instagram `read` with `mid` → `ChannelReceipt(read)` for it plus `Watermark(read)` at
  the event time.
- Echoes (`message.is_echo`: sent by the Page / Instagram account from Meta's inbox, another app or
  ReplyDesk itself) → `ExternalReplyCreate` on the recipient's thread, `channel_message_id` = the mid, so
  the store can recognise ReplyDesk's own sends.
- Skipped: `messenger.standby` / `instagram.standby` (entry.standby: another app controls the thread under
  the handover protocol; one per event), `*.deleted` (an unsent Instagram message), `*.unsupported`
  (nothing ReplyDesk can show), `*.referral` (a link or ad opened an existing thread: no message),
  `*.handover`, `*.optin`, `*.account_linking`, `*.policy_enforcement`, `*.message_edit`, `*.feedback`,
  `*.game_play`, `*.other` (unknown events), `*.changes` (entry.changes: comments, mentions... not
  messaging), `*.malformed`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import phonenumbers

from service.errors import InvalidInput
from service.integrations.adapters.parsed import (
    ChannelReceipt,
    ParsedWebhook,
    ReadWatermark,
    Watermark,
    add_message,
    add_reply,
    attachment,
    clip,
    obj,
    objs,
    string,
    unix_time,
)
from service.triage.models import Channel
from service.workflow.models import Attachment, ReceiptStatus

__all__ = [
    "ChannelReceipt",
    "ParsedWebhook",
    "ReadWatermark",
    "Watermark",
    "handshake",
    "parse_messenger",
    "parse_whatsapp",
]

WHATSAPP_MEDIA = ("image", "video", "audio", "document", "sticker")
RECEIPTS = {s.value: s for s in ReceiptStatus}
BSUID_COUNTRY = re.compile(r"^([A-Z]{2})\.")  # "US.13491208655302741918": the country comes first


def handshake(params: dict[str, str], expected_token: str | None) -> str | None:
    """The challenge to echo when the verify token matches, else None."""
    if (
        expected_token
        and params.get("hub.mode") == "subscribe"
        and params.get("hub.verify_token") == expected_token
    ):
        return params.get("hub.challenge", "")
    return None


@dataclass
class _Content:
    """What one message carries, before it is a customer message or a reply."""

    text: str = ""
    attachments: list[Attachment | None] = field(default_factory=list)
    reply_to: str | None = None
    skip: tuple[str, str] | None = None  # (type, reason) when there is nothing ReplyDesk reads


# -- WhatsApp ------------------------------------------------------------------------------------------------


def _country_of(customer: str) -> str | None:
    """ISO country of a phone number (wa_id), or the prefix of a business-scoped user id."""
    if bsuid := BSUID_COUNTRY.match(customer):
        return bsuid.group(1)
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse("+" + customer.lstrip("+")))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "ZZ" else None


def _wa_error(errors: Any) -> tuple[str | None, str | None]:
    """(message, code) of the first entry of a WhatsApp `errors` array."""
    for err in objs(errors):
        title = string(err.get("title")) or string(err.get("message"))
        details = string(obj(err.get("error_data")).get("details"))
        text = f"{title}: {details}" if title and details and details != title else (title or details)
        return (text[:1000] or None), (clip(err.get("code"), 40))
    return None, None


def _wa_contact(card: dict[str, Any]) -> Attachment | None:
    name = obj(card.get("name"))
    formatted = string(name.get("formatted_name")) or " ".join(
        p for p in (string(name.get("first_name")), string(name.get("last_name"))) if p
    )
    phones = [
        {k: v for k, v in (("phone", string(p.get("phone"))), ("wa_id", string(p.get("wa_id")))) if v}
        for p in objs(card.get("phones"))
    ]
    emails = [string(e.get("email")) for e in objs(card.get("emails")) if string(e.get("email"))]
    return attachment(
        "contact",
        caption=formatted,
        data={
            "name": formatted,
            "phones": [p for p in phones if p],
            "emails": emails,
            "org": string(obj(card.get("org")).get("company")),
        },
    )


def _wa_interactive(m: dict[str, Any]) -> _Content:
    inter = obj(m.get("interactive"))
    kind = string(inter.get("type"))
    if kind in ("button_reply", "list_reply"):
        reply = obj(inter.get(kind))
        title = string(reply.get("title"))
        data = {
            "id": string(reply.get("id")),
            "title": title,
            "description": string(reply.get("description")),
        }
        return _Content(title, [attachment("button", caption=title, data=data)])
    if kind == "nfm_reply":
        form = obj(inter.get("nfm_reply"))
        raw = string(form.get("response_json"))
        try:
            answers = json.loads(raw) if raw else {}
        except (json.JSONDecodeError, RecursionError):
            answers = {"response_json": raw}
        answers = answers if isinstance(answers, dict) else {"response": answers}
        label = string(form.get("body")) or string(form.get("name"))
        return _Content("", [attachment("form", caption=label, data=answers)])
    return _Content(skip=("whatsapp.unsupported", f"interactive reply of type {kind[:40]!r}"))


def _wa_content(m: dict[str, Any], kind: str) -> _Content:
    """The text, attachments and quoted message of a WhatsApp message (incoming or echo) of type `kind`."""
    body = obj(m.get(kind))
    if kind == "text":
        content = _Content(string(body.get("body")))
    elif kind in WHATSAPP_MEDIA:
        caption = string(body.get("caption"))
        flags = {"voice": body.get("voice") is True, "animated": body.get("animated") is True}
        media_id = string(body.get("id"))
        content = _Content(
            caption,
            [
                attachment(
                    "file" if kind == "document" else kind,
                    url=f"whatsapp-media:{media_id}" if media_id else string(body.get("link")),
                    caption=caption,
                    filename=body.get("filename"),
                    mime_type=body.get("mime_type"),
                    data={k: True for k, v in flags.items() if v},
                )
            ],
        )
    elif kind == "location":
        lat, long = body.get("latitude"), body.get("longitude")
        geo = f"geo:{lat},{long}" if isinstance(lat, int | float) and isinstance(long, int | float) else None
        name, address = string(body.get("name")), string(body.get("address"))
        content = _Content(
            "",
            [
                attachment(
                    "location",
                    url=geo,
                    caption=name or address,
                    data={"name": name, "address": address, "url": string(body.get("url"))},
                )
            ],
        )
    elif kind == "contacts":
        content = _Content("", [_wa_contact(card) for card in objs(m.get("contacts"))])
    elif kind == "reaction":
        target = string(body.get("message_id"))
        emoji = string(body.get("emoji"))  # absent or "" when the customer removed their reaction
        content = _Content(
            "", [attachment("reaction", data={"emoji": emoji, "message_id": target})], reply_to=target or None
        )
    elif kind == "interactive":
        content = _wa_interactive(m)
    elif kind == "button":
        text = string(body.get("text"))
        data = {"payload": string(body.get("payload")), "text": text}
        content = _Content(text, [attachment("button", caption=text, data=data)])
    elif kind == "order":
        items = [
            {
                k: v
                for k, v in item.items()
                if k in ("product_retailer_id", "quantity", "item_price", "currency")
            }
            for item in objs(body.get("product_items"))
        ]
        order: dict[str, Any] = {"catalog_id": string(body.get("catalog_id")), "product_items": items}
        content = _Content(string(body.get("text")), [attachment("order", data=order)])
    elif kind in ("unsupported", "unknown"):
        error, code = _wa_error(m.get("errors"))
        reason = (
            f"WhatsApp could not deliver the content ({code}: {error})" if code else "unsupported content"
        )
        return _Content(skip=("whatsapp.unsupported", reason))
    elif kind in ("system", "request_welcome"):
        return _Content(skip=(f"whatsapp.{kind}", f"{kind} notice, not a customer message"))
    else:
        return _Content(skip=("whatsapp.unsupported", f"message type {kind[:40]!r} is not read by ReplyDesk"))
    context = obj(m.get("context"))
    if content.reply_to is None:
        content.reply_to = clip(context.get("id"), 200)
    if product := obj(context.get("referred_product")):
        data = {
            "catalog_id": string(product.get("catalog_id")),
            "product_retailer_id": string(product.get("product_retailer_id")),
        }
        content.attachments.append(attachment("share", caption="product enquiry", data=data))
    if referral := obj(m.get("referral")):
        keys = ("source_type", "source_id", "headline", "body", "media_type", "ctwa_clid")
        content.attachments.append(
            attachment(
                "referral",
                url=referral.get("source_url"),
                caption=referral.get("headline"),
                data={k: string(referral.get(k)) for k in keys},
            )
        )
    return content


def _wa_message(
    m: dict[str, Any], phone_id: str, profiles: dict[str, str], now: datetime, out: ParsedWebhook
) -> None:
    customer = string(m.get("from")) or string(m.get("from_user_id"))
    kind = string(m.get("type"))
    if not customer or not string(m.get("id")):
        out.skip("whatsapp.malformed", "message without `from`/`from_user_id` or `id`")
        return
    content = _wa_content(m, kind)
    if content.skip:
        out.skip(*content.skip)
        return
    name = profiles.get(customer) or profiles.get(string(m.get("from_user_id")))
    add_message(
        out,
        "whatsapp.malformed",
        channel=Channel.whatsapp,
        conversation_external_id=f"wa:{phone_id}:{customer}",
        customer={"id": customer, "name": (name or "")[:200] or None, "country": _country_of(customer)},
        text=content.text,
        sent_at=unix_time(m.get("timestamp"), now),
        attachments=content.attachments,
        channel_message_id=clip(m.get("id"), 200),
        reply_to=content.reply_to,
    )


def _wa_status(st: dict[str, Any], now: datetime, out: ParsedWebhook) -> None:
    raw = string(st.get("status"))
    status = RECEIPTS.get(raw)
    if status is None:
        out.skip("whatsapp.status.other", f"status {raw[:40]!r} is not a delivery receipt")
        return
    message_id = clip(st.get("id"), 200)
    if message_id is None:
        out.skip("whatsapp.malformed", "status without a message id")
        return
    error, code = _wa_error(st.get("errors")) if status is ReceiptStatus.failed else (None, None)
    out.receipts.append(ChannelReceipt(message_id, status, unix_time(st.get("timestamp"), now), error, code))


def _wa_echo(e: dict[str, Any], phone_id: str, now: datetime, out: ParsedWebhook) -> None:
    # `to` is the customer's number as the business app knows it ("+16505551234"); the thread id uses the
    # wa_id form of incoming messages (digits, no "+").
    customer = string(e.get("to")).lstrip("+") or string(e.get("to_user_id"))
    kind = string(e.get("type"))
    if not customer:
        out.skip("whatsapp.malformed", "message echo without `to`/`to_user_id`")
        return
    if kind == "reaction":
        out.skip("whatsapp.echo_reaction", "the business reacted from the WhatsApp Business app: not a reply")
        return
    content = _wa_content(e, kind)
    if content.skip:
        out.skip(*content.skip)
        return
    add_reply(
        out,
        "whatsapp.malformed",
        channel=Channel.whatsapp,
        conversation_external_id=f"wa:{phone_id}:{customer}",
        text=content.text,
        attachments=content.attachments,
        sent_at=unix_time(e.get("timestamp"), now),
        channel_message_id=clip(e.get("id"), 200),
        author="WhatsApp Business app",
    )


def parse_whatsapp(payload: dict[str, Any], now: datetime) -> ParsedWebhook:
    """Messages, statuses and Business-app echoes of a WhatsApp Cloud API webhook."""
    if payload.get("object") != "whatsapp_business_account":
        raise InvalidInput("not a WhatsApp Cloud API webhook (object must be `whatsapp_business_account`)")
    out = ParsedWebhook(channel=Channel.whatsapp.value)
    for entry in objs(payload.get("entry")):
        for change in objs(entry.get("changes")):
            value = obj(change.get("value"))
            phone_id = string(obj(value.get("metadata")).get("phone_number_id"))
            kind = string(change.get("field"))
            if kind == "smb_message_echoes":
                for echo in objs(value.get("message_echoes")):
                    _wa_echo(echo, phone_id, now, out)
                continue
            if kind != "messages":
                out.skip("whatsapp.field", f"webhook field {kind[:60]!r} is not about conversations")
                continue
            profiles: dict[str, str] = {}
            for c in objs(value.get("contacts")):
                profile = obj(c.get("profile"))
                name = string(profile.get("name")) or string(profile.get("username"))
                for key in (string(c.get("wa_id")), string(c.get("user_id"))):
                    if key and name:
                        profiles[key] = name
            for m in objs(value.get("messages")):
                _wa_message(m, phone_id, profiles, now, out)
            for st in objs(value.get("statuses")):
                _wa_status(st, now, out)
            if errors := objs(value.get("errors")):
                error, code = _wa_error(errors)
                out.skip("whatsapp.error", f"webhook error {code}: {error}")
    return out


# -- Messenger and Instagram ---------------------------------------------------------------------------------

# Messaging events ReplyDesk records as skipped under their own name (anything else is `<platform>.other`).
KNOWN_EVENTS = {
    "optin": "optin",
    "account_linking": "account_linking",
    "pass_thread_control": "handover",
    "take_thread_control": "handover",
    "request_thread_control": "handover",
    "app_roles": "handover",
    "policy_enforcement": "policy_enforcement",
    "message_edit": "message_edit",
    "messaging_feedback": "feedback",
    "game_play": "game_play",
}


@dataclass(frozen=True)
class _Thread:
    channel: Channel
    label: str  # "messenger" | "instagram": the skipped types' prefix
    prefix: str  # "fb" | "ig"
    account: str  # the Page id / Instagram business account id (entry.id)

    def of(self, user: str) -> str:
        return f"{self.prefix}:{self.account}:{user}"


def _fb_attachment(a: dict[str, Any]) -> Attachment | None:
    kind = string(a.get("type"))
    payload = obj(a.get("payload"))
    url = string(payload.get("url")) or string(a.get("url")) or string(a.get("URL"))
    title = string(payload.get("title")) or string(a.get("title"))
    if kind == "image" and payload.get("sticker_id"):
        return attachment("sticker", url=url, data={"sticker_id": string(payload.get("sticker_id"))})
    if kind in ("image", "video", "audio", "file"):
        return attachment(kind, url=url, caption=title)
    if kind == "location":
        coords = obj(payload.get("coordinates"))
        lat, long = coords.get("lat"), coords.get("long")
        geo = f"geo:{lat},{long}" if isinstance(lat, int | float) and isinstance(long, int | float) else None
        return attachment(
            "location", url=geo or url, caption=title, data={"latitude": lat, "longitude": long}
        )
    if kind == "fallback":  # a shared link Meta cannot render
        return attachment("link", url=url, caption=title)
    if kind == "template":
        elements = objs(payload.get("elements"))
        caption = (
            title or (string(elements[0].get("title")) if elements else "") or string(payload.get("text"))
        )
        return attachment(
            "share", url=url, caption=caption, data={"template": string(payload.get("template_type"))}
        )
    if kind in ("share", "ig_reel", "reel", "ig_post"):
        data = {"kind": kind, "reel_video_id": string(payload.get("reel_video_id"))}
        return attachment("share", url=url, caption=title, data=data)
    if kind in ("story_mention", "ig_story"):
        return attachment("story", url=url, caption=title, data={"mention": kind == "story_mention"})
    return attachment("file", url=url, caption=title, data={"kind": kind[:40]})


def _referral(ref: dict[str, Any]) -> Attachment | None:
    ads = obj(ref.get("ads_context_data"))
    return attachment(
        "referral",
        url=ref.get("source_url") or ads.get("photo_url"),
        caption=ads.get("ad_title") or ref.get("ref"),
        data={
            "ref": string(ref.get("ref")),
            "source": string(ref.get("source")),
            "type": string(ref.get("type")),
            "ad_id": string(ref.get("ad_id")),
            "ad_title": string(ads.get("ad_title")),
            "post_id": string(ads.get("post_id")),
            "product_id": string(obj(ref.get("product")).get("id")),
        },
    )


def _fb_content(m: dict[str, Any]) -> _Content:
    text = string(m.get("text"))
    atts = [_fb_attachment(a) for a in objs(m.get("attachments"))]
    reply = obj(m.get("reply_to"))
    if story := obj(reply.get("story")):
        atts.append(
            attachment(
                "story", url=story.get("url"), data={"story_id": string(story.get("id")), "reply": True}
            )
        )
    if quick := obj(m.get("quick_reply")):
        atts.append(attachment("button", caption=text, data={"payload": string(quick.get("payload"))}))
    if ref := obj(m.get("referral")):
        atts.append(_referral(ref))
    return _Content(text, atts, reply_to=clip(reply.get("mid"), 200))


def _customer_message(
    ev: dict[str, Any], thread: _Thread, psid: str, at: datetime, out: ParsedWebhook
) -> None:
    m = obj(ev.get("message"))
    if m.get("is_deleted"):
        out.skip(f"{thread.label}.deleted", "the customer unsent a message")
        return
    content = _fb_content(m)
    if m.get("is_unsupported") and not content.text and not any(content.attachments):
        out.skip(f"{thread.label}.unsupported", "Meta marked the message unsupported (no content to show)")
        return
    add_message(
        out,
        f"{thread.label}.malformed",
        channel=thread.channel,
        conversation_external_id=thread.of(psid),
        customer={"id": psid},
        text=content.text,
        sent_at=at,
        attachments=content.attachments,
        channel_message_id=clip(m.get("mid"), 200),
        reply_to=content.reply_to,
    )


def _echo(ev: dict[str, Any], thread: _Thread, recipient: str, at: datetime, out: ParsedWebhook) -> None:
    m = obj(ev.get("message"))
    content = _fb_content(m)
    app_id = string(m.get("app_id"))
    add_reply(
        out,
        f"{thread.label}.malformed",
        channel=thread.channel,
        conversation_external_id=thread.of(recipient),
        text=content.text,
        attachments=content.attachments,
        sent_at=at,
        channel_message_id=clip(m.get("mid"), 200),
        author=f"app {app_id}"[:100] if app_id else "page",
    )


def _messaging_event(ev: dict[str, Any], thread: _Thread, now: datetime, out: ParsedWebhook) -> None:
    sender = string(obj(ev.get("sender")).get("id"))
    recipient = string(obj(ev.get("recipient")).get("id"))
    at = unix_time(ev.get("timestamp"), now, millis=True)
    label = thread.label
    if "message" in ev:
        if obj(ev.get("message")).get("is_echo"):
            if not recipient:
                out.skip(f"{label}.malformed", "echo without a recipient")
                return
            _echo(ev, thread, recipient, at, out)
        elif not sender:
            out.skip(f"{label}.malformed", "message without a sender")
        else:
            _customer_message(ev, thread, sender, at, out)
        return
    if "delivery" in ev:
        delivery = obj(ev.get("delivery"))
        watermark = delivery.get("watermark")
        when = unix_time(watermark, at, millis=True)
        raw_mids = delivery.get("mids")
        mids = [m for m in (clip(x, 200) for x in raw_mids) if m] if isinstance(raw_mids, list) else []
        if mids:
            out.receipts.extend(ChannelReceipt(mid, ReceiptStatus.delivered, when) for mid in mids)
        elif watermark is not None and sender:
            out.watermarks.append(Watermark(thread.of(sender), when, ReceiptStatus.delivered))
        else:
            out.skip(f"{label}.malformed", "delivery without mids or watermark")
        return
    if "read" in ev:
        read = obj(ev.get("read"))
        if not sender:
            out.skip(f"{label}.malformed", "read without a sender")
            return
        mid = clip(read.get("mid"), 200)
        if mid:  # Instagram `messaging_seen`: the last message read, at the event time
            out.receipts.append(ChannelReceipt(mid, ReceiptStatus.read, at))
        if read.get("watermark") is not None or mid:
            out.watermarks.append(
                Watermark(thread.of(sender), unix_time(read.get("watermark"), at, millis=True))
            )
        else:
            out.skip(f"{label}.malformed", "read without watermark or mid")
        return
    if "reaction" in ev:
        _reaction(ev, thread, sender, at, out)
        return
    if "postback" in ev:
        pb = obj(ev.get("postback"))
        title = string(pb.get("title"))
        atts = [
            attachment("postback", caption=title, data={"payload": string(pb.get("payload")), "title": title})
        ]
        if ref := obj(pb.get("referral")):
            atts.append(_referral(ref))
        if not sender:
            out.skip(f"{label}.malformed", "postback without a sender")
            return
        add_message(
            out,
            f"{label}.malformed",
            channel=thread.channel,
            conversation_external_id=thread.of(sender),
            customer={"id": sender},
            text=title,
            sent_at=at,
            attachments=atts,
            channel_message_id=clip(pb.get("mid"), 200),
        )
        return
    if "referral" in ev:
        out.skip(f"{label}.referral", "a link or ad opened an existing thread: no message to answer")
        return
    known = next((KNOWN_EVENTS[k] for k in ev if k in KNOWN_EVENTS), None)
    out.skip(f"{label}.{known or 'other'}", "not a customer message or receipt")


def _reaction(ev: dict[str, Any], thread: _Thread, sender: str, at: datetime, out: ParsedWebhook) -> None:
    r = obj(ev.get("reaction"))
    target = clip(r.get("mid"), 200)
    if not sender or not target:
        out.skip(f"{thread.label}.malformed", "reaction without a sender or a target message")
        return
    action = string(r.get("action")) or "react"
    emoji = "" if action == "unreact" else string(r.get("emoji"))
    data = {"emoji": emoji, "message_id": target, "reaction": string(r.get("reaction")), "action": action}
    add_message(
        out,
        f"{thread.label}.malformed",
        channel=thread.channel,
        conversation_external_id=thread.of(sender),
        customer={"id": sender},
        text="",
        sent_at=at,
        attachments=[attachment("reaction", data=data)],
        reply_to=target,
        # a reaction has no id of its own: Meta's retries of the same event keep this key
        idempotency_key=f"{thread.prefix}-reaction:{ev.get('timestamp')}:{sender}"[:200],
    )


def parse_messenger(payload: dict[str, Any], now: datetime) -> ParsedWebhook:
    """Messages, echoes, postbacks, reactions, deliveries and reads of a Messenger (`object: page`) or
    Instagram messaging (`object: instagram`) webhook."""
    kind = payload.get("object")
    if kind == "page":
        channel, prefix = Channel.messenger, "fb"
    elif kind == "instagram":
        channel, prefix = Channel.instagram, "ig"
    else:
        raise InvalidInput("not a Messenger or Instagram webhook (object must be `page` or `instagram`)")
    out = ParsedWebhook(channel=channel.value)
    for entry in objs(payload.get("entry")):
        account = string(entry.get("id"))
        for ev in objs(entry.get("messaging")):
            owner = account or (
                string(obj(ev.get("sender")).get("id"))
                if obj(ev.get("message")).get("is_echo")
                else string(obj(ev.get("recipient")).get("id"))
            )
            _messaging_event(ev, _Thread(channel, channel.value, prefix, owner), now, out)
        for _ in objs(entry.get("standby")):
            out.skip(
                f"{channel.value}.standby",
                "another app controls this thread (handover protocol): its messages are that app's to answer",
            )
        for change in objs(entry.get("changes")):
            out.skip(
                f"{channel.value}.changes", f"field {string(change.get('field'))[:60]!r} is not messaging"
            )
    return out
