"""Romanised and code-mixed customers are answered in the language they actually write (issue #15).

Hinglish is detected as `hi-Latn`, Arabizi (Egyptian, Levantine, Gulf, Maghrebi spellings) as `ar-Latn`,
Tagalog and Taglish as `tl`; Spanglish is answered in the language that frames it (Spanish-framed → `es`).
English, Spanish, Hindi in Devanagari and Arabic in Arabic script keep their tags. Offline drafts come from
the variety's own templates (never Devanagari Hindi for a Hinglish writer) and link articles in the languages
these writers read first, marked with the article's language. Every message below was written for this test.
"""

from __future__ import annotations

import numpy as np
import pytest
from jinja2 import Environment, meta

from service import yamlfile
from service.drafting.drafter import Drafter
from service.drafting.models import GroundingArticle
from service.drafting.slots import SlotResolver
from service.drafting.templates import TEMPLATES_DIR, TemplateLibrary
from service.kb import ann as ann_mod
from service.kb.articles import Article
from service.kb.chunking import chunk_articles
from service.kb.retrieval import Corpus, reading_languages, search
from service.settings import Settings
from service.tone.checker import ToneChecker
from service.triage.language import LanguageDetector, canonical_tag
from service.triage.models import (
    Intent,
    Language,
    Sentiment,
    SentimentLabel,
    TriageRead,
    Urgency,
    UrgencyLevel,
)
from service.triage.taxonomy import load_taxonomy

VARIETIES = ["hi-Latn", "ar-Latn", "tl"]
BASE_LANGUAGES = [
    "en",
    "es",
    "de",
    "fr",
    "pt",
    "ar",
    "id",
    "hi",
    "tr",
    "it",
    "ru",
    "nl",
    "pl",
    "ja",
    "zh",
    "vi",
]
BASE_LANGUAGES += ["ko"]

HINGLISH = [
    "mera order abhi tak nahi aaya, kab tak aayega?",
    "bhai refund kab milega, 10 din ho gaye",
    "kya aap mera address change kar sakte ho?",
    "kab aayega",  # two words: the vote path
    "shukriya bhaiya",
    "size chhota hai, exchange karna hai mujhe",
]
ARABIZI = [
    "ana 3ayez a3raf el shohna wasalet fein",  # Egyptian
    "mafeesh 7ad byrod 3alaya men embare7",  # Egyptian
    "marhaba, shu sar bel talab taba3i? sar lo jem3a",  # Levantine
    "kifak, bade erja3 el kanze, ktir kbire 3alay",  # Levantine
    "abgha arja3 el order, mo 3ajebni",  # Gulf
    "salam, bghit nbeddel l3onwan dyal la commande",  # Maghrebi (Moroccan)
    "3ayez a3raf",  # two words: the vote path
]
TAGLISH = [
    "hello po, nasaan na po yung order ko? 2 weeks na",
    "pwede po bang i-cancel yung order ko",
    "salamat po!",  # the vote path
    "hindi pa dumarating yung refund ko, ano na po update?",
    "sira yung charger na dumating, paano po ibalik?",
]
# Spanish-framed Spanglish gets Spanish (the matrix language decides); English-framed stays English
SPANGLISH = [
    ("quiero saber cuándo llega mi order, ya pagué el shipping", "es"),
    ("mi package nunca llegó y el tracking no dice nada", "es"),
    ("my pedido never came and nobody answers", "en"),
]
UNCHANGED = [
    ("where is my order? it was supposed to arrive on monday", "en"),
    ("hi", "en"),
    ("thanks so much, all sorted now", "en"),
    ("can you send the PO number for this invoice please", "en"),  # `po` is not Tagalog here
    ("is kaya open on sunday at 5 pm", "en"),
    ("got it 2day, the 3rd box was missing, mp3 player fine", "en"),  # English chat digits are not Arabizi
    ("hola, ¿dónde está mi pedido? todavía no llega", "es"),
    ("el paquete llegó roto y quiero un reembolso", "es"),
    ("मेरा ऑर्डर अभी तक नहीं आया, कृपया मदद कीजिए", "hi"),
    ("طلبي لم يصل حتى الآن، أرجو المساعدة", "ar"),
    ("wo ist mein paket? es ist immer noch nicht da", "de"),
    ("hai kak, pesanan saya belum sampai", "id"),
    ("hai ngày rồi mà đơn hàng vẫn chưa tới", "vi"),  # `hai` is Vietnamese "two" here
]


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector("en")


