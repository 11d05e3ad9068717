"""`replydesk eval intents`: train the production intent classifier on TRAIN, score it on TEST.

Report keys: accuracy, macro_f1, n, ece (15 bins, on the reported confidence of every final prediction),
per_label (precision/recall/f1/support), confusion (labels + matrix, and the most frequent confusions),
latency_ms (p50/p95 of classify-only time per message, one message at a time, embedding included and embedding
cache bypassed), training (what training measured, with `oos_points`: every out-of-scope operating point it
considered and the chosen one) and, with an out-of-scope label: in_scope_accuracy, oos_recall, oos_precision.

Out-of-scope figures here come from whatever TEST holds; `replydesk eval oos` (eval/oos.py) is the protocol
for out-of-scope messages tuning never saw (CLINC150 val/oos_val plus another source), with the rule before
#15 side by side.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from service.embeddings import Embedder
from service.settings import get_settings
from service.triage.intent import IntentClassifier, IntentModelConfig, expected_calibration_error
from service.triage.models import Intent
from service.triage.taxonomy import OUT_OF_SCOPE

Row = tuple[str, str]
Progress = Callable[[str, int, int], None]


@dataclass
class IntentEvalResult:
    report: dict
    predictions: list[Intent]


def _canonical(label: str, oos_label: str | None) -> str:
    if oos_label is not None and label == oos_label:
        return OUT_OF_SCOPE
    return label


def evaluate(
    train: list[Row],
    test: list[Row],
    *,
    embedder: Embedder,
    oos_label: str | None = None,
    latency_embedder: Embedder | None = None,
    latency_n: int = 200,
    cache_dir: Path | None = None,
    config: IntentModelConfig | None = None,
    progress: Progress | None = None,
    oos_recall_target: float | None = None,
    oos_max_lost: float | None = None,
) -> IntentEvalResult:
    """Train on `train`, predict `test`; `latency_embedder` (uncached, same model) times single-message
    classify. `oos_recall_target` and `oos_max_lost` default to the service's settings."""
    if not train or not test:
        raise ValueError("train and test sets must both be non-empty")
    train_labels = [_canonical(lab, oos_label) for _, lab in train]
    settings = get_settings()
    clf = IntentClassifier(
        embedder,
        cache_dir=cache_dir,
        config=config,
        oos_recall_target=settings.oos_recall_target if oos_recall_target is None else oos_recall_target,
        oos_max_lost=settings.oos_max_lost if oos_max_lost is None else oos_max_lost,
    )
    clf.fit([t for t, _ in train], train_labels, progress=progress)

    texts = [t for t, _ in test]
    gold = [_canonical(lab, oos_label) for _, lab in test]
    if progress:
        progress("embed test", 0, 1)
    test_emb = embedder.encode(texts)
    if progress:
        progress("embed test", 1, 1)
    predictions = clf.predict_batch(texts, test_emb)
    pred = [p.name for p in predictions]

    latencies = _latencies(clf.with_embedder(latency_embedder or embedder), texts, latency_n, progress)
    report = score(gold, pred, [p.confidence for p in predictions], oos=oos_label is not None)
    report["latency_ms"] = latencies
    report["training"] = {
        **clf.report.as_dict(),
        "classifier": clf.describe()["classifier"],
        "n_train": len(train),
        "loaded_from_cache": clf.loaded_from_cache,
    }
    unknown = sorted(set(gold) - set(train_labels))
    if unknown:
        report["labels_missing_from_train"] = unknown
    return IntentEvalResult(report=report, predictions=predictions)


def _latencies(clf: IntentClassifier, texts: list[str], n: int, progress: Progress | None) -> dict:
    sample = texts[: max(0, n)]
    if not sample:
        return {"p50": None, "p95": None, "n": 0}
    clf.predict(sample[0])  # warm-up (first call allocates)
    times = []
    for i, text in enumerate(sample):
        t0 = time.perf_counter()
        clf.predict(text)
        times.append((time.perf_counter() - t0) * 1000)
        if progress and (i + 1) % 20 == 0:
            progress("latency", i + 1, len(sample))
    return {
        "p50": round(float(np.percentile(times, 50)), 3),
        "p95": round(float(np.percentile(times, 95)), 3),
        "mean": round(float(np.mean(times)), 3),
        "n": len(times),
    }


