"""`replydesk eval languages`: the service's own triage on a labelled multilingual set, per language, with the
configured embedding routes and without them, side by side in one process.

Each message goes through `TriageService.triage_batch` as `POST /v1/triage` sends it (language detected first,
then its route's part of the combined model, or the whole model), so the figures include what language
detection gets wrong. Reports per language: intent accuracy, how often the detected language is the labelled
one, and how many messages a route served.

The bundled sets (`eval/data/multilingual_{dev,test}.jsonl`) were written by the same hands as the taxonomy
examples; the test set was never used to write or tune anything.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Annotated

import typer

from service.settings import REPO_ROOT

MULTILINGUAL_TEST = REPO_ROOT / "eval" / "data" / "multilingual_test.jsonl"


def load_rows(path: Path) -> list[tuple[str, str, str]]:
    """(text, intent, language) rows of a JSONL file with `text`, `intent` and `language` fields."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        data = json.loads(line)
        try:
            rows.append((data["text"], data["intent"], data["language"]))
        except KeyError as exc:
            raise ValueError(f"{path}:{n}: missing field {exc}") from exc
    return rows


def per_language(triage, rows: list[tuple[str, str, str]]) -> dict:
    """Accuracy of `triage` (a `TriageService`) per labelled language, and the macro mean over languages."""
    from service.triage.models import TriageRequest

    reads = triage.triage_batch([TriageRequest(text=t) for t, _, _ in rows])
    by_lang: dict[str, list[tuple[bool, bool, bool]]] = defaultdict(list)
    for (_, intent, lang), read in zip(rows, reads, strict=True):
        by_lang[lang].append(
            (
                read.intent.name == intent,
                read.language.code == lang,
                triage.route_code(read.language) is not None,
            )
        )
    out = {
        lang: {
            "n": len(v),
            "accuracy": round(sum(a for a, _, _ in v) / len(v), 4),
            "language_detected": round(sum(d for _, d, _ in v) / len(v), 4),
            "routed": sum(r for _, _, r in v),
        }
        for lang, v in sorted(by_lang.items())
    }
    macro = sum(r["accuracy"] for r in out.values()) / len(out) if out else 0.0
    return {"per_language": out, "macro": round(macro, 4), "n": len(rows)}


def compare(data: Path) -> dict:
    """The configured service, and the same service with no routes (every language on the whole model)."""
    from service.container import Container
    from service.settings import get_settings
    from service.triage.service import TriageService

    settings = get_settings()
    container = Container(settings)
    routed = container.triage
    unrouted = TriageService.from_settings(
        settings.model_copy(update={"embedding_routes": {}}), container.embedder
    )
    rows = load_rows(data)
    return {
        "data": str(data),
        "embedding_model": settings.embedding_model,
        "routes": settings.embedding_routes,
        "configured": per_language(routed, rows),
        "no_routes": per_language(unrouted, rows),
    }


def lines(report: dict) -> list[str]:
    a, b = report["configured"], report["no_routes"]
    out = [
        f"{report['data']}: {a['n']} messages; routes {report['routes']} vs none",
        f"{'language':10s} {'n':>4s} {'routes':>8s} {'none':>8s} {'detected':>9s} {'routed':>7s}",
    ]
    for lang, r in a["per_language"].items():
        s = b["per_language"][lang]
        out.append(
            f"{lang:10s} {r['n']:4d} {r['accuracy']:8.1%} {s['accuracy']:8.1%} "
            f"{r['language_detected']:9.1%} {r['routed']:7d}"
        )
    out.append(f"{'macro':10s} {'':4s} {a['macro']:8.1%} {b['macro']:8.1%}")
    return out


def cli(
    data: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="JSONL rows with text, intent, language.")
    ] = MULTILINGUAL_TEST,
    out: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
) -> None:
    """Intent accuracy per language through the service's triage, with the configured embedding routes and
    without them (REPLYDESK_EMBEDDING_ROUTES)."""
    report = compare(data)
    for line in lines(report):
        typer.echo(line)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2), encoding="utf-8")
        typer.echo(f"report written to {out}")
