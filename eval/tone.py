"""Tone-check evaluation on a labelled JSONL set.

Each line: `{"id", "text", "locale", "context": {intent?, sentiment?, urgency?}, "expected_rules": [rule
ids]}` (optional `"expected_ok": bool`). A rule counts once per case: predicted = the set of rule ids among
the checker's findings for that case. Reported: precision/recall/F1 per rule, micro-averaged over all rules,
exact-match rate (the predicted set equals the expected set), false alarms on clean cases, `ok` agreement when
labelled, the cases that went wrong, and check latency (informational; it depends on the machine).
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, Field

from eval.cases import load_jsonl_cases
from service.tone.checker import ToneChecker
from service.tone.models import ToneContext


class ToneCase(BaseModel):
    id: str
    text: str = Field(min_length=1)
    locale: str | None = None
    context: ToneContext = Field(default_factory=ToneContext)
    expected_rules: list[str] = Field(default_factory=list)
    expected_ok: bool | None = None


def load_cases(path: Path) -> list[ToneCase]:
    return load_jsonl_cases(path, ToneCase, "tone case")


def _prf(tp: int, fp: int, fn: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall
        else None
    )
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "support": tp + fn,
        "precision": _round(precision),
        "recall": _round(recall),
        "f1": _round(f1),
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def evaluate(checker: ToneChecker, cases: Iterable[ToneCase]) -> dict:
    cases = list(cases)
    counts: dict[str, Counter] = {}
    errors, latencies = [], []
    exact = clean_total = clean_flagged = 0
    ok_total = ok_agree = 0
    for case in cases:
        t0 = time.perf_counter()
        result = checker.check(case.text, case.locale, case.context)
        latencies.append((time.perf_counter() - t0) * 1000)
        predicted = {f.rule for f in result.findings}
        expected = set(case.expected_rules)
        for rule in predicted | expected:
            c = counts.setdefault(rule, Counter())
            c["tp"] += rule in predicted and rule in expected
            c["fp"] += rule in predicted and rule not in expected
            c["fn"] += rule in expected and rule not in predicted
        exact += predicted == expected
        if not expected:
            clean_total += 1
            clean_flagged += bool(predicted)
        if case.expected_ok is not None:
            ok_total += 1
            ok_agree += case.expected_ok == result.ok
        if predicted != expected:
            errors.append(
                {
                    "id": case.id,
                    "text": case.text,
                    "locale": case.locale,
                    "missing": sorted(expected - predicted),
                    "extra": sorted(predicted - expected),
                }
            )
    per_rule = {rule: _prf(c["tp"], c["fp"], c["fn"]) for rule, c in sorted(counts.items())}
    total: Counter[str] = Counter()
    for c in counts.values():
        total.update(c)
    known = set(checker.rules.rule_ids)
    lat = sorted(latencies)
    return {
        "cases": len(cases),
        "micro": _prf(total["tp"], total["fp"], total["fn"]),
        "per_rule": per_rule,
        "exact_match": _round(exact / len(cases)) if cases else None,
        "clean_cases": clean_total,
        "clean_cases_flagged": clean_flagged,
        "ok_agreement": _round(ok_agree / ok_total) if ok_total else None,
        "rules_never_seen": sorted(known - set(counts)),
        "unknown_expected_rules": sorted({r for c in cases for r in c.expected_rules} - known),
        "latency_ms": {
            "mean": round(statistics.fmean(lat), 4),
            "p50": round(lat[len(lat) // 2], 4),
            "p95": round(lat[min(len(lat) - 1, int(len(lat) * 0.95))], 4),
            "max": round(lat[-1], 4),
        },
        "errors": errors,
    }


def run(data: Path, out: Path | None = None, rules: Path | None = None, default_locale: str = "en") -> dict:
    checker = ToneChecker.from_path(rules, default_locale=default_locale)
    report = {"data": str(data), "rules_file": str(rules or "bundled"), **evaluate(checker, load_cases(data))}
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return report


def summary_lines(report: dict) -> list[str]:
    m = report["micro"]
    lines = [
        f"tone eval on {report['data']}: {report['cases']} cases",
        f"micro  precision={_fmt(m['precision'])} recall={_fmt(m['recall'])} f1={_fmt(m['f1'])} "
        f"(tp={m['tp']} fp={m['fp']} fn={m['fn']})",
        f"exact match {_fmt(report['exact_match'])}; clean cases flagged "
        f"{report['clean_cases_flagged']}/{report['clean_cases']}; latency p50 {report['latency_ms']['p50']} "
        f"ms, "
        f"p95 {report['latency_ms']['p95']} ms",
        f"{'rule':32} {'P':>6} {'R':>6} {'F1':>6} {'tp':>4} {'fp':>4} {'fn':>4}",
    ]
    for rule, r in report["per_rule"].items():
        lines.append(
            f"{rule:32} {_fmt(r['precision']):>6} {_fmt(r['recall']):>6} {_fmt(r['f1']):>6} "
            f"{r['tp']:>4} {r['fp']:>4} {r['fn']:>4}"
        )
    for e in report["errors"]:
        lines.append(
            f"  {e['id']} [{e['locale']}] missing={e['missing']} extra={e['extra']}: {e['text'][:70]}"
        )
    if report["unknown_expected_rules"]:
        lines.append(f"expected rules unknown to the checker: {report['unknown_expected_rules']}")
    return lines


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
