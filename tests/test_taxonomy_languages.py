"""The bundled taxonomy speaks 17 languages and four code-mixed varieties, and the multilingual dev and test
sets cover every intent in every language without repeating the taxonomy's examples.

Each group of examples in `service/triage/taxonomy_multilingual.yaml` (the bundled taxonomy with a
multilingual encoder) is headed by a `# <language>` comment. The headings
are not trusted: an example counts for its language only when its script says so (Arabic, Devanagari,
Cyrillic, kana, Han, Hangul) or, for Latin-script languages, when the project's language detector
(langdetect where the detector abstains on a chat-length message) names that language.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path

import pytest
from langdetect import DetectorFactory, detect_langs
from langdetect.lang_detect_exception import LangDetectException
from rapidfuzz import fuzz, process

from service import yamlfile
from service.settings import REPO_ROOT
from service.triage.language import LanguageDetector, normalise_code
from service.triage.taxonomy import BUNDLED_MULTILINGUAL_TAXONOMY, OUT_OF_SCOPE, load_taxonomy

LANGUAGES = (
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
    "ko",
)
CODE_MIXED = ("hi-Latn", "ar-Latn", "tl-en", "es-en")
LANGUAGE_NEUTRAL = "any"  # `asdfghjkl`, `🙂`: out-of-scope noise that belongs to no language
MIN_EXAMPLES_PER_LANGUAGE = 4
MIN_CODE_MIXED_PER_INTENT = 2
DEV_SET = REPO_ROOT / "eval" / "data" / "multilingual_dev.jsonl"
TEST_SET = REPO_ROOT / "eval" / "data" / "multilingual_test.jsonl"
MIN_DEV_PER_INTENT_AND_LANGUAGE = 3
MIN_TEST_PER_INTENT_AND_LANGUAGE = 1
MIN_DEV_OUT_OF_SCOPE_PER_LANGUAGE = 4
# Two texts this similar (rapidfuzz ratio on normalised text, 0-100) are one text lightly edited.
NEAR_DUPLICATE_RATIO = 90
# Short chat messages defeat statistical detection now and then; a set whose language labels the script or the
# detector confirm less often than this has labels to fix.
MIN_CONFIRMED_LABEL_SHARE = 0.85

_HEADING = re.compile(r"^\s*# (\S+)\s*$")
_ARABIZI_DIGIT = re.compile(r"[a-z][2357]|[2357][a-z]", re.IGNORECASE)


def _script_share(text: str, prefixes: tuple[str, ...]) -> float:
    letters = [unicodedata.name(ch, "") for ch in text if ch.isalpha()]
    if not letters:
        return 0.0
    return sum(name.startswith(prefixes) for name in letters) / len(letters)


def _has_script(text: str, prefixes: tuple[str, ...]) -> bool:
    return any(unicodedata.name(ch, "").startswith(prefixes) for ch in text if ch.isalpha())


@cache
def _detector() -> LanguageDetector:
    return LanguageDetector()


def confirms_language(text: str, language: str) -> bool:
    """Whether the text itself shows it is written in `language` (script first, the detector for Latin)."""
    if language == "ar":
        return _script_share(text, ("ARABIC",)) > 0.5
    if language == "hi":
        return _script_share(text, ("DEVANAGARI",)) > 0.5
    if language == "ru":
        return _script_share(text, ("CYRILLIC",)) > 0.5
    if language == "ja":
        return _has_script(text, ("HIRAGANA", "KATAKANA"))
    if language == "zh":
        return _has_script(text, ("CJK",)) and not _has_script(text, ("HIRAGANA", "KATAKANA", "HANGUL"))
    if language == "ko":
        return _script_share(text, ("HANGUL",)) > 0.5
    if language in CODE_MIXED:
        latin = _script_share(text, ("LATIN",)) == 1.0
        return latin and (language != "ar-Latn" or bool(_ARABIZI_DIGIT.search(text)))
    found = _detector().detect_text(text)
    if found is not None:
        return found[0] == language
    return _langdetect_top(text) == language


def _langdetect_top(text: str) -> str | None:
    """langdetect's first guess (seed fixed) for chat-length text the project's detector leaves undecided."""
    DetectorFactory.seed = 0
    try:
        ranked = detect_langs(text)
    except LangDetectException:
        return None
    return normalise_code(ranked[0].lang) if ranked else None


def _normalise(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join("".join(ch if ch.isalnum() else " " for ch in folded).split())


# -- the taxonomy's language headings ------------------------------------------------------------------------


def examples_by_heading() -> dict[str, dict[str, list[str]]]:
    """{intent or `out_of_scope`: {language heading: [example, ...]}} read from the YAML text itself."""
    groups: dict[str, dict[str, list[str]]] = {}
    name = section = heading = None
    for line in BUNDLED_MULTILINGUAL_TAXONOMY.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"^  - name: (\S+)\s*$", line):
            name, section = match.group(1), None
        elif re.match(r"^    examples:\s*$", line):
            section, heading = name, None
        elif line.startswith("out_of_scope_examples:"):
            section, heading = OUT_OF_SCOPE, None
        elif section is None:
            continue
        elif match := _HEADING.match(line):
            heading = match.group(1)
        elif re.match(r"^\s+- ", line):
            assert heading is not None, (
                f"example without a `# <language>` heading in {section}: {line.strip()}"
            )
            (item,) = yamlfile.safe_load(line.strip())
            groups.setdefault(section, {}).setdefault(heading, []).append(str(item).strip())
    return groups


def test_every_example_sits_under_a_known_language_heading_and_the_headings_cover_the_whole_taxonomy():
    tax = load_taxonomy(BUNDLED_MULTILINGUAL_TAXONOMY)
    groups = examples_by_heading()
    known = set(LANGUAGES) | set(CODE_MIXED) | {LANGUAGE_NEUTRAL}
    for section, by_heading in groups.items():
        assert set(by_heading) <= known, f"{section}: unknown headings {set(by_heading) - known}"
    for name, spec in tax.intents.items():
        headed = [ex for examples in groups[name].values() for ex in examples]
        assert Counter(headed) == Counter(spec.examples), name
    headed_oos = [ex for examples in groups[OUT_OF_SCOPE].values() for ex in examples]
    assert Counter(headed_oos) == Counter(tax.oos_examples)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_intent_has_at_least_four_examples_that_really_are_in_each_language(language: str):
    groups = examples_by_heading()
    short = {}
    for name in load_taxonomy(BUNDLED_MULTILINGUAL_TAXONOMY).names:
        confirmed = [ex for ex in groups[name].get(language, []) if confirms_language(ex, language)]
        if len(confirmed) < MIN_EXAMPLES_PER_LANGUAGE:
            short[name] = confirmed
    assert not short, f"intents with fewer than {MIN_EXAMPLES_PER_LANGUAGE} {language} examples: {short}"


def test_every_intent_has_code_mixed_or_romanised_examples():
    groups = examples_by_heading()
    for name in load_taxonomy(BUNDLED_MULTILINGUAL_TAXONOMY).names:
        mixed = [
            ex
            for variety in CODE_MIXED
            for ex in groups[name].get(variety, [])
            if confirms_language(ex, variety)
        ]
        assert len(mixed) >= MIN_CODE_MIXED_PER_INTENT, (name, mixed)
    for variety in CODE_MIXED:
        assert any(variety in by_heading for by_heading in groups.values()), variety


def test_out_of_scope_examples_include_the_new_languages():
    oos = examples_by_heading()[OUT_OF_SCOPE]
    for language in LANGUAGES:
        assert any(confirms_language(ex, language) for ex in oos.get(language, [])), language


def test_the_language_check_tells_scripts_and_languages_apart():
    """The check above would be worthless if it accepted anything: it must reject a wrong label."""
    assert confirms_language("注文をキャンセルしたいです", "ja")
    assert not confirms_language("我要取消订单", "ja")
    assert confirms_language("我要取消订单", "zh")
    assert not confirms_language("주문 취소하고 싶어요", "zh")
    assert not confirms_language("хочу отменить заказ", "ar")
    assert confirms_language("ich möchte meine bestellung stornieren bitte", "de")
    assert not confirms_language("ich möchte meine bestellung stornieren bitte", "nl")
    assert confirms_language("law sama7t cancel el order", "ar-Latn")
    assert not confirms_language("please cancel the order", "ar-Latn")


# -- the multilingual dev and test sets ----------------------------------------------------------------------


def _rows(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def dev_rows() -> list[dict[str, str]]:
    return _rows(DEV_SET)


@pytest.fixture(scope="module")
def test_rows() -> list[dict[str, str]]:
    return _rows(TEST_SET)


@pytest.mark.parametrize("path", [DEV_SET, TEST_SET], ids=["dev", "test"])
def test_set_rows_name_a_taxonomy_intent_and_a_listed_language(path: Path):
    names = set(load_taxonomy(BUNDLED_MULTILINGUAL_TAXONOMY).names) | {OUT_OF_SCOPE}
    allowed = set(LANGUAGES) | set(CODE_MIXED)
    for row in _rows(path):
        assert set(row) == {"text", "intent", "language"}, row
        assert row["text"].strip(), row
        assert row["intent"] in names, row
        assert row["language"] in allowed, row


def test_dev_set_has_three_messages_per_intent_and_language_plus_code_mixed_and_out_of_scope_rows(dev_rows):
    counts = Counter((r["intent"], r["language"]) for r in dev_rows)
    for name in load_taxonomy(BUNDLED_MULTILINGUAL_TAXONOMY).names:
        for language in LANGUAGES:
            assert counts[name, language] >= MIN_DEV_PER_INTENT_AND_LANGUAGE, (name, language)
        for variety in CODE_MIXED:
            assert counts[name, variety] >= 1, (name, variety)
    for language in LANGUAGES:
        assert counts[OUT_OF_SCOPE, language] >= MIN_DEV_OUT_OF_SCOPE_PER_LANGUAGE, language


def test_test_set_has_a_message_per_intent_and_language(test_rows):
    counts = Counter((r["intent"], r["language"]) for r in test_rows)
    for name in load_taxonomy(BUNDLED_MULTILINGUAL_TAXONOMY).names:
        for language in LANGUAGES:
            assert counts[name, language] >= MIN_TEST_PER_INTENT_AND_LANGUAGE, (name, language)


@pytest.mark.parametrize("which", ["dev", "test"])
def test_set_language_labels_match_the_text(which: str, dev_rows, test_rows):
    rows = dev_rows if which == "dev" else test_rows
    by_language: dict[str, list[bool]] = defaultdict(list)
    for row in rows:
        by_language[row["language"]].append(confirms_language(row["text"], row["language"]))
    for language, confirmed in by_language.items():
        share = sum(confirmed) / len(confirmed)
        assert share >= MIN_CONFIRMED_LABEL_SHARE, (language, round(share, 2))


def _near_duplicates(texts: list[str], others: list[str]) -> list[tuple[str, str, float]]:
    left = [_normalise(t) for t in texts]
    right = [_normalise(t) for t in others]
    scores = process.cdist(left, right, scorer=fuzz.ratio, score_cutoff=NEAR_DUPLICATE_RATIO, dtype="uint8")
    hits = []
    for i, j in zip(*scores.nonzero(), strict=True):
        hits.append((texts[i], others[j], float(scores[i, j])))
    return hits


def _taxonomy_texts() -> list[str]:
    texts, _ = load_taxonomy(BUNDLED_MULTILINGUAL_TAXONOMY).training_data()
    return texts


@pytest.mark.parametrize("which", ["dev", "test"])
def test_no_set_message_repeats_or_lightly_edits_a_taxonomy_example(which: str, dev_rows, test_rows):
    rows = dev_rows if which == "dev" else test_rows
    examples = _taxonomy_texts()
    texts = [r["text"] for r in rows]
    exact = {_normalise(t) for t in texts} & {_normalise(t) for t in examples}
    assert not exact, sorted(exact)[:20]
    assert not _near_duplicates(texts, examples)[:20]


def test_test_set_shares_no_message_with_the_dev_set(dev_rows, test_rows):
    dev = [r["text"] for r in dev_rows]
    held_out = [r["text"] for r in test_rows]
    assert not _near_duplicates(held_out, dev)[:20]


@pytest.mark.parametrize("path", [DEV_SET, TEST_SET], ids=["dev", "test"])
def test_sets_hold_no_duplicate_messages(path: Path):
    normalised = Counter(_normalise(r["text"]) for r in _rows(path))
    assert [t for t, n in normalised.items() if n > 1] == []


def test_the_overlap_check_catches_a_lightly_edited_example():
    assert _near_duplicates(["where is my order??"], ["where is my order?"])
    assert _near_duplicates(["我的订单到哪了"], ["我的订单到哪了？"])
    assert not _near_duplicates(["when does my parcel arrive"], ["where is my order?"])
