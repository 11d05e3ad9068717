"""Triage: one message in, every signal out (language, intent, urgency, sentiment, entities, automatable).

The language is detected first: a language with an embedding route (`Settings.embedding_routes`, e.g.
English on MiniLM) is embedded by its part of the combined model and classified by intents trained on that
part; every other language by the whole model. The message is embedded once; the vector (in the combined
model's space) is handed back by `triage_with_embedding` so later stages (retrieval) need not embed it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.embeddings import Embedder, EmbeddingRoute, language_routes
from service.settings import Settings
from service.triage.entities import extract_entities
from service.triage.intent import IntentClassifier
from service.triage.language import LanguageDetector
from service.triage.models import Intent, Language, TriageRead, TriageRequest
from service.triage.sentiment import SentimentAnalyzer
from service.triage.taxonomy import Taxonomy
from service.triage.urgency import UrgencyScorer

CUSTOMER_ROLE = "customer"
DEFAULT_SOURCE = "default"  # `Language.source` when nothing decided the language


@dataclass(frozen=True)
class TriageRoute:
    """The part of the combined embedding model one language reads, and the intents trained on it."""

    embedding: EmbeddingRoute
    classifier: IntentClassifier


class TriageService:
    def __init__(
        self,
        embedder: Embedder,
        classifier: IntentClassifier,
        *,
        language: LanguageDetector,
        sentiment: SentimentAnalyzer,
        urgency: UrgencyScorer,
        routes: dict[str, TriageRoute] | None = None,
    ) -> None:
        self.embedder = embedder
        self.classifier = classifier
        self.routes = routes or {}
        self.language = language
        self.sentiment = sentiment
        self.urgency = urgency

    @classmethod
    def from_settings(cls, settings: Settings, embedder: Embedder) -> TriageService:
        classifier = IntentClassifier.from_settings(settings, embedder)
        routes = {
            code: TriageRoute(
                route,
                IntentClassifier.from_settings(
                    settings.model_copy(update={"embedding_model": route.model_name}), route.embedder
                ),
            )
            for code, route in language_routes(embedder, settings.embedding_routes).items()
        }
        language = LanguageDetector(settings.default_locale)
        language.warm_up()
        return cls(
            embedder,
            classifier,
            language=language,
            sentiment=SentimentAnalyzer(),
            urgency=UrgencyScorer.from_taxonomy(classifier.taxonomy),
            routes=routes,
        )

    def embedder_for(self, language: str) -> Embedder:
        """The embedder that reads messages in `language` (its route's part, else the whole model)."""
        route = self.routes.get(language)
        return route.embedding.embedder if route else self.embedder

    def classifier_for(self, language: str) -> IntentClassifier:
        """The intent classifier for messages in `language` (its route's, else the main one)."""
        route = self.routes.get(language)
        return route.classifier if route else self.classifier

    def triage(self, request: TriageRequest) -> TriageRead:
        return self.triage_with_embedding(request)[0]

    def triage_with_embedding(self, request: TriageRequest) -> tuple[TriageRead, np.ndarray]:
        """The triage and the message's vector in the combined model's space (for article search)."""
        return self.triage_batch_with_embeddings([request])[0]

    def triage_batch(self, requests: Sequence[TriageRequest]) -> list[TriageRead]:
        """Many messages with one embedding call per route (evaluation, bulk imports)."""
        return [t for t, _ in self.triage_batch_with_embeddings(requests)]

    def triage_batch_with_embeddings(
        self, requests: Sequence[TriageRequest]
    ) -> list[tuple[TriageRead, np.ndarray]]:
        languages = [self._language(r) for r in requests]
        by_route: dict[str | None, list[int]] = {}
        for i, lang in enumerate(languages):
            by_route.setdefault(self.route_code(lang), []).append(i)
        out: dict[int, tuple[TriageRead, np.ndarray]] = {}
        for code, positions in by_route.items():
            route = self.routes[code] if code is not None else None
            embedder = route.embedding.embedder if route else self.embedder
            classifier = route.classifier if route else self.classifier
            vectors = embedder.encode([requests[i].text for i in positions])
            for i, vector in zip(positions, vectors, strict=True):
                read = self._triage(requests[i], languages[i], classifier, vector)
                out[i] = (read, route.embedding.to_index_space(vector) if route else vector)
        return [out[i] for i in range(len(requests))]

    def describe(self) -> dict:
        described = self.classifier.describe()
        if self.routes:
            described["routes"] = {
                code: {"embedding_model": r.embedding.model_name, **r.classifier.describe()}
                for code, r in self.routes.items()
            }
        return described

    def route_code(self, language: Language) -> str | None:
        """The route of a message in `language`: none when the detector could not tell the language and fell
        back to the default locale (greetings, short or unspaced messages): those read the whole model, which
        reads every language. On the dev set this kept 15 of 18 non-English messages off the English route."""
        if language.source == DEFAULT_SOURCE or language.code not in self.routes:
            return None
        return language.code

    def _language(self, request: TriageRequest) -> Language:
        earlier = [m.text for m in request.history if m.role.strip().lower() == CUSTOMER_ROLE]
        return self.language.detect(request.text, earlier, request.locale)

    def _triage(
        self,
        request: TriageRequest,
        language: Language,
        classifier: IntentClassifier,
        embedding: np.ndarray,
    ) -> TriageRead:
        intent = classifier.predict(request.text, embedding=embedding)
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
