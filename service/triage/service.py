"""Triage: one message in, every signal out (language, intent, urgency, sentiment, entities, automatable).

The message is embedded once; the vector feeds the intent classifier and is handed back by
`triage_with_embedding` so later stages (retrieval) need not embed it again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.embeddings import Embedder
from service.settings import Settings
from service.triage.entities import extract_entities
from service.triage.intent import IntentClassifier
from service.triage.language import LanguageDetector
from service.triage.models import Intent, TriageRead, TriageRequest
from service.triage.sentiment import SentimentAnalyzer
from service.triage.taxonomy import Taxonomy
from service.triage.urgency import UrgencyScorer

CUSTOMER_ROLE = "customer"


class TriageService:
    def __init__(
        self,
        embedder: Embedder,
        classifier: IntentClassifier,
        *,
        language: LanguageDetector,
        sentiment: SentimentAnalyzer,
        urgency: UrgencyScorer,
    ) -> None:
        self.embedder = embedder
        self.classifier = classifier
        self.language = language
        self.sentiment = sentiment
        self.urgency = urgency

    @classmethod
    def from_settings(cls, settings: Settings, embedder: Embedder) -> TriageService:
        classifier = IntentClassifier.from_settings(settings, embedder)
        language = LanguageDetector(settings.default_locale)
        language.warm_up()
        return cls(
            embedder,
            classifier,
            language=language,
            sentiment=SentimentAnalyzer(),
            urgency=UrgencyScorer.from_taxonomy(classifier.taxonomy),
        )

    def triage(self, request: TriageRequest) -> TriageRead:
        return self.triage_with_embedding(request)[0]

    def triage_with_embedding(self, request: TriageRequest) -> tuple[TriageRead, np.ndarray]:
        embedding = self.embedder.encode([request.text])[0]
        return self._triage(request, embedding), embedding

    def triage_batch(self, requests: Sequence[TriageRequest]) -> list[TriageRead]:
        """Many messages with one embedding call (evaluation, bulk imports)."""
        if not requests:
            return []
        vectors = self.embedder.encode([r.text for r in requests])
        return [self._triage(r, v) for r, v in zip(requests, vectors, strict=True)]

    def describe(self) -> dict:
        return self.classifier.describe()

    def _triage(self, request: TriageRequest, embedding: np.ndarray) -> TriageRead:
        earlier = [m.text for m in request.history if m.role.strip().lower() == CUSTOMER_ROLE]
        language = self.language.detect(request.text, earlier, request.locale)
        intent = self.classifier.predict(request.text, embedding=embedding)
        sentiment = self.sentiment.analyze(request.text, language.code)
        urgency = self.urgency.assess(
            request.text, intent=intent, sentiment=sentiment, history=request.history
        )
        return TriageRead(
            language=language,
            intent=intent,
            urgency=urgency,
            sentiment=sentiment,
            entities=extract_entities(request.text, request.locale, country=request.country),
            automatable=is_automatable(intent, self.classifier.taxonomy),
        )


def is_automatable(intent: Intent, taxonomy: Taxonomy | None) -> bool:
    """The intent's `automatable` flag; never for out-of-scope messages or intents the taxonomy does not
    know."""
    if intent.out_of_scope or taxonomy is None:
        return False
    spec = taxonomy.get(intent.name)
    return bool(spec is not None and spec.automatable)