def score(gold: list[str], pred: list[str], confidence: list[float], *, oos: bool = False) -> dict:
    """Accuracy, macro-F1, per-label P/R/F1, confusion, ECE; OOS metrics when `oos`."""
    g, p = np.array(gold), np.array(pred)
    correct = g == p
    labels = sorted(set(gold) | set(pred))
    prec, rec, f1, support = precision_recall_fscore_support(g, p, labels=labels, zero_division=0)
    gold_labels = set(gold)
    per_label = {
        lab: {
            "precision": round(float(pr), 4),
            "recall": round(float(rc), 4),
            "f1": round(float(f), 4),
            "support": int(s),
        }
        for lab, pr, rc, f, s in zip(labels, prec, rec, f1, support, strict=True)
    }
    macro_f1 = float(np.mean([per_label[lab]["f1"] for lab in labels if lab in gold_labels]))
    matrix = confusion_matrix(g, p, labels=labels)
    pairs = Counter(
        {
            (a, b): int(c)
            for a, b, c in (
                (labels[i], labels[j], matrix[i, j]) for i, j in zip(*np.nonzero(matrix), strict=True)
            )
            if a != b
        }
    )
    report: dict = {
        "n": len(gold),
        "accuracy": round(float(correct.mean()), 4),
        "macro_f1": round(macro_f1, 4),
        "ece": round(expected_calibration_error(np.array(confidence), correct), 4),
        "mean_confidence": round(float(np.mean(confidence)), 4),
        "per_label": per_label,
        "confusion": {
            "labels": labels,
            "matrix": matrix.tolist(),
            "top": [{"gold": a, "pred": b, "count": c} for (a, b), c in pairs.most_common(20)],
        },
    }
    if oos:
        ins = g != OUT_OF_SCOPE
        out = ~ins
        pred_oos = p == OUT_OF_SCOPE
        report["in_scope_accuracy"] = round(float(correct[ins].mean()), 4) if ins.any() else None
        report["oos_recall"] = round(float(pred_oos[out].mean()), 4) if out.any() else None
        report["oos_precision"] = round(float(out[pred_oos].mean()), 4) if pred_oos.any() else None
        report["n_in_scope"], report["n_oos"] = int(ins.sum()), int(out.sum())
    return report


def write_report(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2))


def summary_rows(report: dict) -> list[tuple[str, str]]:
    """(metric, value) rows for the terminal summary."""

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v * 100:.2f} %"

    rows = [
        ("examples (test)", str(report["n"])),
        ("accuracy", pct(report["accuracy"])),
        ("macro F1", pct(report["macro_f1"])),
        ("ECE (15 bins)", f"{report['ece']:.4f}"),
    ]
    if "oos_recall" in report:
        rows += [
            ("in-scope accuracy", pct(report["in_scope_accuracy"])),
            ("OOS recall", pct(report["oos_recall"])),
            ("OOS precision", pct(report["oos_precision"])),
        ]
    lat = report.get("latency_ms") or {}
    if lat.get("p50") is not None:
        rows.append(("classify latency p50 / p95", f"{lat['p50']:.2f} / {lat['p95']:.2f} ms (n={lat['n']})"))
    tr = report.get("training") or {}
    if tr:
        rows += [
            ("classifier", str(tr.get("classifier"))),
            ("train examples / seconds", f"{tr.get('n_train')} / {tr.get('train_seconds')}"),
            ("temperature / OOS margin", f"{tr.get('temperature', 0):.3f} / {tr.get('oos_margin')}"),
        ]
        if tr.get("oos_similarity") is not None:
            rows.append(("OOS neighbour-similarity cut-off", f"{tr['oos_similarity']:.4f}"))
        if tr.get("oos_threshold_source"):
            rows.append(("OOS operating point", str(tr["oos_threshold_source"])))
    return rows
