"""What the console shows, without a browser: countdown text, keyboard neighbours, which drafts are offered,
status ticks, and the session cookie and CSRF tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.console.session import SessionCodec, load_or_create_secret
from service.console.views import draft_cards, neighbours, remaining_text, tick
from service.workflow.models import (
    Direction,
    MessageKind,
    MessageRead,
    MessageStatus,
    SuggestionRead,
    SuggestionStatus,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _suggestion(id_: int, message_id: int, rank: int, status: SuggestionStatus, **kw) -> SuggestionRead:
    return SuggestionRead(
        id=id_,
        conversation_id=1,
        message_id=message_id,
        rank=rank,
        status=status,
        draft_text=f"draft {id_}",
        created_at=NOW,
        **kw,
    )


def test_the_countdown_text_reads_time_left_or_overdue():
    assert remaining_text(NOW + timedelta(minutes=4, seconds=5), NOW) == "4 min 05 s left"
    assert remaining_text(NOW - timedelta(seconds=90), NOW) == "overdue 1 min 30 s"
    assert remaining_text(NOW + timedelta(hours=2, minutes=3), NOW) == "2 h 03 min left"
    assert remaining_text(None, NOW) == "no wait"


def test_keyboard_neighbours_follow_the_queue_order():
    assert neighbours([5, 3, 9], 3) == (5, 9)
    assert neighbours([5, 3, 9], 5) == (None, 3)
    assert neighbours([5, 3, 9], 9) == (3, None)
    assert neighbours([5, 3, 9], 42) == (None, 5)  # resolved or filtered out: next is the queue's first
    assert neighbours([], 42) == (None, None)


def test_only_the_newest_messages_pending_drafts_are_offered_best_first():
    suggestions = [
        _suggestion(1, 10, 1, SuggestionStatus.superseded),
        _suggestion(2, 11, 2, SuggestionStatus.pending),
        _suggestion(3, 11, 1, SuggestionStatus.pending, draft_tone_findings=[{"severity": "block"}]),
        _suggestion(4, 11, 3, SuggestionStatus.pending),
        _suggestion(5, 11, 4, SuggestionStatus.pending),
        _suggestion(6, 10, 2, SuggestionStatus.rejected, decided_at=NOW),
    ]
    cards, decided = draft_cards(suggestions)
    assert [(c.index, c.suggestion.id) for c in cards] == [(1, 3), (2, 2), (3, 4)]
    assert cards[0].blocking and not cards[1].blocking
    assert [s.id for s in decided] == [6]


def test_a_failed_message_tick_carries_its_reason():
    msg = MessageRead(
        id=1,
        conversation_id=1,
        channel="whatsapp",
        direction=Direction.outbound,
        kind=MessageKind.reply,
        status=MessageStatus.failed,
        text="hi",
        created_at=NOW,
        error="131047: outside the 24 h window",
    )
    t = tick(msg)
    assert (t.label, t.status, t.detail) == ("Failed", "failed", "131047: outside the 24 h window")
    assert tick(msg.model_copy(update={"status": MessageStatus.read, "error": None})).label == "Read"


def test_a_session_cookie_is_refused_when_tampered_with_or_expired():
    codec = SessionCodec("s3cret", max_age_s=3600)
    cookie = codec.issue("key_abc")
    session = codec.read(cookie)
    assert session is not None and session.key_id == "key_abc"
    assert codec.read(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")) is None
    assert SessionCodec("other", max_age_s=3600).read(cookie) is None
    assert SessionCodec("s3cret", max_age_s=-1).read(cookie) is None  # older than max age
    assert codec.read(None) is None and codec.read("") is None


def test_csrf_tokens_match_only_their_own_nonce():
    codec = SessionCodec("s3cret", max_age_s=3600)
    nonce = codec.new_csrf_nonce()
    token = codec.csrf_token(nonce)
    assert codec.csrf_valid(nonce, token)
    assert not codec.csrf_valid(codec.new_csrf_nonce(), token)
    assert not codec.csrf_valid(nonce, None) and not codec.csrf_valid(None, token)


def test_the_generated_secret_is_kept_and_private(tmp_path):
    first = load_or_create_secret(None, tmp_path)
    assert load_or_create_secret(None, tmp_path) == first
    assert (tmp_path / "console_session.key").stat().st_mode & 0o077 == 0
    assert load_or_create_secret("configured", tmp_path) == "configured"
