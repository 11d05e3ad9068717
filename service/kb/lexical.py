"""Lexical retrieval: BM25 (bm25s) with one index per language, Snowball stemming and stop words.

Tokens are stemmed with the article's language (PyStemmer) and then stripped of accents, so "envío", "envio"
and "envíos" meet. Each language gets its own index, so IDF is computed among articles a customer of that
language can be shown.

Scripts written without spaces between words (Chinese, Japanese kana and kanji, Thai, Lao, Khmer, Myanmar) and
Korean Hangul (spaces between phrases, particles glued to the word) would otherwise make a whole sentence one
token. Their runs become overlapping character bigrams ("パスワード" -> "パス", "スワ", "ワー", "ード"), the
dependency-free standard of CJK search engines (Lucene's CJKAnalyzer, Elasticsearch's `cjk_bigram`): a query
shares bigrams with the passages that contain its words, whatever the segmentation. A run of one character
stays a unigram. This applies to every language's index, so a Japanese product name in an English article is
found too.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import bm25s
import numpy as np
import Stemmer
from bm25s import stopwords as bm25_stopwords

log = logging.getLogger("replydesk.kb.lexical")

_TOKEN_RE = re.compile(r"\w+", re.UNICODE)
# Han (CJK ideographs and extensions, compatibility ideographs), Hiragana, Katakana (+ half-width), Hangul
# syllables and jamo, Thai, Lao, Myanmar, Khmer.
_UNSPACED = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U0003134f"
)
_UNSPACED_RUN = re.compile(f"[{_UNSPACED}]+")
_STOPWORDS = {
    "en": bm25_stopwords.STOPWORDS_EN,
    "es": bm25_stopwords.STOPWORDS_SPANISH,
    "de": bm25_stopwords.STOPWORDS_GERMAN,
    "fr": bm25_stopwords.STOPWORDS_FRENCH,
    "pt": bm25_stopwords.STOPWORDS_PORTUGUESE,
    "it": bm25_stopwords.STOPWORDS_ITALIAN,
    "nl": bm25_stopwords.STOPWORDS_DUTCH,
    "sv": bm25_stopwords.STOPWORDS_SWEDISH,
    "da": bm25_stopwords.STOPWORDS_DANISH,
    "no": bm25_stopwords.STOPWORDS_NORWEGIAN,
    "ru": bm25_stopwords.STOPWORDS_RUSSIAN,
    "tr": bm25_stopwords.STOPWORDS_TURKISH,
}
_SNOWBALL = {
    "en": "english",
    "es": "spanish",
    "de": "german",
    "fr": "french",
    "pt": "portuguese",
    "it": "italian",
    "nl": "dutch",
    "sv": "swedish",
    "da": "danish",
    "no": "norwegian",
    "ru": "russian",
    "tr": "turkish",
    "fi": "finnish",
    "hu": "hungarian",
    "ro": "romanian",
    "ca": "catalan",
    "el": "greek",
    "id": "indonesian",
}


def _strip_accents(token: str) -> str:
    decomposed = unicodedata.normalize("NFKD", token)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


class Analyzer:
    """Text -> index terms for one language."""

    def __init__(self, language: str) -> None:
        self.language = language
        algorithm = _SNOWBALL.get(language)
        self._stemmer = Stemmer.Stemmer(algorithm) if algorithm in Stemmer.algorithms() else None
        self._stop = frozenset(_STOPWORDS.get(language, ()))

    def __call__(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFKC", text).lower()
        grams = [g for run in _UNSPACED_RUN.findall(text) for g in char_bigrams(run)]
        words = [
            w
            for w in _TOKEN_RE.findall(_UNSPACED_RUN.sub(" ", text))
            if w not in self._stop and (len(w) > 1 or w.isdigit())
        ]
        if self._stemmer is not None:
            words = self._stemmer.stemWords(words)
        return [_strip_accents(w) for w in words] + grams


def char_bigrams(run: str) -> list[str]:
    """Overlapping character bigrams of a run of unspaced script; a single character stays itself."""
    if len(run) < 2:
        return [run] if run else []
    return [run[i : i + 2] for i in range(len(run) - 1)]


@lru_cache(maxsize=64)
def analyzer(language: str) -> Analyzer:
    return Analyzer(language)


class LexicalIndex:
    """BM25 over chunks, one bm25s index per language; scores come back over global chunk positions."""

    def __init__(
        self, texts: Sequence[str], languages: Sequence[str], *, k1: float = 1.2, b: float = 0.75
    ) -> None:
        self.size = len(texts)
        self._by_lang: dict[str, tuple[bm25s.BM25, np.ndarray]] = {}
        langs = np.asarray(languages, dtype=object)
        for lang in sorted(set(languages)):
            positions = np.flatnonzero(langs == lang)
            tokens = [analyzer(lang)(texts[int(p)]) or ["\u2205"] for p in positions]
            bm25 = bm25s.BM25(k1=k1, b=b)
            bm25.index(tokens, show_progress=False)
            self._by_lang[lang] = (bm25, positions)

    @property
    def languages(self) -> list[str]:
        return sorted(self._by_lang)

    def search(
        self, query: str, *, language: str, top_n: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Best `top_n` (chunk position, score) among chunks of `language`, restricted to `allowed` (bool
        mask)."""
        entry = self._by_lang.get(language)
        if entry is None:
            return []
        bm25, positions = entry
        tokens = analyzer(language)(query)
        ids = bm25.get_tokens_ids(tokens)
        if not ids:
            return []
        scores = bm25.get_scores_from_ids(ids)
        if allowed is not None:
            scores = np.where(allowed[positions], scores, 0.0)
        n = min(top_n, int(np.count_nonzero(scores > 0)))
        if n == 0:
            return []
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(positions[i]), float(scores[i])) for i in top]
