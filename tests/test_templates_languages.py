"""Offline reply templates for the 12 languages added in #15: complete (same keys and placeholders as
English), chosen by the customer's detected language, written in the register the culture expects, and safe
for right-to-left display."""

from __future__ import annotations

import re
import unicodedata

import pytest
from jinja2 import Environment, meta

from service import yamlfile
from service.drafting.drafter import Drafter
from service.drafting.models import GroundingArticle
from service.drafting.templates import TEMPLATES_DIR, DraftPlan, TemplateLibrary
from service.settings import Settings
from service.tone.checker import ToneChecker
from service.tone.models import Severity
from service.triage.language import LanguageDetector
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

NEW_LANGUAGES = ["ar", "id", "hi", "tr", "it", "ru", "nl", "pl", "ja", "zh", "vi", "ko"]
# One everyday customer message per language (written for this test): "where is my order NW-48213?".
CUSTOMER = {
    "ar": "مرحبا، أين طلبي رقم NW-48213؟ لم يصل حتى الآن",
    "id": "Halo, pesanan saya NW-48213 sampai sekarang belum datang, di mana ya?",
    "hi": "नमस्ते, मेरा ऑर्डर NW-48213 अभी तक नहीं आया है, वह कहाँ है?",
    "tr": "Merhaba, NW-48213 numaralı siparişim hâlâ gelmedi, nerede acaba?",
    "it": "Buongiorno, il mio ordine NW-48213 non è ancora arrivato, dove si trova?",
    "ru": "Здравствуйте, мой заказ NW-48213 до сих пор не пришёл, где он?",
    "nl": "Hallo, mijn bestelling NW-48213 is nog steeds niet aangekomen, waar is die?",
    "pl": "Dzień dobry, moje zamówienie NW-48213 nadal nie dotarło, gdzie ono jest?",
    "ja": "注文番号NW-48213の商品がまだ届いていません。今どこにありますか？",
    "zh": "你好，我的订单NW-48213到现在还没有送到，请问在哪里？",
    "vi": "Chào shop, đơn hàng NW-48213 của tôi đến giờ vẫn chưa nhận được, đang ở đâu vậy?",
    "ko": "안녕하세요, 주문번호 NW-48213 상품이 아직 도착하지 않았어요. 어디쯤 있나요?",
}
# The register each language's drafts must show (see the header comment of each templates/<lang>.yaml).
REGISTER = {
    "ar": r"كم",  # plural of respect: لكم، رسالتكم
    "id": r"\bAnda\b|Bapak/Ibu|\b(?:[Mm]ohon|[Kk]ami)\b",
    "hi": r"आप|कृपया",  # आप, or the polite कृपया of a short request
    "tr": r"(?:iniz|ınız|unuz|ünüz|siniz|sınız|size|sizin)\b",
    "it": r"\b(?:Lei|Le|La|Suo|Sua)\b",
    "ru": r"\bВ(?:ы|ас|ам|аш\w*)\b",
    "nl": r"\bu(?:w)?\b",
    "pl": r"(?i)\b(?:prosimy|dziękujemy|przepraszamy|chętnie|pomożemy|oczywiście|odnotowaliśmy"
    r"|przekazaliśmy)\b",
    "ja": r"(?:です|ます|ございます|ください|ません)",
    "zh": r"您",
    "vi": r"Quý khách|chúng tôi",
    "ko": r"(?:니다|니까|요|십시오)",
}
LOCALES = {
    "ar": "ar-SA", "id": "id-ID", "hi": "hi-IN", "tr": "tr-TR", "it": "it-IT", "ru": "ru-RU", "nl": "nl-NL",
    "pl": "pl-PL", "ja": "ja-JP", "zh": "zh-CN", "vi": "vi-VN", "ko": "ko-KR",
}  # fmt: skip
TAXONOMY = load_taxonomy()
ARTICLE = GroundingArticle(
    article_id="track-your-order",
    title="Track your order",
    locale="en",
    url="https://help.northwind.example/en/orders/track-your-order",
    summary="To track an order, open Orders in the Northwind app, tap the order, then tap Track package.",
    snippet="",
)


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


def _triage(code: str, intent: str, *, sentiment: str = "neutral") -> TriageRead:
    spec = TAXONOMY.get(intent)
    return TriageRead(
        language=Language(code=code, confidence=0.95, source="text"),
        intent=Intent(name=intent, confidence=0.9, out_of_scope=False),
        urgency=Urgency(level=UrgencyLevel.normal, score=0.35),
        sentiment=Sentiment(label=SentimentLabel(sentiment), score=0.0),
        entities=[],
        automatable=bool(spec and spec.automatable),
    )


@pytest.fixture(scope="module")
def library() -> TemplateLibrary:
    return TemplateLibrary()


@pytest.fixture(scope="module")
def tone() -> ToneChecker:
    return ToneChecker.from_path(None, default_locale="en")


@pytest.fixture(scope="module")
def drafter(tone) -> Drafter:
    return Drafter.from_settings(Settings(llm_base_url=None), tone=tone)


