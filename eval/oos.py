"""`replydesk eval oos`: does the out-of-scope decision hold on out-of-scope messages its tuning never saw?

Protocol (written into every report under `protocol`):

* Tune only on CLINC150 `train` (in-scope, 150 intents) + `oos_train` (out of scope). Training cross-validates
  on these rows alone (out-of-scope folds hold out whole k-means topics) and derives every operating point
  from those out-of-fold predictions.
* Report on rows no tuning step saw: CLINC150 `val` (in-scope accuracy, a message turned away counts as an
  error), `oos_val` (out-of-scope recall), and an extra out-of-scope source from another distribution (by
  default the StackFAQ queries in ../shared/datasets/stackfaq: questions about web apps such as Gmail, Trello,
  GitHub or Google Docs, none of CLINC150's ten domains). Banking77 is not used as the extra source: CLINC150
  has banking and credit-card intents (transfer, balance, card_declined, pin_change, report_lost_card, ...),
  so many Banking77 messages are in scope.
* Every operating point training considered (`TrainingReport.oos_points`) is applied to the *same* trained
  model, so the rule before #15 (a margin reaching an out-of-fold OOS recall target) and the in-scope budget
  rules are compared side by side in one run; ratios are against the rule before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

Progress = Callable[[str, int, int], None]
BEFORE = "recall_target_margin"
DEFAULT_CLINC = Path("../shared/datasets/clinc150/data_train_val.json")
DEFAULT_EXTRA = Path("../shared/datasets/stackfaq/queries.jsonl")
BUDGET_SWEEP = (0.01, 0.02, 0.03, 0.05, 0.10)  # in-scope budgets also reported (the configured one is chosen)


def run(
    clinc: Path,
    extra_oos: Path | None,
    *,
    embedder,
    max_lost: float,
    recall_target: float,
    max_train_per_intent: int | None = None,
    seed: int = 13,
    progress: Progress | None = None,
) -> dict:
    """Train on CLINC150 train + oos_train, score every operating point on val, oos_val and `extra_oos`.

    `max_train_per_intent` keeps at most that many training rows per in-scope intent (seeded; every
    oos_train row stays): a quicker reproduction on a small CPU, reported in the protocol."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from eval.run import cap_per_label
    from eval.splits import load_clinc_json, load_texts
    from service.triage.intent import (
        IntentClassifier,
        OosOperatingPoint,
        best_and_margin,
        neighbour_similarity,
        oos_operating_points,
    )
    from service.triage.taxonomy import OUT_OF_SCOPE

    train = load_clinc_json(clinc, ("train",))
    if max_train_per_intent is not None:
        train = cap_per_label(train, max_train_per_intent, seed)
    train += load_clinc_json(clinc, ("oos_train",))
    val = load_clinc_json(clinc, ("val",))
    oos_val = [t for t, _ in load_clinc_json(clinc, ("oos_val",))]
    extra = load_texts(extra_oos) if extra_oos is not None else []
    oos_labels = {lab for _, lab in train if lab.lower() in {"oos", OUT_OF_SCOPE}}
    if not oos_labels:
        raise ValueError(f"{clinc}: oos_train has no out-of-scope rows")

    # no model cache: the out-of-fold predictions of this training give the other budgets' points
    clf = IntentClassifier(embedder, oos_recall_target=recall_target, oos_max_lost=max_lost)
    clf.fit([t for t, _ in train], [lab for _, lab in train], progress=progress)
    classes = np.array(clf.classes)
    oos_idx = clf.classes.index(OUT_OF_SCOPE)

    # the neighbour score of every point, whether or not the configured rule reads it: similarity to all
    # in-scope training rows (what a model trained with `oos_use_similarity` keeps)
    reference = embedder.encode([t for t, lab in train if lab not in oos_labels])

    def scores(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if progress:
            progress("score test sets", 0, 1)
        emb = embedder.encode(texts)
        probs, margin, _ = clf.oos_scores(texts, emb)
        sim = neighbour_similarity(emb, reference, clf.config.oos_neighbours)
        return classes[best_and_margin(probs, oos_idx)[0]], margin, sim

    val_best, val_margin, val_sim = scores([t for t, _ in val])
    val_gold = np.array([lab for _, lab in val])
    sets = {"clinc150_oos_val": scores(oos_val)}
    if extra:
        sets["extra_oos"] = scores(extra)

    oof = clf.out_of_fold
    assert oof is not None and oof.oos_idx is not None, "run() trains without the model cache"
    oof_best, oof_margin = best_and_margin(oof.probs, oof.oos_idx)
    oof_ins = oof.y != oof.oos_idx
    points: dict[str, OosOperatingPoint] = {}
    for budget in sorted({*BUDGET_SWEEP, max_lost}):
        found, _ = oos_operating_points(
            oof.probs, oof.y, oof.oos_idx, oof.similarity, max_lost=budget, recall_target=recall_target
        )
        for name, point in found.items():
            if name == "chosen" or (name == BEFORE and BEFORE in points):
                continue
            points[name if name == BEFORE or budget == max_lost else f"{name}@{budget}"] = point
    chosen = next(
        k for k, v in clf.report.oos_points.items() if k != "chosen" and v == clf.report.oos_points["chosen"]
    )
    rows: dict[str, dict] = {}
    for name, point in points.items():
        rejected = point.rejects(val_margin, val_sim)
        oof_rejected = point.rejects(oof_margin, oof.similarity)
        row: dict = {
            "margin_cutoff": point.margin,
            "similarity_cutoff": point.similarity,
            "rule": point.rule,
            "out_of_fold": {
                "in_scope_lost": point.lost,
                "in_scope_accuracy": round(float(((oof_best == oof.y) & ~oof_rejected)[oof_ins].mean()), 4),
                "oos_recall": point.oos_recall,
            },
            "in_scope_accuracy": round(float(((val_best == val_gold) & ~rejected).mean()), 4),
            "in_scope_turned_away": round(float(rejected.mean()), 4),
        }
        for set_name, (_, margin, sim) in sets.items():
            row[f"{set_name}_recall"] = round(float(point.rejects(margin, sim).mean()), 4)
        rows[name] = row
    before = rows.get(BEFORE)
    if before:
        for row in rows.values():
            row["ratio_to_before"] = {
                k: round(row[k] / before[k], 3) if before[k] else None
                for k in ("in_scope_accuracy", *(f"{s}_recall" for s in sets))
            }

    auc: dict[str, dict] = {}
    for set_name, (_, margin, sim) in sets.items():
        labels = np.r_[np.zeros(len(val_margin)), np.ones(len(margin))]
        auc[set_name] = {"margin": round(float(roc_auc_score(labels, -np.r_[val_margin, margin])), 4)}
        auc[set_name]["neighbour_similarity"] = round(float(roc_auc_score(labels, -np.r_[val_sim, sim])), 4)
    tr = clf.report
    return {
        "protocol": {
            "tuned_on": f"{clinc} train + oos_train (training's own cross-validation only)",
            "n_tune_in_scope": len(train) - sum(lab in oos_labels for _, lab in train),
            "n_tune_oos": sum(lab in oos_labels for _, lab in train),
            "max_train_per_intent": max_train_per_intent,
            "seed": seed,
            "reported_on": {
                "clinc150_val_in_scope": len(val),
                "clinc150_oos_val": len(oos_val),
                "extra_oos": {"source": str(extra_oos) if extra_oos else None, "n": len(extra)},
            },
            "never_tuned_on": "val, oos_val and the extra source: no threshold, cut-off or weight reads them",
            "in_scope_accuracy": "share of val messages given their gold intent (turned away = wrong)",
            "embedding_model": embedder.model_id,
            "oos_max_lost": max_lost,
            "oos_recall_target": recall_target,
        },
        "chosen": chosen,
        "accuracy_without_rejection": round(float((val_best == val_gold).mean()), 4),
        "points": rows,
        "roc_auc_in_scope_vs_oos": auc,
        "training": {
            "n_examples": tr.n_examples,
            "cv_folds": tr.cv_folds,
            "cv_accuracy": tr.cv_accuracy,
            "temperature": tr.temperature,
            "train_seconds": tr.train_seconds,
            "loaded_from_cache": clf.loaded_from_cache,
        },
    }


def summary_lines(report: dict) -> list[str]:
    """A side-by-side table of every operating point on the unseen sets."""
    p = report["protocol"]
    sizes = p["reported_on"]
    extra = sizes["extra_oos"]
    lines = [
        f"tuned on: {p['tuned_on']} ({p['n_tune_in_scope']} in-scope + {p['n_tune_oos']} out-of-scope rows"
        + (f", at most {p['max_train_per_intent']} per intent" if p.get("max_train_per_intent") else "")
        + ")",
        f"reported on (never tuned on): CLINC150 val {sizes['clinc150_val_in_scope']} in-scope, oos_val "
        f"{sizes['clinc150_oos_val']}, extra out-of-scope {extra['n']} ({extra['source']})",
        f"embedding {p['embedding_model']}; in-scope budget oos_max_lost={p['oos_max_lost']}; accuracy "
        f"without rejection {report['accuracy_without_rejection']:.4f}",
        "unseen: in-scope accuracy on val, OOS recall on oos_val and the extra source; out of fold (train): "
        "in-scope lost, in-scope accuracy, OOS recall",
        f"{'operating point':42s} {'in-sc acc':>9s} {'oosval R':>8s} {'extra R':>8s} "
        f"{'oof lost':>8s} {'oof acc':>7s} {'oof R':>6s}  cut-offs (margin / similarity)",
    ]
    for name, row in report["points"].items():
        mark = " *" if name == report["chosen"] else ""
        sim = "–" if row["similarity_cutoff"] is None else f"{row['similarity_cutoff']:.3f}"
        extra_r = row.get("extra_oos_recall")
        lines.append(
            f"{(name + mark):42s} {row['in_scope_accuracy']:9.4f} {row['clinc150_oos_val_recall']:8.4f} "
            f"{'–' if extra_r is None else f'{extra_r:.4f}':>8s} {row['out_of_fold']['in_scope_lost']:8.4f} "
            f"{row['out_of_fold']['in_scope_accuracy']:7.4f} {row['out_of_fold']['oos_recall']:6.4f}  "
            f"{row['margin_cutoff']:.3f} / {sim}"
        )
    chosen = report["points"][report["chosen"]].get("ratio_to_before")
    if chosen:
        lines.append("chosen / before: " + ", ".join(f"{k} ×{v}" for k, v in chosen.items() if v is not None))
    lines.append("* chosen by the configuration (the one the service uses)")
    return lines


def cli(
    clinc: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="CLINC150 data_train_val.json (train/val/oos).")
    ] = DEFAULT_CLINC,
    extra_oos: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="Extra out-of-scope messages from another distribution (JSONL/CSV with a `text` field); "
            "'none' to skip.",
        ),
    ] = DEFAULT_EXTRA,
    max_lost: Annotated[
        float | None, typer.Option(help="In-scope budget (default: REPLYDESK_OOS_MAX_LOST).")
    ] = None,
    max_train_per_intent: Annotated[
        int | None,
        typer.Option(min=2, help="Keep at most this many CLINC150 train rows per intent (seeded; quicker)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of --max-train-per-intent.")] = 13,
    out: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
    language: Annotated[
        str,
        typer.Option(
            help="The rows' language: its embedding route (REPLYDESK_EMBEDDING_ROUTES) embeds them, as the "
            "service does (CLINC150 is English)."
        ),
    ] = "en",
) -> None:
    """Out-of-scope recall on messages tuning never saw (CLINC150 oos_val + another source) and in-scope
    accuracy on CLINC150 val, for the rule before #15 and the in-scope budget rules, side by side."""
    from service.embeddings import get_embedder, language_routes
    from service.errors import InvalidInput
    from service.settings import get_settings

    settings = get_settings()
    embedder = get_embedder(settings.embedding_model, settings.resolved_cache_dir / "embeddings")
    route = language_routes(embedder, settings.embedding_routes).get(language)
    if route is not None:
        embedder = route.embedder
    extra = None if extra_oos is None or str(extra_oos).lower() == "none" else extra_oos
    try:
        report = run(
            clinc,
            extra,
            embedder=embedder,
            max_lost=settings.oos_max_lost if max_lost is None else max_lost,
            recall_target=settings.oos_recall_target,
            max_train_per_intent=max_train_per_intent,
            seed=seed,
            progress=lambda step, done, total: typer.echo(f"{step} {done}/{total}", err=True),
        )
    except (InvalidInput, ValueError) as exc:
        typer.echo(f"error: {getattr(exc, 'message', exc)}", err=True)
        raise typer.Exit(2) from exc
    for line in summary_lines(report):
        typer.echo(line)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2), encoding="utf-8")
        typer.echo(f"report written to {out}")
