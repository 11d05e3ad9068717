"""Suggestions posted back into Chatwoot as one private note per customer message (the dispatcher's
`chatwoot-note:` transport, fed by `suggestions.created`), so agents working in Chatwoot see them next to the
message; retried with the webhook backoff like any delivery.

Chatwoot's API: `POST /api/v1/accounts/{account_id}/conversations/{conversation_id}/messages` with
`{"content", "message_type": "outgoing", "private": true}` and the `api_access_token` header
(developers.chatwoot.com, Application API › Messages › Create New Message).
"""

from __future__ import annotations

from typing import Any

import httpx


def chatwoot_ids(external_id: str) -> tuple[str, str] | None:
    """(account id, conversation id) of a conversation kept as `chatwoot:{account}:{conversation}`."""
    parts = external_id.split(":")
    if len(parts) != 3 or parts[0] != "chatwoot" or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return parts[1], parts[2]


def note_content(data: dict[str, Any]) -> str:
    """The note: intent and urgency, then the drafts numbered with their suggestion ids."""
    head = "ReplyDesk suggestions"
    if data.get("intent"):
        head += f" · intent {data['intent']} · urgency {data.get('urgency', '?')}"
    lines = [head]
    for sug in data.get("suggestions") or []:
        if isinstance(sug, dict):
            lines.append(f"{sug.get('rank')}) {sug.get('text')}  [suggestion {sug.get('id')}]")
    return "\n".join(lines)


class ChatwootNoteTransport:
    prefix = "chatwoot-note:"

    def __init__(
        self, base_url: str, token: str, *, timeout_s: float = 10.0, client: httpx.Client | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.client = client or httpx.Client(timeout=timeout_s)

    def post(self, envelope: dict[str, Any]) -> httpx.Response:
        data = envelope.get("data") or {}
        if not data.get("suggestions"):
            return httpx.Response(200, json={})  # nothing to show: done
        ids = chatwoot_ids(str((data.get("conversation") or {}).get("external_id") or ""))
        if ids is None:
            return httpx.Response(422, json={"error": "not a Chatwoot conversation"})
        account_id, conversation_id = ids
        url = f"{self.base_url}/api/v1/accounts/{account_id}/conversations/{conversation_id}/messages"
        response = self.client.post(
            url,
            headers={"api_access_token": self.token},
            json={"content": note_content(data), "message_type": "outgoing", "private": True},
        )
        # the note is no message to the customer: no channel_message_id to record
        return httpx.Response(200, json={}) if response.is_success else response

    def close(self) -> None:
        self.client.close()
