"""Meta Graph API errors (WhatsApp Cloud API, Messenger and Instagram Send API): which ones a retry can fix
and which are permanent, and the sentence an agent reads for the permanent ones.

Graph answers an error with a non-2xx status and `{"error": {"message", "type", "code", "error_subcode",
"error_data": {"details"}, "is_transient", "fbtrace_id"}}` (developers.facebook.com: Graph API › Handling
Errors; WhatsApp Cloud API › Error codes; Messenger Platform › Error codes). Rate limits and Meta-side outages
are retried with the dispatcher's backoff; an error about the request, the recipient, the 24-hour window or
the token is not: the same request would fail again the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from service.integrations.senders.common import json_body, retry, scrub
from service.workflow.webhooks import PermanentFailure

# Throttling: 4 app, 17 user, 32 page, 341 application limit, 613 calls within a time window, 80007 WhatsApp
# Business Account, 130429 Cloud API throughput, 131048 spam rate limit, 131056 business/consumer pair limit.
RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613, 80007, 130429, 131048, 131056})
# Meta-side and temporary: 1 API unknown, 2 API service / temporarily unavailable, 1200 Messenger "temporary
# send message failure", 131000 something went wrong, 131016 service unavailable, 131057 account in
# maintenance mode, 133004 server temporarily unavailable.
TEMPORARY_CODES = frozenset({1, 2, 1200, 131000, 131016, 131057, 133004})
# The token is expired, invalid or lacks a permission: 0 AuthException, 190 access token, 3 capability,
# 10 permission denied, 200-299 API permission.
TOKEN_CODES = frozenset({0, 190, 3, 10, *range(200, 300)})


class GraphError(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: str = ""
    type: str | None = None
    code: int | None = None
    error_subcode: int | None = None
    error_data: dict[str, Any] | str | None = None
    error_user_title: str | None = None
    error_user_msg: str | None = None
    is_transient: bool = False
    fbtrace_id: str | None = None

    @property
    def details(self) -> str:
        data = self.error_data
        details = data.get("details") if isinstance(data, dict) else data
        return details if isinstance(details, str) else ""

    @property
    def said(self) -> str:
        """What Graph said, in one line: the message, then the details when they add something."""
        said = self.message or self.error_user_msg or self.type or "no message"
        if self.details and self.details not in said:
            said = f"{said}: {self.details}"
        return said

    @property
    def retryable(self) -> bool:
        return self.is_transient or self.code in RATE_LIMIT_CODES or self.code in TEMPORARY_CODES


def graph_error(response: httpx.Response) -> GraphError | None:
    """The Graph error of a failed answer, or None when it carries none (a proxy's page, an empty body)."""
    error = json_body(response).get("error")
    if not isinstance(error, dict):
        return None
    try:
        return GraphError.model_validate(error)
    except ValidationError:
        return None


Explain = Callable[[GraphError], str | None]


def graph_failure(
    response: httpx.Response,
    *,
    platform: str,
    token_setting: str,
    explain: Explain,
    secrets: Iterable[str | None],
) -> httpx.Response:
    """A failed Graph answer, classified: rate limits, Meta-side errors (5xx, transient, unknown) come back as
    an answer the dispatcher retries, with what Graph said; an error the same request would meet again is
    raised as `PermanentFailure` with its code and a sentence for the agent (`explain`, or a generic one)."""
    status = response.status_code
    error = graph_error(response)
    if error is None or error.code is None:
        return retry(status, f"{platform} answered HTTP {status} without a Graph error")
    code = str(error.code)
    if status == 429 or status >= 500 or error.retryable:
        kind = "rate limit" if error.code in RATE_LIMIT_CODES or status == 429 else "temporary error"
        return retry(status, scrub(f"{platform} {kind} ({code}): {error.said}", secrets))
    reason = explain(error)
    if reason is None and error.code in TOKEN_CODES:
        reason = (
            f"{platform} refused the access token ({code}): {error.said}. Set a valid token with the "
            f"messaging permission in {token_setting}, then retry the message."
        )
    if reason is None:
        reason = f"{platform} refused the message ({code}): {error.said}"
    raise PermanentFailure(code, scrub(reason, secrets))