@pytest.mark.parametrize("code", NEW_LANGUAGES)
def test_every_key_and_placeholder_of_the_english_file_exists_in_the_language(code):
    english, mine = _strings(_raw("en")), _strings(_raw(code))
    en_keys = {k for k in english if not k.startswith("article_language.")}
    assert en_keys <= set(mine), sorted(en_keys - set(mine))
    # a marker for every other bundled language
    markers = {k for k in mine if k.startswith("article_language.")}
    assert markers == {
        f"article_language.{c}" for c in ["en", "es", "de", "fr", "pt", *NEW_LANGUAGES] if c != code
    }
    for key in en_keys - {"language", "version", "name"}:
        assert _placeholders(mine[key]) == _placeholders(english[key]), (code, key)
    assert mine["language"] == code


def test_the_library_loads_all_seventeen_languages_and_maps_region_tags_to_them(library):
    assert set(NEW_LANGUAGES) <= set(library.languages)
    assert len(library.languages) == 20  # + hi-Latn, ar-Latn, tl (tests/test_code_mixed.py)
    assert library.for_language("zh-TW").language == "zh"
    assert library.for_language("pt_BR").language == "pt"
    assert library.for_language("ko").ref == "templates.ko.v1"
    assert library.for_language("sw").language == "en"  # no Swahili file: the default language


@pytest.mark.parametrize("code", NEW_LANGUAGES)
def test_a_customer_message_is_answered_in_the_language_triage_detects(drafter, code):
    detected = LanguageDetector().detect(CUSTOMER[code])
    assert detected.code == code
    triage = _triage(detected.code, "order_status")
    result = drafter.draft(CUSTOMER[code], triage, [ARTICLE], locale=LOCALES[code])
    assert result.language == code
    assert result.prompt_version == f"templates.{code}.v1"
    assert result.drafts
    for draft in result.drafts:
        found = LanguageDetector().detect_text(draft.text)
        assert found is not None and found[0] == code, (draft.text, found)
        assert re.search(REGISTER[code], draft.text), draft.text


POLITE_END = {
    "ja": r"(?:です|ます|ました|ございます|ください|ません|でしょうか|こんにちは|どういたしまして)"
    r"[。！？!?]?$",
    "ko": r"(?:니다|니까|십시오|요|고객님)[.!?]?$",  # "안녕하세요, 고객님." ends in the vocative
}


@pytest.mark.parametrize("code", sorted(POLITE_END))
def test_every_japanese_and_korean_sentence_ends_in_a_polite_form(code):
    """ja: です・ます (teineigo); ko: 합쇼체/해요체 — never a plain or 반말 ending."""
    for key, text in _strings(_raw(code)).items():
        if key in {"language", "version", "name", "and"} or key.startswith("article_language."):
            continue
        rendered = text.replace("{{ asks }}", "X").replace("{{ url }}", "")
        for sentence in filter(None, (s.strip() for s in re.split(r"(?<=[。！？.!?])\s*", rendered))):
            if sentence.rstrip("：: ").endswith(
                ("ご覧ください", "확인하실 수 있습니다")
            ) or not sentence.strip("：: "):
                continue
            assert re.search(POLITE_END[code], sentence), (key, sentence)


@pytest.mark.parametrize("code", NEW_LANGUAGES)
def test_every_draft_is_mobile_sized_and_passes_the_tone_check_in_its_locale(drafter, tone, code):
    long_article = ARTICLE.model_copy(update={"summary": "Tracking details. " * 40, "locale": code})
    for intent in TAXONOMY.names:
        for articles in ([], [long_article]):
            for sentiment in ("neutral", "negative"):
                result = drafter.draft(
                    "x", _triage(code, intent, sentiment=sentiment), articles, locale=LOCALES[code]
                )
                assert result.language == code
                for d in result.drafts:
                    assert len(d.text) <= 600, (intent, d.text)
                    check = tone.check(d.text, LOCALES[code])
                    bad = [f for f in check.findings if f.severity in (Severity.warn, Severity.block)]
                    assert not bad, (intent, d.text, bad)


def _first_strong(text: str) -> str | None:
    for ch in text:
        direction = unicodedata.bidirectional(ch)
        if direction in ("L", "R", "AL"):
            return direction
    return None


def test_arabic_lines_start_right_to_left_and_links_end_the_sentence(library):
    """Channels without dir="auto" take a paragraph's direction from its first strong character, so every
    Arabic template string starts with an Arabic letter; the URL closes `more_info` (no punctuation after it
    to be reordered), and no bidi control characters are needed."""
    for key, text in _strings(_raw("ar")).items():
        if key in {"language", "version", "name"}:
            continue
        assert _first_strong(text) in ("R", "AL"), (key, text)
        assert not re.search("[\u202a-\u202e\u2066-\u2069]", text), key
    assert _raw("ar")["more_info"].rstrip().endswith("{{ url }}")
    plan = DraftPlan(
        intent="order_status",
        negative=False,
        urgent=False,
        needs_human=False,
        asks=[],
        article=ARTICLE,
        article_in_language=False,
        article_language="en",
    )
    for draft in library.for_language("ar").drafts(plan):
        for paragraph in draft.text.split("\n\n"):
            assert _first_strong(paragraph) in ("R", "AL"), paragraph
