"""Urgency evaluation: run the real triage service over a labelled JSONL file and score the urgency levels.

Rows: `{"text": ..., "urgency": "low|normal|high|critical", "locale": "es-MX"?, "history": [{"role",
"text"}]?}`. Metrics: accuracy, macro-F1, per-level precision/recall/F1/support, the confusion matrix (rows =
gold, columns = predicted, in the order low, normal, high, critical) and `critical_recall` (missing a hacked
account or a legal threat is the expensive mistake). Every wrong row is listed with its reasons so rules can
be checked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from service.errors import InvalidInput
from service.triage.models import HistoryMessage, TriageRead, TriageRequest, UrgencyLevel

LEVELS = [lvl.value for lvl in UrgencyLevel]  # low, normal, high, critical


@dataclass(frozen=True)
class UrgencyExample:
    request: TriageRequest
    gold: str


def load_examples(path: Path) -> list[UrgencyExample]:
    """Parse and validate the file; a bad line is an InvalidInput naming the line."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: file not found")
    examples = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}:{line_no}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or row.get("urgency") not in LEVELS:
            raise InvalidInput(f"{path}:{line_no}: needs `urgency` in {LEVELS}")
        try:
            history = [HistoryMessage.model_validate(h) for h in row.get("history") or []]
            request = TriageRequest(text=row.get("text", ""), locale=row.get("locale"), history=history)
        except ValidationError as exc:
            raise InvalidInput(f"{path}:{line_no}: {exc.errors()[0]['msg']}") from exc
        examples.append(UrgencyExample(request=request, gold=row["urgency"]))
    if not examples:
        raise InvalidInput(f"{path}: no labelled rows")
    return examples


def load_mapped_examples(
    path: Path, label_map: Path, *, text_col: str = "text", label_col: str = "label"
) -> list[UrgencyExample]:
    """Messages of a labelled intent dataset written by others (CSV/JSONL), with urgency from a map of its
    labels.

    The map (YAML) lists dataset labels under `critical`, `high`, `normal` and `low`; rows of labels it does
    not list are skipped, so only labels whose urgency is clear from the level definitions need to be mapped.
    """
    import yaml

    from eval.splits import load_rows

    spec = yaml.safe_load(Path(label_map).read_text(encoding="utf-8")) if Path(label_map).is_file() else None
    if not isinstance(spec, dict) or not set(spec) <= set(LEVELS):
        raise InvalidInput(
            f"{label_map}: needs a mapping of urgency levels {LEVELS} to lists of dataset labels"
        )
    level_of_label: dict[str, str] = {}
    for level, labels in spec.items():
        for label in labels or []:
            if str(label) in level_of_label:
                raise InvalidInput(f"{label_map}: label {label!r} is mapped twice")
            level_of_label[str(label)] = level
    examples = [
        UrgencyExample(request=TriageRequest(text=text), gold=level_of_label[label])
        for text, label in load_rows(path, text_col=text_col, label_col=label_col)
        if label in level_of_label
    ]
    if not examples:
        raise InvalidInput(f"{path}: no rows with a label listed in {label_map}")
    return examples


def compute_metrics(gold: Sequence[str], predicted: Sequence[str]) -> dict:
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=LEVELS, zero_division=0
    )
    per_level = {
        lvl: {
            "precision": round(float(p), 4),
            "recall": round(float(r), 4),
            "f1": round(float(f), 4),
            "support": int(s),
        }
        for lvl, p, r, f, s in zip(LEVELS, precision, recall, f1, support, strict=True)
    }
    present = [lvl for lvl in LEVELS if lvl in set(gold)]
    return {
        "n": len(gold),
        "accuracy": round(float(accuracy_score(gold, predicted)), 4),
        "macro_f1": round(
            float(f1_score(gold, predicted, labels=present, average="macro", zero_division=0)), 4
        ),
        "critical_recall": per_level["critical"]["recall"] if per_level["critical"]["support"] else None,
        "per_level": per_level,
        "confusion": {"labels": LEVELS, "matrix": confusion_matrix(gold, predicted, labels=LEVELS).tolist()},
    }


def evaluate(examples: Sequence[UrgencyExample], triage_batch) -> dict:
    """`triage_batch`: list[TriageRequest] -> list[TriageRead] (normally `TriageService.triage_batch`)."""
    started = time.perf_counter()
    results: list[TriageRead] = triage_batch([e.request for e in examples])
    elapsed = time.perf_counter() - started
    gold = [e.gold for e in examples]
    predicted = [r.urgency.level.value for r in results]
    report = compute_metrics(gold, predicted)
    report["seconds"] = round(elapsed, 3)
    report["errors"] = [
        {
            "text": e.request.text,
            "gold": e.gold,
            "predicted": r.urgency.level.value,
            "score": r.urgency.score,
            "intent": r.intent.name,
            "intent_confidence": round(r.intent.confidence, 3),
            "sentiment": r.sentiment.score,
            "reasons": r.urgency.reasons,
        }
        for e, r in zip(examples, results, strict=True)
        if e.gold != r.urgency.level.value
    ]
    return report


def summary_lines(report: dict) -> list[str]:
    lines = [
        f"n={report['n']}  accuracy={report['accuracy']:.3f}  macro_f1={report['macro_f1']:.3f}  "
        f"critical_recall={_maybe(report['critical_recall'])}"
    ]
    for lvl, m in report["per_level"].items():
        lines.append(
            f"  {lvl:<9} P={m['precision']:.3f} R={m['recall']:.3f} F1={m['f1']:.3f} n={m['support']}"
        )
    lines.append("  confusion (rows gold, cols predicted: " + ", ".join(report["confusion"]["labels"]) + ")")
    lines += [f"    {lvl:<9} {row}" for lvl, row in zip(LEVELS, report["confusion"]["matrix"], strict=True)]
    lines.append(f"  {len(report['errors'])} errors")
    return lines


def run(
    data: Path,
    out: Path | None,
    triage_batch,
    *,
    label_map: Path | None = None,
    text_col: str = "text",
    label_col: str = "label",
) -> dict:
    examples = (
        load_examples(data)
        if label_map is None
        else load_mapped_examples(data, label_map, text_col=text_col, label_col=label_col)
    )
    report = evaluate(examples, triage_batch)
    report["data"] = str(data)
    if label_map is not None:
        report["label_map"] = str(label_map)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    return report


def _maybe(value: float | None) -> str:
    """A figure with 3 decimals, or None as it is (no critical messages in the set)."""
    return str(value) if value is None else format(value, ".3f")
