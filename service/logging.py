"""JSON logs on stderr: one object per line, with any `extra=` fields kept, and credentials redacted.

`install_log_redaction()` (called by `configure_logging` and `Container.start`) wraps the log record factory:
every record, from any logger (httpx, httpcore, openai, uvicorn's access log, ours), has its message, args and
traceback redacted when it is created, so no handler, ours or one attached later (pytest's caplog, an APM
agent), sees a credential. A filter would not do: a logger's filters miss its children's records
(`httpcore.http11`) and a handler's filters only guard that handler. `extra=` fields are set after the record
is created; `JsonFormatter` redacts them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

from service.redaction import redact, redact_values

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_REDACTING = "_replydesk_redacting"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = redact_values(value)
        if record.exc_info:
            payload["exc"] = redact(record.exc_text or self.formatException(record.exc_info))
        return json.dumps(payload, default=str, ensure_ascii=False)


def _redact_arg(arg: Any) -> Any:
    """An argument as it was, or its redacted text when that text carries a credential."""
    if isinstance(arg, int | float | bool) or arg is None:
        return arg
    text = arg if isinstance(arg, str) else str(arg)
    redacted = redact(text)
    return arg if redacted == text else redacted


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact each of the record's args (kept a tuple or mapping: some formatters unpack them, uvicorn's
    access log does); should the formatted message still carry a credential (in the template itself), replace
    the message by its redacted text. The traceback is pre-formatted, redacted."""
    if isinstance(record.args, Mapping):
        record.args = {k: _redact_arg(v) for k, v in record.args.items()}
    elif isinstance(record.args, tuple):
        record.args = tuple(_redact_arg(a) for a in record.args)
    try:
        message = record.getMessage()
    except (TypeError, ValueError, KeyError):  # a bad format string: the handler reports it as usual
        return record
    redacted = redact(message)
    if redacted != message:
        record.msg, record.args = redacted, None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    return record


def install_log_redaction() -> None:
    """Redact every log record of this process from now on (idempotent)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, _REDACTING, False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(previous(*args, **kwargs))

    setattr(factory, _REDACTING, True)
    logging.setLogRecordFactory(factory)


def configure_logging(level: str = "INFO") -> None:
    install_log_redaction()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
