"""Resolution and satisfaction surveys: resolving queues a localized CSAT or NPS question (per channel, with
an off switch); replies are parsed from digits, words and emoji, and anything unreadable is kept as a
comment."""

from __future__ import annotations

import pytest

from service.workflow.models import SurveyKind
from service.workflow.surveys import parse_answer, question
from tests.workflow_harness import harness


@pytest.mark.parametrize(
    "text,score",
    [
        ("5", 5),
        ("4/5", 4),
        ("I'd say 3 out of 5", 3),
        ("five", 5),
        ("cinco", 5),
        ("vier", 4),
        ("⭐⭐⭐⭐", 4),
        ("⭐⭐⭐⭐⭐ thank you!", 5),
        ("😀", 5),
        ("😞", 1),
        ("🙂🙂", 4),
        ("excellent", 5),
        ("muy bien", 4),
        ("terrible service", 1),
        ("10/10", 5),
        ("2 - slow answers", 2),
    ],
)
def test_csat_replies_are_read_from_digits_words_and_emoji(text, score):
    assert parse_answer(text, SurveyKind.csat).score == score


@pytest.mark.parametrize(
    "text,score",
    [("9", 9), ("0", 0), ("10/10", 10), ("8 de 10", 8), ("diez", 10), ("😀", 10), ("😞", 0), ("4/5", 8)],
)
def test_nps_replies_are_read_on_the_0_to_10_scale(text, score):
    assert parse_answer(text, SurveyKind.nps).score == score


@pytest.mark.parametrize(
    "text",
    [
        "my order 123456 still has not arrived",
        "6",
        "3 or 4",
        "not good",
        "😀😞",
        "why do you ask?",
        "",
    ],
)
def test_unreadable_or_out_of_range_csat_replies_have_no_score_and_are_kept(text):
    parsed = parse_answer(text, SurveyKind.csat)
    assert parsed.score is None
    assert parsed.comment == (text or None)


def test_a_score_with_words_keeps_the_words_as_a_comment():
    parsed = parse_answer("4 - quick, but the courier was rude", SurveyKind.csat)
    assert parsed.score == 4 and parsed.comment == "quick, but the courier was rude"


def test_questions_are_localized_with_an_english_fallback():
    assert question(SurveyKind.csat, "es-MX").startswith("¿Qué tan satisfecho")
    assert "0" in question(SurveyKind.nps, "pt-BR") and "Northwind" in question(SurveyKind.nps, "pt-BR")
    assert question(SurveyKind.csat, "ja-JP") == question(SurveyKind.csat, "en")


def _resolve(h, text="Can I get an invoice for my last order?", locale="es-MX", **body):
    ingested = h.ingest(text, locale=locale)
    conv = ingested["conversation"]["id"]
    h.post(f"/v1/suggestions/{ingested['suggestions'][0]['id']}/approve")
    r = h.post(f"/v1/conversations/{conv}/resolve", json=body)
    assert r.status_code == 200, r.text
    return conv, r.json()


def test_resolving_queues_a_localized_csat_survey_and_a_reply_scores_it(wf):
    conv, resolved = _resolve(wf)
    assert resolved["conversation"]["status"] == "resolved"
    survey = resolved["survey"]
    assert survey["kind"] == "csat" and survey["locale"] == "es"
    assert resolved["survey_message"]["text"].startswith("¿Qué tan satisfecho")
    assert resolved["survey_message"]["kind"] == "survey" and resolved["survey_message"]["status"] == "queued"
    assert wf.post(f"/v1/conversations/{conv}/resolve").status_code == 409

    wf.clock.advance(minutes=3)
    reply = wf.ingest("⭐⭐⭐⭐⭐ muy rápido", locale="es-MX")
    assert reply["survey_id"] == survey["id"]
    assert reply["message"]["kind"] == "survey_reply"
    assert reply["suggestions"] == [] and reply["pipeline"]["status"] == "skipped"
    assert reply["conversation"]["status"] == "resolved"
    stored = wf.get(f"/v1/conversations/{conv}").json()["surveys"][0]
    assert stored["status"] == "answered" and stored["score"] == 5 and stored["comment"] == "muy rápido"


def test_an_unreadable_reply_is_kept_as_a_comment_and_reopens_the_conversation(wf):
    conv, resolved = _resolve(wf, locale="en-GB")
    reply = wf.ingest("Actually the invoice has the wrong address")
    assert reply["conversation"]["status"] == "open" and reply["suggestions"]
    survey = wf.get(f"/v1/conversations/{conv}").json()["surveys"][0]
    assert survey["status"] == "commented" and survey["score"] is None
    assert survey["comment"] == "Actually the invoice has the wrong address"


def test_nps_per_channel_and_the_off_switches(db_url, tmp_path, app):
    shared = app.state.container
    with harness(db_url, tmp_path, shared, survey_by_channel={"default": "csat", "whatsapp": "nps"}) as h:
        _, resolved = _resolve(h, locale="en-US")
        assert resolved["survey"]["kind"] == "nps"
        assert "0 (not at all) to 10" in resolved["survey_message"]["text"]
        _, explicit_off = _resolve(h, locale="en-US", survey="off")
        assert explicit_off["survey"] is None
    with harness(db_url, tmp_path, shared, surveys_enabled=False) as h:
        _, resolved = _resolve(h, locale="en-US", text="Where is my order 556677?")
        assert resolved["survey"] is None and resolved["survey_message"] is None


def test_a_survey_answer_from_a_button_is_recorded_once(wf):
    _, resolved = _resolve(wf, locale="en-US")
    sid = resolved["survey"]["id"]
    r = wf.post(f"/v1/surveys/{sid}/responses", role="integration", json={"text": "4"})
    assert r.json()["score"] == 4 and r.json()["status"] == "answered"
    assert wf.post(f"/v1/surveys/{sid}/responses", role="integration", json={"text": "5"}).status_code == 409
