"""Issue #12, item 3: what comes back from the LLM. A draft never shows a card or an IBAN in clear (only
"card ending 0004"), never a security code or password, whatever the LLM wrote; and the sender's country and
profile name travel from the channel webhook to the redaction."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest

from eval.pii import PiiRun
from service.pii.models import PiiType
from service.pii.redaction import Redactor, restore_draft
from service.pipeline.service import MessagePipeline
from service.settings import Settings
from service.tone.checker import ToneChecker
from tests.pii_harness import ask, reaches
from tests.test_adapters_meta import wa_message
from tests.workflow_harness import harness, use_pipeline

CARD = "4386 2093 0506 7590"
IBAN = "ES47 2002 9772 7693 1098 0274"


@pytest.fixture(scope="module")
def tone() -> ToneChecker:
    return ToneChecker.from_path(None, default_locale="en")


@pytest.fixture()
def run(tone: ToneChecker) -> Iterator[PiiRun]:
    runner = PiiRun.build(Settings(llm_base_url=None), tone)
    yield runner
    runner.close()


def _drafts(run: PiiRun, text: str, reply: str, language: str = "en") -> list[str]:
    run.llm.reply = reply
    _, result = ask(run, text, language=language)
    texts = [d.text for d in result.drafts if d.generator == "llm"]
    assert texts, f"the LLM draft was dropped: {result.llm_outcome}"
    return texts


def test_a_draft_echoing_the_card_placeholder_shows_only_its_last_four_digits(run):
    texts = _drafts(
        run,
        f"my card {CARD} was charged twice",
        "We are sorry: the second charge on your card [CARD_1] will be refunded within five days.",
    )
    assert "your card ending 7590 will" in texts[0]
    assert not reaches(CARD, texts[0])


def test_a_draft_spelling_out_the_raw_card_digits_still_shows_only_ending_7590(run):
    texts = _drafts(
        run,
        f"my card {CARD} was charged twice",
        f"We are sorry: the second charge on {CARD.replace(' ', '')} will be refunded within five days.",
    )
    assert "card ending 7590" in texts[0] and not reaches(CARD, texts[0])


def test_a_draft_never_shows_an_iban_a_security_code_or_a_password(run):
    texts = _drafts(
        run,
        f"refund to {IBAN}; my card {CARD} cvv 417 and my password: Quartz!Pelican4",
        "Gracias. Haremos el reembolso al IBAN [IBAN_1] en cinco días; nunca comparta el código [CVV_1] "
        "ni su contraseña [SECRET_1] con nadie.",
        language="es",
    )
    assert "IBAN terminado en 0274" in texts[0]
    for value in (IBAN, "417", "Quartz!Pelican4"):
        assert not reaches(value, texts[0])
    assert "•••" in texts[0]


def test_other_placeholders_come_back_as_the_customer_wrote_them(run):
    texts = _drafts(
        run,
        "order nw-55821 never arrived, write to ana@mail.example.com",
        "Sorry about order [ORDER_1]; we will write to [EMAIL_1] as soon as the courier answers us.",
    )
    assert "order nw-55821;" in texts[0] and "ana@mail.example.com" in texts[0]


@pytest.mark.parametrize(
    ("language", "draft", "shown"),
    [
        ("en", "Refund to [CARD_1].", "Refund to card ending 7590."),
        ("en", "Refund to your card [CARD_1].", "Refund to your card ending 7590."),
        ("es", "Reembolso en su tarjeta [CARD_1].", "Reembolso en su tarjeta terminada en 7590."),
        ("de", "Erstattung auf [CARD_1].", "Erstattung auf Karte mit den Endziffern 7590."),
        ("fr", "Remboursement sur [IBAN_1].", "Remboursement sur IBAN se terminant par 0274."),
        ("pt", "Reembolso no IBAN [IBAN_1].", "Reembolso no IBAN terminado em 0274."),
    ],
)
def test_masked_values_read_naturally_in_the_drafts_language(language, draft, shown):
    redactor = Redactor()
    redactor.placeholder(PiiType.card_number, CARD)
    redactor.placeholder(PiiType.iban, IBAN)
    assert restore_draft(draft, redactor.mapping, language) == shown


def test_the_agents_handoff_note_shows_the_card_and_iban_masked_and_leaves_secrets_out(run):
    _, result = ask(run, f"refund the card {CARD} to {IBAN}, my PIN is 7304")
    note = result.handoff_summary
    assert note is not None
    assert "payment card ending 7590" in note.known and "IBAN ending 0274" in note.known
    assert not any(reaches(v, note.text) for v in (CARD, IBAN, "7304"))


def test_context_facts_from_the_shop_are_redacted_too(run):
    class Fact:
        text = "Order NW-40917 ships to 19 Larkspur Road, London SW9 7QT"

    sent, _ = ask(run, "where is my order?", facts=[Fact()])
    assert not reaches("19 Larkspur Road", sent) and not reaches("SW9 7QT", sent)
    assert "[ADDRESS_1]" in sent


# -- from the WhatsApp webhook to the LLM request ---------------------------------------------------------

SECRET = "meta-app-secret"


def test_a_whatsapp_senders_country_and_profile_name_reach_the_redaction(db_url, tmp_path, app, tone):
    """The WhatsApp payload carries the sender's international number (`wa_id`, German here) and profile
    name, but no locale: the national number and the name in the text never reach the LLM."""
    runner = PiiRun.build(Settings(llm_base_url=None), tone)
    shared = app.state.container
    with harness(db_url, tmp_path, shared, whatsapp_app_secret=SECRET) as h:
        use_pipeline(h.app, MessagePipeline(shared.triage, shared.kb, runner.drafter))
        # English text: only the sender's country (DE, from the wa_id) reads the national number
        text = "Hi, it's Jonas. The courier can use 0151 23456789 when he is at the door."
        body = json.dumps(wa_message(text, "wamid.pii1", "4917612345678", name="Jonas Weber")).encode()
        r = h.client.post(
            "/v1/channels/whatsapp/webhook",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": "sha256="
                + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
            },
            params={"api_key": h.keys["integration"]},
        )
        assert r.status_code == 200, r.text
        assert h.run_pipelines() == 1  # the workers run the pipeline of a message the webhook stored
    runner.close()
    sent = "\n".join(str(m["content"]) for req in runner.llm.requests for m in req["messages"])
    assert runner.llm.requests, "the LLM was never asked"
    assert not reaches("0151 23456789", sent) and not reaches("Jonas", sent)
    assert "[PHONE_1]" in sent and "[NAME_1]" in sent
