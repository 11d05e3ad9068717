"""What an evaluator would otherwise pick, run on the same data as ReplyDesk so every report shows both.

* Intents: TF-IDF (word 1-2-grams + character 2-5-grams) + linear SVM (scikit-learn), trained on the same
  training rows as ReplyDesk's classifier. Out of scope is one more class when the training rows have OOS
  examples (the standard CLINC150 "oos-train" baseline); the SVM gives no calibrated confidence, so peers have
  no reliability diagram.
* Retrieval: BM25 only and dense only, through the knowledge base's own retrievers
  (`service.kb.retrieval.Mode`), so the only difference to ReplyDesk's hybrid is the fusion.
"""

from __future__ import annotations

from collections.abc import Sequence

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from service.kb.retrieval import Mode

INTENT_PEER = "tfidf-linearsvm"
RETRIEVAL_SYSTEM = Mode.hybrid
RETRIEVAL_PEERS: dict[str, Mode] = {"bm25-only": Mode.bm25, "dense-only": Mode.dense}


class TfidfSvmIntentPeer:
    """`fit(texts, labels)` then `predict(texts)`; deterministic (liblinear with a fixed seed)."""

    name = INTENT_PEER

    def __init__(self, *, c: float = 1.0, seed: int = 0) -> None:
        features = FeatureUnion(
            [
                ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
                (
                    "chars",
                    TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
                ),
            ]
        )
        self.pipeline = Pipeline([("tfidf", features), ("svm", LinearSVC(C=c, random_state=seed))])

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> TfidfSvmIntentPeer:
        self.pipeline.fit(list(texts), list(labels))
        return self

    def predict(self, texts: Sequence[str]) -> list[str]:
        if not texts:
            return []
        return [str(p) for p in self.pipeline.predict(list(texts))]