@pytest.mark.parametrize("text", HINGLISH)
def test_hinglish_is_detected_as_hindi_in_latin_script(detector, text):
    assert detector.detect(text).code == "hi-Latn"


@pytest.mark.parametrize("text", ARABIZI)
def test_arabizi_of_every_dialect_is_detected_as_arabic_in_latin_script(detector, text):
    assert detector.detect(text).code == "ar-Latn"


@pytest.mark.parametrize("text", TAGLISH)
def test_tagalog_and_taglish_are_detected_as_tagalog(detector, text):
    assert detector.detect(text).code == "tl"


@pytest.mark.parametrize(("text", "expected"), SPANGLISH)
def test_spanglish_takes_the_language_that_frames_it(detector, text, expected):
    assert detector.detect(text).code == expected


@pytest.mark.parametrize(("text", "expected"), UNCHANGED)
def test_english_spanish_hindi_arabic_and_other_messages_keep_their_language(detector, text, expected):
    assert detector.detect(text).code == expected


def test_a_filipino_locale_hint_is_tagalog_and_tags_are_spelt_canonically(detector):
    assert detector.detect("ok", locale="fil-PH").code == "tl"
    assert canonical_tag("HI_latn_in") == "hi-Latn-IN"
    assert canonical_tag("fil-PH") == "tl-PH"
    assert canonical_tag("english") is None


# -- templates -----------------------------------------------------------------------------------------------


def _raw(code: str) -> dict:
    return yamlfile.safe_load((TEMPLATES_DIR / f"{code}.yaml").read_text(encoding="utf-8"))


def _strings(data: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_strings(value, f"{prefix}{key}."))
        elif isinstance(value, str):
            out[f"{prefix}{key}"] = value
    return out


def _placeholders(text: str) -> set[str]:
    return meta.find_undeclared_variables(Environment().parse(text))


@pytest.mark.parametrize("code", VARIETIES)
def test_each_variety_has_its_own_complete_template_file(code):
    """Every key of en.yaml with the same placeholders, and a language marker for every bundled language."""
    english, mine = _strings(_raw("en")), _strings(_raw(code))
    en_keys = {k for k in english if not k.startswith("article_language.")}
    assert en_keys <= set(mine), sorted(en_keys - set(mine))
    for key in en_keys - {"language", "version", "name"}:
        assert _placeholders(mine[key]) == _placeholders(english[key]), (code, key)
    markers = {k.removeprefix("article_language.") for k in mine if k.startswith("article_language.")}
    assert set(BASE_LANGUAGES) - {code} <= markers
    assert mine["language"] == code


def test_every_slot_has_an_ask_in_each_variety():
    for name, spec in SlotResolver.load().book.slots.items():
        assert set(VARIETIES) <= set(spec.ask), name


def test_a_latin_script_tag_never_falls_back_to_another_scripts_templates():
    library = TemplateLibrary()
    assert library.for_language("hi-Latn-IN").language == "hi-Latn"
    assert library.for_language("hi").language == "hi"
    assert library.for_language("fil-PH").language == "tl"
    assert library.for_language("ru-Latn").language == "en"  # not the Cyrillic file
    assert library.for_language("zh-Hant-TW").language == "zh"  # a script of the same family still maps


# -- drafts --------------------------------------------------------------------------------------------------

TAXONOMY = load_taxonomy()


def _article(locale: str) -> GroundingArticle:
    return GroundingArticle(
        article_id=f"start-a-return-{locale}",
        title="Start a return",
        locale=locale,
        url=f"https://help.northwind.example/{locale}/returns/start-a-return",
        summary="Open Orders, choose the item and tap Return; print the label and drop the parcel off.",
        snippet="",
    )


def _triage(code: str, intent: str) -> TriageRead:
    spec = TAXONOMY.get(intent)
    return TriageRead(
        language=Language(code=code, confidence=0.9, source="text"),
        intent=Intent(name=intent, confidence=0.9, out_of_scope=False),
        urgency=Urgency(level=UrgencyLevel.normal, score=0.35),
        sentiment=Sentiment(label=SentimentLabel.neutral, score=0.0),
        entities=[],
        automatable=bool(spec and spec.automatable),
    )


@pytest.fixture(scope="module")
def drafter() -> Drafter:
    return Drafter.from_settings(
        Settings(llm_base_url=None), tone=ToneChecker.from_path(None, default_locale="en")
    )


