"""PostgreSQL LISTEN on a connection of its own, kept up while wanted: the one loop behind every NOTIFY
wake-up (the SSE feed's `replydesk_events`, the delivery loop's `replydesk_deliveries`).

Notifications only make things faster: their users also poll, so a lost connection costs latency, never
correctness. On each (re)connection `on_notify` is called once, which covers rows committed while nobody was
listening.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
from sqlalchemy.engine import make_url

from service.db.engine import Database
from service.redaction import redact

LISTEN_CHECK_S = 1.0  # how often the loop looks at `keep_going` while no notification comes
RECONNECT_MAX_S = 10.0  # longest pause between reconnection attempts


def libpq_dsn(db: Database) -> str:
    """`db`'s URL as psycopg connects to it (no SQLAlchemy driver suffix)."""
    return make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)


def listen(
    dsn: str,
    channel: str,
    *,
    on_notify: Callable[[], None],
    keep_going: Callable[[], bool],
    pause: Callable[[float], object],
    connected: threading.Event,
    log: logging.Logger,
    unavailable: str,
    warning: str,
) -> None:
    """LISTEN `channel` and call `on_notify` per notification (and once per connection) until `keep_going()`
    is false; a lost connection is retried with backoff through `pause(seconds)`, logging `unavailable`
    (with the redacted error) to `log` under the `warning` key. `connected` is set while listening."""
    wait = 0.5
    while keep_going():
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f"LISTEN {channel}")
                connected.set()
                wait = 0.5
                on_notify()
                while keep_going():
                    for _ in conn.notifies(timeout=LISTEN_CHECK_S):
                        on_notify()
                return
        except psycopg.Error as exc:
            connected.clear()
            if not keep_going():
                return
            log.warning(unavailable, redact(str(exc)), extra={"warning": warning})
            pause(wait)
            wait = min(wait * 2, RECONNECT_MAX_S)
        finally:
            connected.clear()
