"""Satisfaction surveys: localized CSAT (1–5) / NPS (0–10) questions and parsing of the customer's free-text
answer (digits, number words, rating words, ⭐ counts and face emoji)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import emoji

from service.workflow.models import SurveyKind

QUESTIONS: dict[str, dict[SurveyKind, str]] = {
    "en": {
        SurveyKind.csat: "How satisfied are you with our help today? Reply with a number from 1 (very "
        "unhappy) to 5 (very happy).",
        SurveyKind.nps: "How likely are you to recommend Northwind Goods to a friend? Reply with a number "
        "from 0 (not at all) to 10 (extremely likely).",
    },
    "es": {
        SurveyKind.csat: "¿Qué tan satisfecho está con nuestra ayuda de hoy? Responda con un número del 1 "
        "(muy insatisfecho) al 5 (muy satisfecho).",
        SurveyKind.nps: "¿Qué tan probable es que recomiende Northwind Goods a un amigo? Responda con un "
        "número del 0 (nada probable) al 10 (muy probable).",
    },
    "pt": {
        SurveyKind.csat: "Qual é a sua satisfação com o nosso atendimento hoje? Responda com um número de 1 "
        "(muito insatisfeito) a 5 (muito satisfeito).",
        SurveyKind.nps: "Qual a probabilidade de recomendar a Northwind Goods a um amigo? Responda com um "
        "número de 0 (nenhuma) a 10 (muito provável).",
    },
    "fr": {
        SurveyKind.csat: "Êtes-vous satisfait de notre aide aujourd'hui ? Répondez par un chiffre de 1 (très "
        "mécontent) à 5 (très satisfait).",
        SurveyKind.nps: "Quelle est la probabilité que vous recommandiez Northwind Goods à un ami ? Répondez "
        "par un chiffre de 0 (pas du tout) à 10 (très probable).",
    },
    "de": {
        SurveyKind.csat: "Wie zufrieden sind Sie heute mit unserer Hilfe? Antworten Sie mit einer Zahl von 1 "
        "(sehr unzufrieden) bis 5 (sehr zufrieden).",
        SurveyKind.nps: "Wie wahrscheinlich ist es, dass Sie Northwind Goods einem Freund empfehlen? "
        "Antworten Sie mit einer Zahl von 0 (gar nicht) bis 10 (äußerst wahrscheinlich).",
    },
    "it": {
        SurveyKind.csat: "Quanto è soddisfatto del nostro aiuto di oggi? Risponda con un numero da 1 (per "
        "niente) a 5 (molto soddisfatto).",
        SurveyKind.nps: "Quanto è probabile che consigli Northwind Goods a un amico? Risponda con un numero "
        "da 0 (per niente) a 10 (molto probabile).",
    },
}

SCALE = {SurveyKind.csat: (1, 5), SurveyKind.nps: (0, 10)}

NUMBER_WORDS: dict[str, int] = {}
for _lang_words in (
    "zero one two three four five six seven eight nine ten",
    "cero uno dos tres cuatro cinco seis siete ocho nueve diez",
    "zero um dois tres quatro cinco seis sete oito nove dez",
    "zero un deux trois quatre cinq six sept huit neuf dix",
    "null eins zwei drei vier funf sechs sieben acht neun zehn",
    "zero uno due tre quattro cinque sei sette otto nove dieci",
):
    for _value, _word in enumerate(_lang_words.split()):
        NUMBER_WORDS.setdefault(_word, _value)
NUMBER_WORDS.update({"una": 1, "uma": 1, "une": 1, "ein": 1, "eine": 1, "duas": 2})

# CSAT rating words (1–5); NPS maps them onto 0–10.
RATING_WORDS: dict[str, int] = {
    # en
    "terrible": 1,
    "awful": 1,
    "horrible": 1,
    "bad": 2,
    "poor": 2,
    "ok": 3,
    "okay": 3,
    "fine": 3,
    "average": 3,
    "good": 4,
    "great": 5,
    "excellent": 5,
    "amazing": 5,
    "perfect": 5,
    "awesome": 5,
    # es / pt
    "pesimo": 1,
    "malo": 2,
    "mal": 2,
    "regular": 3,
    "bien": 4,
    "bueno": 4,
    "buena": 4,
    "excelente": 5,
    "genial": 5,
    "perfecto": 5,
    "ruim": 2,
    "otimo": 5,
    "bom": 4,
    "boa": 4,
    "perfeito": 5,
    # fr / de / it
    "nul": 1,
    "mauvais": 2,
    "moyen": 3,
    "bon": 4,
    "parfait": 5,
    "schlecht": 2,
    "gut": 4,
    "ausgezeichnet": 5,
    "perfekt": 5,
    "pessimo": 1,
    "cattivo": 2,
    "buono": 4,
    "ottimo": 5,
    "perfetto": 5,
}
NEGATORS = {"not", "no", "nao", "pas", "nicht", "non"}

FACE_SCORES: dict[str, int] = {  # CSAT scale
    "😡": 1,
    "🤬": 1,
    "😠": 1,
    "😞": 1,
    "😢": 1,
    "😭": 1,
    "👎": 1,
    "☹️": 2,
    "☹": 2,
    "🙁": 2,
    "😕": 2,
    "😟": 2,
    "😐": 3,
    "😑": 3,
    "🙂": 4,
    "😊": 4,
    "👍": 4,
    "😀": 5,
    "😃": 5,
    "😄": 5,
    "😁": 5,
    "🤩": 5,
    "😍": 5,
    "🥰": 5,
    "❤️": 5,
    "❤": 5,
    "💯": 5,
    "🙌": 5,
    "👏": 5,
}
STARS = ("⭐", "🌟", "★")
_OUT_OF = re.compile(r"(?<!\d)(\d{1,2})\s*(?:/|out of|de|sur|von|di|em|su)\s*(5|10)(?!\d)", re.IGNORECASE)
_INTEGER = re.compile(r"(?<![\d.,])(\d{1,3})(?![\d.,]\d)")
MAX_WORDS_FOR_BARE_NUMBER = 8


@dataclass(frozen=True)
class ParsedAnswer:
    score: int | None
    comment: str | None
    method: str  # digits | out_of | word | rating_word | stars | emoji | none


def language_of(locale: str | None, fallback: str = "en") -> str:
    lang = (locale or "").replace("_", "-").split("-")[0].lower()
    return lang if lang in QUESTIONS else (fallback if fallback in QUESTIONS else "en")


def question(kind: SurveyKind, locale: str | None, fallback: str = "en") -> str:
    return QUESTIONS[language_of(locale, fallback)][kind]


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def _scale_from_csat(score: int, kind: SurveyKind) -> int:
    return score if kind is SurveyKind.csat else {1: 0, 2: 3, 3: 6, 4: 8, 5: 10}[score]


def _comment(text: str, used: str | None) -> str | None:
    rest = text.replace(used, " ", 1) if used else text
    rest = re.sub(r"\s+", " ", rest).strip(" .,!-:;/")
    return rest if len(rest) >= 3 and any(ch.isalpha() for ch in rest) else None


def parse_answer(text: str, kind: SurveyKind) -> ParsedAnswer:
    """Read a score from a free-text survey reply; anything unreadable is kept whole as a comment."""
    lo, hi = SCALE[kind]
    raw = text.strip()
    folded = _fold(raw)

    m = _OUT_OF.search(raw)
    if m:
        value, scale = int(m.group(1)), int(m.group(2))
        if 0 <= value <= scale:
            score = value if scale == hi else round(value * hi / scale) if kind is SurveyKind.nps else None
            if kind is SurveyKind.csat and scale == 10:
                score = max(1, round(value / 2))
            if score is not None and lo <= score <= hi:
                return ParsedAnswer(score, _comment(raw, m.group(0)), "out_of")

    words = re.findall(r"\w+", folded)
    numbers = [int(n) for n in _INTEGER.findall(raw)]
    in_range = sorted({n for n in numbers if lo <= n <= hi})
    if len(in_range) == 1 and len(numbers) == 1 and len(words) <= MAX_WORDS_FOR_BARE_NUMBER:
        return ParsedAnswer(in_range[0], _comment(raw, str(in_range[0])), "digits")
    if numbers:
        # Other numbers (an order number, several candidates): not a clear score.
        return ParsedAnswer(None, raw or None, "none")

    stars = sum(raw.count(s) for s in STARS)
    if stars:
        stars = min(stars, 5)
        rest = raw.replace("\ufe0f", "")
        for star in STARS:
            rest = rest.replace(star, " ")
        return ParsedAnswer(_scale_from_csat(stars, kind), _comment(rest, None), "stars")

    if len(words) <= MAX_WORDS_FOR_BARE_NUMBER:
        found = [NUMBER_WORDS[w] for w in words if w in NUMBER_WORDS and lo <= NUMBER_WORDS[w] <= hi]
        if len(set(found)) == 1:
            return ParsedAnswer(found[0], None, "word")

        negated = any(w in NEGATORS for w in words)
        rated = {RATING_WORDS[w] for w in words if w in RATING_WORDS}
        if len(rated) == 1 and not negated:
            return ParsedAnswer(
                _scale_from_csat(rated.pop(), kind), raw if len(words) > 1 else None, "rating_word"
            )

    faces = [FACE_SCORES[e["emoji"]] for e in emoji.emoji_list(raw) if e["emoji"] in FACE_SCORES]
    if faces and len(set(faces)) == 1:
        return ParsedAnswer(
            _scale_from_csat(faces[0], kind), _comment(emoji.replace_emoji(raw, ""), None), "emoji"
        )
    return ParsedAnswer(None, raw or None, "none")