DRAFT_CASES = [
    # (customer message, article language, a phrase of the variety's templates, the link's language marker)
    ("mujhe ye jacket wapas karni hai, kaise karun?", "en", "Kripya humein", "(English mein)"),
    ("3ayez arag3 el jacket, a3mel eh?", "ar", "Law sama7tum", "(bel 3arabi)"),
    ("paano po ibabalik yung jacket? medyo maliit", "en", "Pakipadala po", "(sa English)"),
]


@pytest.mark.parametrize(("text", "article_language", "phrase", "marker"), DRAFT_CASES)
def test_offline_drafts_are_in_the_customers_variety_and_mark_the_linked_articles_language(
    detector, drafter, text, article_language, phrase, marker
):
    code = detector.detect(text).code
    article = _article(article_language)
    result = drafter.draft(text, _triage(code, "return_item"), [article])
    assert result.language == code and result.prompt_version == f"templates.{code}.v1"
    first = result.drafts[0]
    assert phrase in first.text, first.text
    assert article.url in first.text and marker in first.text, first.text
    assert first.cited_article_ids == [article.article_id]


# -- articles ------------------------------------------------------------------------------------------------

DIM = 4


def _kb_article(locale: str) -> Article:
    return Article(
        id=f"returns-{locale}",
        title=f"returns ({locale})",
        locale=locale,
        intents=("return_item",),
        tags=(),
        url=f"https://help.northwind.example/{locale}/returns",
        summary="About returns.",
        updated_at="2025-03-01",
        body="## Returns\n\n1. Step one.\n2. Step two.\n",
    )


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    """One article about returns in each of en, es, hi and ar; hand-made vectors (the language rule alone)."""
    articles = [_kb_article(loc) for loc in ("en", "es", "hi", "ar")]
    chunks = chunk_articles(articles)
    rows = []
    for _ in chunks:
        v = np.zeros(DIM, dtype=np.float32)
        v[0] = 1.0
        v[DIM - 1] = 0.15  # every translation equally close: the language order alone decides
        rows.append(v / np.linalg.norm(v))
    vectors = np.asarray(rows, dtype=np.float32)
    return Corpus(articles, chunks, vectors, ann_mod.build(vectors, ann_mod.IndexType.flat))


def _query() -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[0] = 1.0
    return v


@pytest.mark.parametrize(
    ("tag", "default_locale", "first"),
    [
        ("hi-Latn", "en", "returns-en"),  # Hinglish: English before Hindi
        ("hi-Latn", "es", "returns-en"),  # ... before the default locale's too
        ("ar-Latn", "en", "returns-ar"),  # Arabizi: Arabic-script articles
        ("tl", "es", "returns-en"),  # no Tagalog article: English before the default locale's
        ("hi", "en", "returns-hi"),  # Devanagari Hindi is unchanged
    ],
)
def test_romanised_varieties_get_articles_in_the_languages_their_writers_read_first(
    corpus, tag, default_locale, first
):
    result = search(corpus, "x", _query(), locale=tag, default_locale=default_locale, k=4)
    assert result.hits[0].article_id == first
    assert result.hits[0].locale == first.removeprefix("returns-")


def test_reading_order_of_each_variety():
    assert reading_languages("hi-Latn-IN") == ("en", "hi")
    assert reading_languages("ar-Latn") == ("ar",)
    assert reading_languages("fil-PH") == ("tl", "en")
    assert reading_languages("es-MX") == ("es",)


@pytest.mark.parametrize(
    ("target", "draft"),
    [
        (
            "hi-Latn",
            "Namaste! Aapka order kal tak pahunch jayega. Kya aap apna order number bata sakte hain?",
        ),
        ("ar-Latn", "Ahlan! El order beta3ak hyewsal bokra inshallah. Momken terselna ra2am el order?"),
        ("tl", "Hello po! Darating po ang order ninyo bukas. Pakibigay po ang order number ninyo."),
    ],
)
def test_an_llm_draft_in_the_customers_variety_passes_the_language_check(target, draft):
    from service.drafting.checks import DraftLanguage

    assert DraftLanguage().mismatch(draft, target) is None


@pytest.mark.parametrize("target", ["hi-Latn", "ar-Latn", "tl"])
def test_an_english_draft_for_a_code_mixed_customer_is_caught_as_english(target):
    from service.drafting.checks import DraftLanguage

    draft = "Hello! Your order will arrive tomorrow. Could you share your order number so we can check it?"
    assert DraftLanguage().mismatch(draft, target) == "en"
