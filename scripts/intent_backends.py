"""Compare embedding backends of one model for intent classification: per-message latency and accuracy.

For each backend (torch, torch-int8, onnx, onnx-int8 for a sentence-transformers model; a bundled model with
its own engine, e.g. `bundled:multilingual-e5-small`, has only `auto`) the bundled taxonomy is trained with
that backend's vectors, the held-out messages of eval/data/intents_dev.jsonl are classified, and
single-message classify latency (embedding, uncached, + classifier) is timed. Comparing *models* (accuracy per
language, Banking77, Arabic, memory) is `replydesk eval encoders`. Usage:

    .venv/bin/python scripts/intent_backends.py [--model bundled:all-MiniLM-L6-v2] [--backends onnx,torch]
        [--n 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from service.embeddings import BUNDLED_ENGINES, MINILM, build_embedder  # noqa: E402
from service.settings import REPO_ROOT  # noqa: E402
from service.triage.intent import IntentClassifier  # noqa: E402
from service.triage.taxonomy import load_taxonomy  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=MINILM, help="embedding model setting")
    ap.add_argument("--backends", default=None, help="default: every backend that runs the model")
    ap.add_argument("--n", type=int, default=200, help="messages timed one at a time")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    default_backends = "auto" if args.model in BUNDLED_ENGINES else "torch,torch-int8,onnx,onnx-int8"
    rows = [json.loads(line) for line in (REPO_ROOT / "eval/data/intents_dev.jsonl").read_text().splitlines()]
    texts, gold = [r["text"] for r in rows], [r["label"] for r in rows]
    taxonomy = load_taxonomy()
    train_texts, train_labels = taxonomy.training_data()
    reference = None
    print(f"{'backend':<12} {'p50 ms':>8} {'p95 ms':>8} {'dev acc':>8} {'min cos vs torch':>17}")
    for backend in (args.backends or default_backends).split(","):
        emb = build_embedder(args.model, backend=backend, threads=args.threads, cache_dir=None)
        vecs = emb.encode(texts)
        if backend in {"torch", "auto"}:
            reference = vecs
        cos = float((vecs * reference).sum(axis=1).min()) if reference is not None else float("nan")
        clf = IntentClassifier(emb, taxonomy).fit(train_texts, train_labels)
        acc = float(np.mean([p.name == g for p, g in zip(clf.predict_batch(texts), gold, strict=True)]))
        sample = (texts * (args.n // len(texts) + 1))[: args.n]
        clf.predict(sample[0])
        times = []
        for text in sample:
            t0 = time.perf_counter()
            clf.predict(text)
            times.append((time.perf_counter() - t0) * 1000)
        print(
            f"{backend:<12} {np.percentile(times, 50):8.2f} {np.percentile(times, 95):8.2f} "
            f"{acc * 100:7.1f}% "
            f"{cos:17.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
