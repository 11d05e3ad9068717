"""Model selection for the intent classifier on a dev split (never on the final test split).

Each candidate is trained with the production training code (cross-validated temperature, OOS threshold)
except the kNN baseline, which is plain scikit-learn on the same embeddings. Carve dev splits first, e.g.:

    replydesk eval split ../shared/datasets/banking77/train.csv --label-col category --out-dir /tmp/b77 --seed
    13 replydesk eval split /tmp/b77/train.csv --label-col category --out-dir /tmp/b77dev --seed 13
    .venv/bin/python scripts/select_intent_model.py /tmp/b77dev/train.csv /tmp/b77dev/test.csv --label-col
    category

Candidates are `kind:embedding_weight:C[:notfidf]`, e.g. `logreg:1.5:10`, `linear_svm:2:0.5`,
`logreg:1:10:notfidf`, plus `knn:K`.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from sklearn.neighbors import KNeighborsClassifier  # noqa: E402

from eval.intents import evaluate  # noqa: E402
from eval.splits import load_rows  # noqa: E402
from service.embeddings import get_embedder  # noqa: E402
from service.settings import get_settings  # noqa: E402
from service.triage.intent import IntentModelConfig  # noqa: E402

DEFAULT_CANDIDATES = [
    "knn:10",
    "logreg:1:10:notfidf",
    "linear_svm:1:1:notfidf",
    "linear_svm:1.5:0.5",
    "logreg:1.5:10",
    "logreg:2:30",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train")
    ap.add_argument("test")
    ap.add_argument("--text-col", default="text")
    ap.add_argument("--label-col", default="label")
    ap.add_argument("--candidates", default=",".join(DEFAULT_CANDIDATES))
    args = ap.parse_args()
    settings = get_settings()
    embedder = get_embedder(settings.embedding_model, settings.resolved_cache_dir / "embeddings")
    train = load_rows(args.train, text_col=args.text_col, label_col=args.label_col)
    test = load_rows(args.test, text_col=args.text_col, label_col=args.label_col)
    print(f"{'candidate':<26} {'accuracy':>9} {'macro F1':>9} {'ECE':>7} {'train s':>8}")
    for cand in args.candidates.split(","):
        parts = cand.split(":")
        t0 = time.perf_counter()
        if parts[0] == "knn":
            knn = KNeighborsClassifier(int(parts[1]), metric="cosine", weights="distance")
            knn.fit(embedder.encode([t for t, _ in train]), [lab for _, lab in train])
            pred = knn.predict(embedder.encode([t for t, _ in test]))
            acc = float(np.mean(pred == np.array([lab for _, lab in test])))
            print(f"{cand:<26} {acc * 100:8.2f}% {'':>9} {'':>7} {time.perf_counter() - t0:8.1f}", flush=True)
            continue
        cfg = IntentModelConfig(
            kind=parts[0],
            embedding_weight=float(parts[1]),
            C=float(parts[2]),
            use_tfidf=not (len(parts) > 3 and parts[3] == "notfidf"),
        )
        report = evaluate(train, test, embedder=embedder, latency_n=0, config=cfg).report
        print(
            f"{cand:<26} {report['accuracy'] * 100:8.2f}% {report['macro_f1'] * 100:8.2f}% "
            f"{report['ece']:7.4f} "
            f"{report['training']['train_seconds']:8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
