"""Request body limit, answered in the project's error envelope.

FastAPI's own `max_body_size` answers a plain-text 413 from outside the app's exception handlers, so the
limit is enforced here instead: a `Content-Length` over the limit gets 413 before a single body byte is read;
a body without one (chunked) is counted as it arrives and cut off with 413 as soon as it passes the limit.
Nothing of the body is parsed either way, so a 50 MB POST costs no more than a tiny one.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_body


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._reject(send)
            return
        received = 0
        exceeded = False  # the app may catch our signal (FastAPI turns it into a 400): its answer is replaced
        replaced = started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal replaced, started
            if replaced:
                return
            if message["type"] == "http.response.start":
                if exceeded:
                    replaced = True
                    await self._reject(send)
                    return
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            if not (replaced or started):
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        payload = json.dumps(
            error_body(
                "payload_too_large",
                f"request body is larger than {self.max_body_bytes} bytes",
                {"limit_bytes": self.max_body_bytes},
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
