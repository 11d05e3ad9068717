"""Local stand-ins (real HTTP servers on 127.0.0.1) of the APIs the channel senders call: Meta's Graph API
(WhatsApp Cloud API, Messenger and Instagram Send API) and Twilio's Messages API.

Each one checks every request against the shape the platform documents (path, auth header, content type,
required fields) and answers the way the platform does: its success body, or its error body. A request the
real platform would refuse is answered with the platform's own error and listed in `problems`, so a test can
assert there were none. A test can also script the next answers (`fail_next`) to play a refusal or an outage.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs

PHONE_NUMBER_ID = "106540352242922"
PAGE_ID = "104511402404957"
IG_ACCOUNT_ID = "17841405822304914"
ACCOUNT_SID = "AC" + "7f3e" * 8


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> dict[str, Any]:
        body = json.loads(self.raw)
        assert isinstance(body, dict)
        return body

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.raw.decode(), keep_blank_values=True).items()}


@dataclass
class FakePlatform(ABC):
    """The server part: records requests, plays scripted answers first, else asks `answer`."""

    requests: list[Seen] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    scripted: list[tuple[int, Any]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    def fail_next(self, status: int, body: Any, times: int = 1) -> None:
        self.scripted.extend([(status, body)] * times)

    @abstractmethod
    def answer(self, seen: Seen) -> tuple[int, Any]:
        """The platform's answer to a request no script answered."""

    def start(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                seen = Seen("POST", self.path, dict(self.headers), raw)
                fake.requests.append(seen)
                status, body = fake.scripted.pop(0) if fake.scripted else fake.answer(seen)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def refuse(self, problem: str, answer: tuple[int, Any]) -> tuple[int, Any]:
        self.problems.append(problem)
        return answer


# -- Meta Graph API ------------------------------------------------------------------------------------------


def graph_error(
    code: int,
    message: str,
    *,
    details: str | None = None,
    subcode: int | None = None,
    type_: str = "OAuthException",
) -> dict[str, Any]:
    """A Graph API error body (Graph API › Handling Errors; WhatsApp Cloud API › Error codes: `error_data`
    carries `messaging_product` and `details`)."""
    error: dict[str, Any] = {"message": message, "type": type_, "code": code, "fbtrace_id": "AazT3q1Yh0Lq"}
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return {"error": error}


# WhatsApp Cloud API › Error codes (HTTP status, body) for the refusals the tests play.
WA_REENGAGEMENT = (
    400,
    graph_error(
        131047,
        "(#131047) Re-engagement message",
        details="Message failed to send because more than 24 hours have passed since the customer last "
        "replied to this number.",
    ),
)
WA_UNDELIVERABLE = (
    400,
    graph_error(131026, "(#131026) Message Undeliverable", details="Message undeliverable"),
)
WA_UNSUPPORTED = (400, graph_error(131051, "(#131051) Unsupported message type"))
WA_INVALID_PARAMETER = (400, graph_error(100, "(#100) Invalid parameter", type_="OAuthException"))
WA_TOKEN_EXPIRED = (
    401,
    graph_error(190, "Error validating access token: Session has expired on Friday, 09-Jan-26.", subcode=463),
)
WA_THROUGHPUT = (400, graph_error(130429, "(#130429) Rate limit hit", details="Cloud API message throughput"))
WA_SPAM_LIMIT = (400, graph_error(131048, "(#131048) Spam rate limit hit"))
WA_ACCOUNT_LIMIT = (429, graph_error(80007, "(#80007) Rate limit issues"))
WA_SOMETHING_WRONG = (500, graph_error(131000, "(#131000) Something went wrong", type_="OAuthException"))
# Messenger Platform › Error codes.
FB_OUTSIDE_WINDOW = (
    400,
    graph_error(
        10,
        "(#10) This message is sent outside of allowed window.",
        subcode=2018278,
    ),
)
IG_OUTSIDE_WINDOW = (
    400,
    graph_error(10, "(#10) This message is sent outside of allowed window.", subcode=2534022),
)
FB_UNAVAILABLE = (400, graph_error(551, "(#551) This person isn't available right now.", subcode=1545041))
FB_RATE_LIMIT = (400, graph_error(613, "(#613) Calls to this api have exceeded the rate limit."))
FB_TEMPORARY = (500, graph_error(1200, "(#1200) Temporary send message failure. Please try again later"))


@dataclass
class FakeGraph(FakePlatform):
    """Graph API: `POST /{phone_number_id}/messages` (WhatsApp Cloud API › Messages, and › Mark messages as
    read), `POST /{page_id}/messages` (Messenger Send API reference) and `POST /me/messages` (Instagram
    Messaging › Send a Message). Every request needs `Authorization: Bearer {token}` (a missing or wrong one
    is error 190) and a JSON body."""

    whatsapp_token: str = "EAAwhatsappTokenNeverLogged0"
    page_token: str = "EAApageTokenNeverLogged0"
    counter: int = 0

    def answer(self, seen: Seen) -> tuple[int, Any]:
        if not seen.headers.get("Content-Type", "").startswith("application/json"):
            return self.refuse("body is not JSON", WA_INVALID_PARAMETER)
        m = re.fullmatch(r"/(\d+|me)/messages", seen.path)
        if m is None:
            return self.refuse(
                f"unknown path {seen.path}", (400, graph_error(100, "Unknown path components"))
            )
        node = m[1]
        token = self.whatsapp_token if node == PHONE_NUMBER_ID else self.page_token
        if seen.headers.get("Authorization") != f"Bearer {token}":
            return self.refuse("missing or wrong bearer token", WA_TOKEN_EXPIRED)
        self.counter += 1
        if node == PHONE_NUMBER_ID:
            return self._whatsapp(seen.json)
        if node in (PAGE_ID, "me"):
            return self._send_api(seen.json, instagram=node == "me")
        return self.refuse(f"no such node {node}", (400, graph_error(100, "(#100) Invalid id")))

    def _whatsapp(self, body: dict[str, Any]) -> tuple[int, Any]:
        if body.get("messaging_product") != "whatsapp":
            return self.refuse("messaging_product must be whatsapp", WA_INVALID_PARAMETER)
        if body.get("status") == "read":
            if set(body) != {"messaging_product", "status", "message_id"} or not str(
                body.get("message_id", "")
            ).startswith("wamid."):
                return self.refuse(f"bad mark-as-read body {body}", WA_INVALID_PARAMETER)
            return 200, {"success": True}
        if body.get("recipient_type") != "individual":
            return self.refuse("recipient_type must be individual", WA_INVALID_PARAMETER)
        to, bsuid = body.get("to"), body.get("recipient")
        if (to is None) == (bsuid is None):
            return self.refuse("exactly one of to / recipient", WA_INVALID_PARAMETER)
        kind = body.get("type")
        if kind == "text":
            text = body.get("text")
            if (
                not isinstance(text, dict)
                or not isinstance(text.get("body"), str)
                or not 0 < len(text["body"]) <= 4096
                or not isinstance(text.get("preview_url", False), bool)
                or set(text) - {"body", "preview_url"}
            ):
                return self.refuse(f"bad text object {text}", WA_INVALID_PARAMETER)
        elif kind == "template":
            template = body.get("template") or {}
            language = template.get("language")
            components = template.get("components", [])
            if (
                not template.get("name")
                or not isinstance(language, dict)
                or not language.get("code")
                or not all(
                    c.get("type") in ("header", "body", "button")
                    and all(
                        p.get("type") == "text" and isinstance(p.get("text"), str) for p in c["parameters"]
                    )
                    for c in components
                )
            ):
                return self.refuse(f"bad template object {template}", WA_INVALID_PARAMETER)
        else:
            return self.refuse(f"unexpected type {kind}", WA_UNSUPPORTED)
        contact = {"input": to, "wa_id": to} if to else {"input": bsuid, "user_id": bsuid}
        wamid = f"wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI{self.counter:05d}"
        return 200, {"messaging_product": "whatsapp", "contacts": [contact], "messages": [{"id": wamid}]}

    def _send_api(self, body: dict[str, Any], *, instagram: bool) -> tuple[int, Any]:
        recipient = body.get("recipient")
        message = body.get("message")
        if not isinstance(recipient, dict) or not str(recipient.get("id", "")).isdigit():
            return self.refuse(f"bad recipient {recipient}", WA_INVALID_PARAMETER)
        if not isinstance(message, dict) or not isinstance(message.get("text"), str) or not message["text"]:
            return self.refuse(f"bad message {message}", WA_INVALID_PARAMETER)
        if not instagram and body.get("messaging_type") not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
            return self.refuse("messaging_type is required", WA_INVALID_PARAMETER)
        mid = f"{'aWdfZAG1' if instagram else 'm_'}{self.counter:05d}Xq7vZ"
        return 200, {"recipient_id": recipient["id"], "message_id": mid}


# -- Twilio --------------------------------------------------------------------------------------------------


def twilio_error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    """A Twilio REST API error (Twilio API responses › Errors)."""
    return status, {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


TW_UNSUBSCRIBED = twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
TW_INVALID_TO = twilio_error(400, 21211, "Invalid 'To' Phone Number: +1555012")
TW_OUTSIDE_WINDOW = twilio_error(
    400, 63016, "Failed to send freeform message because you are outside the allowed window."
)
TW_TOO_MANY = twilio_error(429, 20429, "Too Many Requests")


@dataclass
class FakeTwilio(FakePlatform):
    """Twilio's `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (Messaging › Message resource ›
    Create): HTTP basic auth `AccountSid:AuthToken`, form-encoded `To`, `From`, `Body`; answers 201 with the
    Message resource."""

    account_sid: str = ACCOUNT_SID
    auth_token: str = "twilioAuthTokenNeverLogged0"
    counter: int = 0

    def answer(self, seen: Seen) -> tuple[int, Any]:
        if seen.path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return self.refuse(
                f"unknown path {seen.path}", twilio_error(404, 20404, "The requested resource was not found")
            )
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if seen.headers.get("Authorization") != f"Basic {expected}":
            return self.refuse("bad basic auth", twilio_error(401, 20003, "Authenticate"))
        if not seen.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return self.refuse(
                "body is not form-encoded", twilio_error(400, 21602, "Message body is required.")
            )
        form = seen.form
        if not form.get("To"):
            return self.refuse("To is required", twilio_error(400, 21604, "A 'To' phone number is required."))
        if not form.get("From"):
            return self.refuse(
                "From is required", twilio_error(400, 21603, "A 'From' phone number is required.")
            )
        if not form.get("Body") or len(form["Body"]) > 1600:
            return self.refuse("bad Body", twilio_error(400, 21602, "Message body is required."))
        self.counter += 1
        sid = f"SM{self.counter:032x}"
        return 201, {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": form["To"],
            "from": form["From"],
            "body": form["Body"],
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "error_code": None,
            "error_message": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
