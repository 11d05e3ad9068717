"""THE seam to the LLM: one OpenAI-compatible client per process, structured output, one re-ask, call logging.

Everything that talks to a language model goes through `LLMClient.structured()`:

* the request carries the pydantic schema as `response_format` (`json_schema`, or `json_object` / plain prompt
for
  servers without schema support: `REPLYDESK_LLM_RESPONSE_FORMAT`);
* the answer is validated against the schema; a parse or validation error is sent back to the model once with
the
  error (`REPLYDESK_LLM_REASK_ATTEMPTS`), then the call fails with `LLMError` and the caller falls back;
* transport errors, HTTP errors and timeouts fail at once: the SDK's own retries are off, nothing is re-sent;
* every HTTP attempt produces one `LLMCallLog`: a JSON log line now, and each registered sink gets the record
  (the workflow capability stores them in its database table).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal, TypeVar

import openai
from pydantic import BaseModel, ValidationError

from service.drafting.offload import waiting_on_io
from service.errors import LLMError
from service.redaction import redact
from service.settings import Settings

log = logging.getLogger("replydesk.llm")

T = TypeVar("T", bound=BaseModel)
ResponseFormatMode = Literal["json_schema", "json_object_schema", "json_object", "none"]
SCHEMA_MODES = frozenset(
    {"json_schema", "json_object_schema"}
)  # the server receives (and enforces) the schema
Outcome = Literal["ok", "parse_error", "validation_error", "timeout", "transport_error", "http_error"]

PROMPT_HEADER = "X-ReplyDesk-Prompt"
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
MAX_ERROR_CHARS = 600


@dataclass(frozen=True)
class ChatPrompt:
    """A rendered prompt: which template (name + version) produced which chat messages."""

    name: str
    version: str
    messages: list[dict[str, str]]

    @property
    def ref(self) -> str:
        return f"{self.name}.{self.version}"


@dataclass
class LLMCallLog:
    """One HTTP attempt to the LLM. Sinks receive it; the JSON log line carries the same fields."""

    call_id: str
    exchange_id: str = field(metadata={"help": "Shared by the first ask and its re-ask."})
    prompt_name: str = ""
    prompt_version: str = ""
    model: str = ""
    attempt: int = 1
    outcome: Outcome = "ok"
    latency_ms: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_log_fields(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data


LLMSink = Callable[[LLMCallLog], None]


def _clip(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _strip_fence(content: str) -> str:
    """Some compatible servers wrap JSON in a Markdown fence even in JSON mode."""
    m = _FENCE.match(content)
    return m.group(1) if m else content.strip()


def _parse(content: str, schema: type[T]) -> T:
    """JSON (a Markdown fence around it and raw newlines inside strings are tolerated), then the schema."""
    return schema.model_validate(json.loads(_strip_fence(content), strict=False))


def _validation_summary(exc: ValidationError) -> tuple[Outcome, str]:
    errors = exc.errors(include_url=False, include_input=False)
    kind: Outcome = "validation_error"
    parts = [
        f"{'.'.join(str(p) for p in e.get('loc', ())) or '<root>'}: {e.get('msg', 'invalid')}" for e in errors
    ]
    return kind, _clip("; ".join(parts[:8]))


class LLMClient:
    """Thread-safe; build one per process (`Container.drafter` does)."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 20.0,
        temperature: float = 0.2,
        max_tokens: int = 700,
        response_format: ResponseFormatMode = "json_schema",
        reask_attempts: int = 1,
        seed: int | None = None,
        sinks: Sequence[LLMSink] = (),
        client: openai.OpenAI | None = None,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.timeout_s = timeout_s
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.response_format = response_format
        self.reask_attempts = max(0, reask_attempts)
        self.seed = seed
        self.sinks: list[LLMSink] = list(sinks)
        self._stats: dict[str, Any] = {
            "calls": 0,
            "failed_calls": 0,
            "last_outcome": None,
            "last_error": None,
        }
        # max_retries=0: transport errors and timeouts go straight to the fallback instead of hammering the
        # server.
        self._client = client or openai.OpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",
            timeout=timeout_s,
            max_retries=0,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMClient | None:
        """None when no endpoint is configured (drafts then come from templates)."""
        if not settings.llm_base_url:
            return None
        return cls(
            base_url=settings.llm_base_url,
            model=settings.llm_model,
            api_key=settings.llm_api_key,
            timeout_s=settings.llm_timeout_s,
            temperature=settings.llm_temperature,
            max_tokens=settings.llm_max_tokens,
            response_format=settings.llm_response_format,
            reask_attempts=settings.llm_reask_attempts,
            seed=settings.llm_seed,
        )

    def add_sink(self, sink: LLMSink) -> None:
        """Register a consumer of `LLMCallLog` records. A sink is called inline and must not raise."""
        self.sinks.append(sink)

    def describe(self) -> dict[str, Any]:
        return {
            "base_url": redact(self.base_url),  # a userinfo password or ?api_key= never leaves
            "model": self.model,
            "timeout_s": self.timeout_s,
            "response_format": self.response_format,
            "reask_attempts": self.reask_attempts,
        }

    def stats(self) -> dict[str, Any]:
        """Counters since start-up and the last call's outcome (for /health; no call is made)."""
        return dict(self._stats)

    def close(self) -> None:
        self._client.close()

    # -- the one call --------------------------------------------------------------------------------------

    def structured(self, prompt: ChatPrompt, schema: type[T]) -> T:
        """Ask for an answer matching `schema`; re-ask once on a parse/validation error; else raise
        `LLMError`."""
        messages = list(prompt.messages)
        exchange_id = uuid.uuid4().hex
        last_error = ""
        for attempt in range(1, self.reask_attempts + 2):
            content, record = self._send(prompt, messages, schema, exchange_id, attempt)
            if content is None:  # transport / HTTP / timeout: no re-ask
                self._emit(record)
                raise LLMError(
                    f"LLM call failed: {record.outcome}",
                    details={"reason": record.outcome, "error": record.error},
                )
            try:
                value = _parse(content, schema)
            except json.JSONDecodeError as exc:
                record.outcome, last_error = "parse_error", _clip(f"invalid JSON: {exc}")
            except ValidationError as exc:
                record.outcome, last_error = _validation_summary(exc)
            else:
                self._emit(record)
                return value
            record.error = last_error
            self._emit(record)
            messages = [
                *messages,
                {"role": "assistant", "content": _clip(content, 4000)},
                {"role": "user", "content": self._reask_text(last_error)},
            ]
        raise LLMError(
            "LLM answer did not match the schema", details={"reason": "invalid_output", "error": last_error}
        )

    @staticmethod
    def _reask_text(error: str) -> str:
        return (
            "Your previous answer could not be used: "
            + error
            + "\nAnswer again with only one JSON object that "
            "matches the schema. No Markdown, no text outside the JSON."
        )

    def _request_kwargs(self, prompt: ChatPrompt, schema: type[BaseModel]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "extra_headers": {PROMPT_HEADER: prompt.ref},
        }
        if self.seed is not None:
            kwargs["seed"] = self.seed
        if self.response_format == "json_schema":
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema.__name__, "schema": json_schema_of(schema), "strict": False},
            }
        elif self.response_format == "json_object_schema":  # llama-cpp-python / Anyscale style
            kwargs["response_format"] = {"type": "json_object", "schema": json_schema_of(schema)}
        elif self.response_format == "json_object":
            kwargs["response_format"] = {"type": "json_object"}
        return kwargs

    def _send(
        self,
        prompt: ChatPrompt,
        messages: list[dict[str, str]],
        schema: type[BaseModel],
        exchange_id: str,
        attempt: int,
    ) -> tuple[str | None, LLMCallLog]:
        record = LLMCallLog(
            call_id=uuid.uuid4().hex,
            exchange_id=exchange_id,
            prompt_name=prompt.name,
            prompt_version=prompt.version,
            model=self.model,
            attempt=attempt,
        )
        started = time.perf_counter()
        try:
            with waiting_on_io():  # a pipeline thread lends its CPU slot while the LLM answers
                completion = self._client.chat.completions.create(
                    messages=messages,  # type: ignore[arg-type]
                    **self._request_kwargs(prompt, schema),
                )
        except openai.APITimeoutError as exc:
            record.outcome, record.error = "timeout", _clip(str(exc))
        except openai.APIConnectionError as exc:
            record.outcome, record.error = "transport_error", _clip(str(exc))
        except openai.APIStatusError as exc:
            record.outcome, record.error = "http_error", _clip(f"HTTP {exc.status_code}: {exc.message}")
        except openai.APIError as exc:  # malformed response body and other SDK-level failures
            record.outcome, record.error = "http_error", _clip(str(exc))
        else:
            record.latency_ms = round((time.perf_counter() - started) * 1000, 1)
            usage = completion.usage
            if usage is not None:
                record.prompt_tokens, record.completion_tokens = usage.prompt_tokens, usage.completion_tokens
            choice = completion.choices[0] if completion.choices else None
            content = choice.message.content if choice is not None and choice.message is not None else None
            return content or "", record
        record.latency_ms = round((time.perf_counter() - started) * 1000, 1)
        return None, record

    def _emit(self, record: LLMCallLog) -> None:
        level = logging.INFO if record.outcome == "ok" else logging.WARNING
        log.log(level, "llm call", extra=record.as_log_fields())
        self._stats["calls"] += 1
        self._stats["failed_calls"] += record.outcome != "ok"
        self._stats["last_outcome"], self._stats["last_error"] = record.outcome, record.error
        for sink in self.sinks:
            sink(record)


@lru_cache(maxsize=32)
def json_schema_of(schema: type[BaseModel]) -> dict[str, Any]:
    """The schema's JSON schema, generated once per model class (pydantic takes milliseconds for it)."""
    return schema.model_json_schema()


@lru_cache(maxsize=32)
def schema_hint(schema: type[BaseModel]) -> str:
    """The JSON schema as compact text, for prompts sent to servers without `response_format` support."""
    return json.dumps(json_schema_of(schema), ensure_ascii=False, separators=(",", ":"))
