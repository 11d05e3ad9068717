"""Issue #12, item 3: every PII format that used to reach the LLM is redacted before any LLM call, in seven
languages (en, es, de, fr, pt, it, nl).

Each test drafts a reply through the real Drafter and reads what its (in-process) LLM was sent: the draft and
the handoff prompt. The values here are invented; checksummed ones (IBAN, cards, national ids) are valid.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eval.pii import PiiRun
from service.pii.detect import find_pii
from service.pii.models import PiiHints, PiiType
from service.settings import Settings
from service.tone.checker import ToneChecker
from tests.pii_harness import ask, reaches


@pytest.fixture(scope="module")
def tone() -> ToneChecker:
    return ToneChecker.from_path(None, default_locale="en")


@pytest.fixture(scope="module")
def run(tone: ToneChecker) -> Iterator[PiiRun]:
    runner = PiiRun.build(Settings(llm_base_url=None), tone)
    yield runner
    runner.close()


def assert_redacted(run: PiiRun, text: str, value: str, placeholder: str, **kw) -> str:
    sent, _ = ask(run, text, **kw)
    assert not reaches(value, sent), f"{value!r} reached the LLM"
    assert placeholder in sent
    return sent


@pytest.mark.parametrize(
    ("language", "text", "iban"),
    [
        ("en", "refund to GB06 NWBK 5747 6363 3743 55 please", "GB06 NWBK 5747 6363 3743 55"),
        ("es", "la cuenta es ES47 2002 9772 7693 1098 0274", "ES47 2002 9772 7693 1098 0274"),
        ("de", "Erstattung auf DE67085941184278534944, danke", "DE67085941184278534944"),
        ("nl", "mijn iban nl42 abna 3688 1307 00", "nl42 abna 3688 1307 00"),
    ],
)
def test_an_iban_never_reaches_the_llm(run, language, text, iban):
    assert_redacted(run, text, iban, "[IBAN_1]", language=language)


@pytest.mark.parametrize(
    "card", ["4386.2093.0506.7590", "4386  2093  0506  7590", "4386-2093-0506-7590", "4386 2093 0506 7590"]
)
def test_a_card_with_dots_dashes_or_double_spaces_never_reaches_the_llm(run, card):
    assert_redacted(run, f"the payment with {card} failed", card, "[CARD_1]")


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("en", "my card 4532 7781 2290 1185 was declined"),
        ("es", "la tarjeta 4532 7781 2290 1185 no pasa"),
        ("de", "Karte 4532 7781 2290 1185 abgelehnt"),
        ("fr", "ma carte 4532 7781 2290 1185 est refusée"),
        ("pt", "o cartão 4532 7781 2290 1185 foi recusado"),
        ("it", "la carta 4532 7781 2290 1185 non passa"),
        ("nl", "mijn kaart 4532 7781 2290 1185 werkt niet"),
    ],
)
def test_a_number_failing_luhn_next_to_a_card_word_is_still_a_card(run, language, text):
    assert_redacted(run, text, "4532 7781 2290 1185", "[CARD_1]", language=language)


def test_a_luhn_failing_number_without_a_card_word_is_not_called_a_card():
    assert find_pii("tracking 4532 7781 2290 1185 shows nothing") == []


@pytest.mark.parametrize(
    ("language", "text", "cvv", "expiry"),
    [
        ("en", "card 4386 2093 0506 7590 exp 09/28 cvv 417", "417", "09/28"),
        ("es", "tarjeta 4386 2093 0506 7590, caduca 11/27, CVC 902", "902", "11/27"),
        ("de", "Karte 4386 2093 0506 7590 gültig bis 10/28, Prüfnummer 552", "552", "10/28"),
        ("fr", "carte 4386 2093 0506 7590 expire 05/26 cryptogramme 118", "118", "05/26"),
        ("pt", "cartão 4386 2093 0506 7590 validade 12/30 código de segurança 907", "907", "12/30"),
        ("it", "carta 4386 2093 0506 7590 scadenza 07/29 cvv 330", "330", "07/29"),
    ],
)
def test_the_security_code_and_expiry_next_to_a_card_never_reach_the_llm(run, language, text, cvv, expiry):
    sent = assert_redacted(run, text, cvv, "[CVV_1]", language=language)
    assert not reaches(expiry, sent) and "[EXPIRY_1]" in sent


def test_an_ordinary_date_without_a_card_is_left_alone():
    assert find_pii("I bought 2 of them on 12/03 for 129.99") == []


def test_a_national_number_is_read_in_the_senders_country_when_the_locale_names_no_region(run):
    # WhatsApp / Messenger: the adapter knows the sender's country, not a locale. An English message with a
    # German mobile number: English's usual regions (GB, US) would not read it; the sender's country does.
    text = "the courier can use 0151 23456789 when he is at the door"
    assert find_pii(text, PiiHints(language="en")) == []
    sent = assert_redacted(run, text, "0151 23456789", "[PHONE_1]", country="DE")
    assert "0151" not in sent


@pytest.mark.parametrize(
    ("language", "text", "phone"),
    [
        ("en", "i tried 0033 6 12 34 56 78 but nobody answered", "0033 6 12 34 56 78"),
        ("es", "llamadme al 0034 699 876 543 mañana", "0034 699 876 543"),
        ("de", "Rückruf unter 0049 171 9876543 bitte", "0049 171 9876543"),
    ],
)
def test_00_international_prefixes_are_phone_numbers_without_any_region(run, language, text, phone):
    assert_redacted(run, text, phone, "[PHONE_1]", language=language)


def test_the_configured_default_region_reads_national_numbers_when_nothing_else_does(tone):
    # Messenger: neither a locale nor a country; a Spanish number in a message whose language says nothing
    text = "ok, my number: 699 87 65 43"
    assert find_pii(text, PiiHints(language="en")) == []
    runner = PiiRun.build(Settings(llm_base_url=None, pii_default_region="ES"), tone)
    try:
        assert_redacted(runner, text, "699 87 65 43", "[PHONE_1]")
    finally:
        runner.close()


@pytest.mark.parametrize(
    "email",
    [
        "josé.núñez@correo.example.es",
        "jürgen.bäcker@beispiel.example.de",
        "ana@bücher.example",
        "o@xn--bcher-kva.example",
    ],
)
def test_emails_with_non_ascii_local_parts_or_idn_domains_never_reach_the_llm(run, email):
    assert_redacted(run, f"write to {email} please", email, "[EMAIL_1]")


@pytest.mark.parametrize(
    "text", ["nw-55821 still shows processing", "where is Nw-55821?", "bestellung nw-55821"]
)
def test_order_codes_in_any_case_never_reach_the_llm(run, text):
    assert_redacted(run, text, "55821", "[ORDER_1]")


@pytest.mark.parametrize(
    ("language", "text", "street", "postcode"),
    [
        ("en", "Ship to 9 Fenwick Lane, York YO1 7HH", "9 Fenwick Lane", "YO1 7HH"),
        ("en", "new address 2250 Birch Road, Austin, TX 78701", "2250 Birch Road", "78701"),
        ("es", "Enviadlo a Calle del Pez 31, 28004 Madrid", "Calle del Pez 31", "28004"),
        ("de", "Bitte an Ahornweg 3, 50667 Köln", "Ahornweg 3", "50667"),
        ("fr", "Livrez au 5 avenue Foch, 13001 Marseille", "5 avenue Foch", "13001"),
        ("pt", "Morada: Travessa do Loureiro 7, 4050-305 Porto", "Travessa do Loureiro 7", "4050-305"),
        (
            "it",
            "Consegnate in Corso Vittorio Emanuele 60, 10121 Torino",
            "Corso Vittorio Emanuele 60",
            "10121",
        ),
        ("nl", "Bezorg op Dorpsstraat 18, 3511 KL Utrecht", "Dorpsstraat 18", "3511 KL"),
    ],
)
def test_street_addresses_and_postcodes_never_reach_the_llm(run, language, text, street, postcode):
    sent = assert_redacted(run, text, street, "[ADDRESS_1]", language=language)
    assert not reaches(postcode, sent) and "[POSTCODE_1]" in sent


def test_quantities_and_sizes_are_not_addresses():
    assert (
        find_pii("Llegaron 12 cajas de 24 unidades, la mesa mide 120 x 80 cm", PiiHints(language="es")) == []
    )


@pytest.mark.parametrize(
    ("language", "text", "date"),
    [
        ("en", "My date of birth is 28/10/1969", "28/10/1969"),
        ("en", "I was born on July 19, 1994", "July 19, 1994"),
        ("es", "nací el 4 de abril de 1985", "4 de abril de 1985"),
        ("de", "Ich bin am 2. Mai 1961 geboren", "2. Mai 1961"),
        ("fr", "Je suis né le 7 février 1980", "7 février 1980"),
        ("pt", "nasci em 3 de maio de 1972", "3 de maio de 1972"),
        ("it", "nata il 9 settembre 1999", "9 settembre 1999"),
        ("nl", "geboren op 15-01-1977", "15-01-1977"),
    ],
)
def test_dates_of_birth_never_reach_the_llm(run, language, text, date):
    assert_redacted(run, text, date, "[DOB_1]", language=language)


@pytest.mark.parametrize(
    ("language", "text", "value"),
    [
        ("es", "Mi DNI es 61962098Y", "61962098Y"),
        ("es", "NIE Z3977344M, soy residente", "Z3977344M"),
        ("pt", "contribuinte 297635395 para a fatura", "297635395"),
        ("it", "Il mio codice fiscale è VRDLCU78M12H501J", "VRDLCU78M12H501J"),
        ("en", "my SSN is 287-65-4321", "287-65-4321"),
        ("fr", "sécurité sociale 2 92 03 75 123 456 36", "2 92 03 75 123 456 36"),
        ("de", "Steuer-ID: 41 372 159 010", "41 372 159 010"),
        ("nl", "mijn BSN is 128057105", "128057105"),
    ],
)
def test_national_ids_never_reach_the_llm(run, language, text, value):
    assert_redacted(run, text, value, "[ID_1]", language=language)


@pytest.mark.parametrize(
    ("language", "text", "secret"),
    [
        ("en", "password: Quartz!Pelican4 does not work", "Quartz!Pelican4"),
        ("en", "My PIN is 7304, is that needed?", "7304"),
        ("es", "mi contraseña es Membrillo77", "Membrillo77"),
        ("de", "Kennwort: Holunder#12 bitte zurücksetzen", "Holunder#12"),
        ("fr", "mot de passe : Lavande_19", "Lavande_19"),
        ("pt", "senha: Goiaba-551 não entra", "Goiaba-551"),
        ("it", "la password è Ciliegia42", "Ciliegia42"),
        ("nl", "wachtwoord: Molen77 werkt niet", "Molen77"),
    ],
)
def test_passwords_and_pins_after_their_cue_never_reach_the_llm(run, language, text, secret):
    assert_redacted(run, text, secret, "[SECRET_1]", language=language)


@pytest.mark.parametrize("text", ["I forgot my password, how do I reset it?", "my password was changed"])
def test_talking_about_a_password_is_not_a_password(text):
    assert [s for s in find_pii(text) if s.type is PiiType.password] == []


@pytest.mark.parametrize(
    ("language", "profile", "text", "written"),
    [
        ("es", "Íñigo Martínez", "hola, soy inigo martinez, sigo esperando", ["inigo", "martinez"]),
        ("fr", "Gaëlle Lefèvre", "c'est GAELLE lefevre, rien reçu", ["GAELLE", "lefevre"]),
        ("de", "Jürgen Voß", "Hallo, hier ist Juergen Voß.", ["Voß"]),
        (
            "en",
            "Siobhán O'Neill",
            "siobhan o’neill here, the parcel for o'neill never arrived",
            ["siobhan", "neill"],
        ),
    ],
)
def test_the_customers_profile_name_never_reaches_the_llm_in_any_case_or_accent(
    run, language, profile, text, written
):
    sent, _ = ask(run, text, language=language, name=profile)
    for word in written:
        assert not reaches(word, sent), f"{word!r} reached the LLM"
    assert "[NAME_1]" in sent


def test_the_name_is_redacted_in_the_agents_earlier_messages_too(run):
    from service.triage.models import HistoryMessage

    history = [HistoryMessage(role="agent", text="Thanks Lina, we are checking."), HistoryMessage(text="ok")]
    sent, _ = ask(run, "any news?", name="Lina Kovacs", history=history)
    assert not reaches("Lina", sent) and "Thanks [NAME_1]" in sent


@pytest.mark.parametrize(
    "text",
    [
        "The rug costs 89.50 and I ordered 3 of them on 04/11.",
        "Delivery between 14:00-16:30, tracking 1Z88A0X20398713455",
        "La referencia del producto es SKU-77102, talla 38",
        "Artikelnummer 4003994155486 kam beschädigt an",
        "Ho pagato 45,00 € per 2 lampade il 14 aprile",
    ],
)
def test_prices_times_dates_and_product_codes_are_not_redacted(text):
    assert find_pii(text, PiiHints(language="en")) == []
