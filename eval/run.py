"""`replydesk eval run SUITE.yaml`: every evaluation part named in a suite file, one report, an optional CI
gate.

A suite file (see `eval/suites/default.yaml`) names parts (`intents`, `urgency`, `retrieval`, `tone`,
`drafts`, `pii`), each with its data, plus tolerances for the baseline comparison. Paths are relative to the
repository root. A part marked `optional: true` whose data is absent is reported as `not run: <path> missing`
(never silently passed); a required part with missing data is an error.

Fast mode (`mode: fast` in the file or `--fast`) subsamples the big sets with the suite's seed: intent
training rows per label, intent test rows (stratified), retrieval queries.

Metrics are flattened to `<kind>/<name>/<metric>` (peers: `<kind>/<name>/peer:<peer>/<metric>`). With a
baseline report, every metric present in both gets a delta; a metric is a regression when it moved in its bad
direction (`LOWER_IS_BETTER` suffixes go down-is-good) by more than its tolerance (the first matching
`tolerances` pattern, `fnmatch` style; `null` means informational). A metric of the baseline that the run
lacks (its part failed or was not run) also fails the gate.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import platform
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split

from eval import drafts as drafts_eval
from eval import peers
from eval import pii as pii_eval
from eval import retrieval as retrieval_eval
from eval import tone as tone_eval
from eval import urgency as urgency_eval
from eval.splits import load_rows, stratified_split
from service import yamlfile
from service.embeddings import Embedder
from service.errors import InvalidInput
from service.settings import REPO_ROOT, Settings
from service.triage.intent import ECE_BINS
from service.triage.taxonomy import OOS_LABELS, OUT_OF_SCOPE

log = logging.getLogger("replydesk.eval")

LOWER_IS_BETTER = (
    "ece",
    "latency_ms",
    "p50",
    "p95",
    "p99",
    "mean",
    "seconds",
    "uncited_draft_rate",
    "oos_false_alarm_rate",
    "clean_cases_flagged",
    "negatives_flagged",
    "leak_rate",
    "drafts_payment_data_in_clear",
)
RELIABILITY_BINS = ECE_BINS  # the intent capability's own ECE binning
CONFUSION_MAX_LABELS = 20


# -- the suite file
# -------------------------------------------------------------------------------------------


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    optional: bool = Field(False, description="Absent data -> `not run`, not an error (public datasets).")


class _OneLanguagePart(_Part):
    language: str | None = Field(
        None,
        description="The rows' language: its embedding route (REPLYDESK_EMBEDDING_ROUTES) embeds them, as "
        "the service embeds a message in that language; default: the language most rows are detected in.",
    )


class IntentsPart(_OneLanguagePart):
    kind: Literal["intents"]
    data: str = Field(description="Test rows (CSV/JSONL text,label or CLINC-style JSON).")
    train: str | None = Field(
        None,
        description="Training rows (becomes the taxonomy, as REPLYDESK_INTENTS_PATH "
        "would); default: the configured taxonomy.",
    )
    split_test_frac: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Carve the test rows from `data` itself (stratified, seeded); the rest trains.",
    )
    train_splits: list[str] | None = None
    test_splits: list[str] | None = None
    text_col: str = "text"
    label_col: str = "label"
    label_map: str | None = Field(
        None,
        description="YAML mapping the test set's labels to the taxonomy's intents "
        "(someone else's dataset); rows of unmapped labels are skipped.",
    )


def load_label_map(path: Path) -> dict[str, str]:
    """A YAML mapping of dataset labels to taxonomy intents."""
    spec = yamlfile.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(spec, dict) or not all(isinstance(v, str) for v in spec.values()):
        raise InvalidInput(f"{path}: needs a mapping of dataset labels to intent names")
    return {str(k): v for k, v in spec.items()}


class UrgencyPart(_Part):
    kind: Literal["urgency"]
    data: str
    label_map: str | None = None  # an intent dataset whose labels map to urgency levels (see eval/urgency.py)
    text_col: str = "text"
    label_col: str = "label"


class RetrievalPart(_OneLanguagePart):
    kind: Literal["retrieval"]
    corpus: str
    queries: str
    qrels: str
    k: int = Field(10, ge=1, le=100)


class TonePart(_Part):
    kind: Literal["tone"]
    data: str
    rules: str | None = None


class DraftsPart(_Part):
    kind: Literal["drafts"]
    data: str
    cassette: str | None = Field(
        None, description="vcrpy cassette replayed for the LLM calls (default mode)."
    )
    llm_settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings the cassette was recorded "
        "with (e.g. llm_model, llm_response_format, llm_seed), applied on replay "
        "so the requests match the recorded ones.",
    )


class PiiPart(_Part):
    kind: Literal["pii"]
    data: str = Field(description="Labelled PII messages (JSONL, see eval/pii.py).")


Part = Annotated[
    IntentsPart | UrgencyPart | RetrievalPart | TonePart | DraftsPart | PiiPart, Field(discriminator="kind")
]


class FastOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_train_per_label: int = Field(20, ge=2)
    max_test: int = Field(300, ge=10)
    max_queries: int = Field(150, ge=10)
    max_draft_cases: int | None = Field(None, ge=1)


def _default_tolerances() -> dict[str, float | None]:
    """Every metric may move by 0.02 before the gate fails, unless the suite says otherwise."""
    return {"*": 0.02}


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    mode: Literal["full", "fast"] = "full"
    seed: int = 13
    fast: FastOptions = Field(default_factory=FastOptions)
    parts: list[Part] = Field(min_length=1)
    tolerances: dict[str, float | None] = Field(default_factory=_default_tolerances)
    fail_on_missing: bool = True


def load_suite(path: Path) -> Suite:
    try:
        raw = yamlfile.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yamlfile.YAMLError) as exc:
        raise InvalidInput(f"suite {path}: cannot read it ({exc})") from exc
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"suite {path}: {problems}") from exc
    keys = Counter(f"{p.kind}/{p.name}" for p in suite.parts)
    repeated = sorted(k for k, n in keys.items() if n > 1)
    if repeated:
        raise InvalidInput(f"suite {path}: part names repeat: {repeated}")
    return suite


def resolve(path: str, root: Path = REPO_ROOT) -> Path:
    p = Path(path)
    return p if p.is_absolute() else (root / p).resolve()


class PartNotRun(Exception):
    """Optional data absent: the part is reported as `not run`."""


# -- shared helpers
# -------------------------------------------------------------------------------------------


def _round(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


def subsample(rows: list[tuple[str, str]], n: int, seed: int) -> list[tuple[str, str]]:
    """At most `n` rows, stratified by label when possible (seeded)."""
    if len(rows) <= n:
        return rows
    try:
        _, picked = train_test_split(rows, test_size=n, random_state=seed, stratify=[r[1] for r in rows])
        return list(picked)
    except ValueError:  # a label too rare to stratify
        return random.Random(seed).sample(rows, n)


def cap_per_label(rows: list[tuple[str, str]], cap: int, seed: int) -> list[tuple[str, str]]:
    by: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        by.setdefault(r[1], []).append(r)
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    for label in sorted(by):
        group = by[label]
        out += rng.sample(group, cap) if len(group) > cap else group
    return out


def _oos(label: str) -> str:
    """`oos`-style labels -> `out_of_scope`; others lower-cased (taxonomy names are lower-case, Banking77's
    not)."""
    label = label.strip().lower()
    return OUT_OF_SCOPE if label in OOS_LABELS else label


def reliability(confidences: Sequence[float], correct: Sequence[bool], bins: int = RELIABILITY_BINS) -> dict:
    """Expected calibration error and the per-bin (mean confidence, accuracy, count) of a reliability
    diagram."""
    conf = np.asarray(confidences, dtype=float)
    ok = np.asarray(correct, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = []
    ece = 0.0
    for i in range(bins):
        lo, hi = edges[i], edges[i + 1]
        mask = (conf > lo) & (conf <= hi) if i else (conf >= lo) & (conf <= hi)
        n = int(mask.sum())
        if n:
            mc, acc = float(conf[mask].mean()), float(ok[mask].mean())
            ece += n / len(conf) * abs(mc - acc)
            out.append(
                {
                    "lo": round(lo, 2),
                    "hi": round(hi, 2),
                    "confidence": round(mc, 4),
                    "accuracy": round(acc, 4),
                    "n": n,
                }
            )
    return {"ece": round(ece, 4), "bins": out}


def confusion_subset(
    gold: Sequence[str], predicted: Sequence[str], max_labels: int = CONFUSION_MAX_LABELS
) -> dict:
    """Confusion matrix over all labels when few, else over the labels involved in the most errors."""
    labels = sorted(set(gold) | set(predicted))
    if len(labels) > max_labels:
        errors: Counter = Counter()
        for g, p in zip(gold, predicted, strict=True):
            if g != p:
                errors[g] += 1
                errors[p] += 1
        labels = sorted(lab for lab, _ in errors.most_common(max_labels)) or labels[:max_labels]
    return {
        "labels": labels,
        "matrix": confusion_matrix(gold, predicted, labels=labels).tolist(),
        "subset": len(labels) < len(set(gold) | set(predicted)),
    }


def percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "mean": 0.0}
    arr = np.asarray(values, dtype=float)
    return {
        "p50": round(float(np.percentile(arr, 50)), 2),
        "p95": round(float(np.percentile(arr, 95)), 2),
        "p99": round(float(np.percentile(arr, 99)), 2),
        "mean": round(float(arr.mean()), 2),
    }


# -- the run context
# ------------------------------------------------------------------------------------------


class RunContext:
    """The configuration under test: one `Container` on a scratch data dir sharing the embedding cache."""

    def __init__(
        self,
        settings: Settings,
        *,
        fast: FastOptions | None,
        seed: int,
        root: Path = REPO_ROOT,
        llm_mode: str = "auto",
        record: bool = False,
    ) -> None:
        from service.container import Container

        self.base_settings = settings
        self.scratch = Path(tempfile.mkdtemp(prefix="replydesk-eval-"))
        self.settings = settings.model_copy(
            update={
                "data_dir": self.scratch,
                "cache_dir": settings.resolved_cache_dir,
                "kb_index_dir": None,
                "database_url": None,
            }
        )
        self.container = Container(self.settings)
        self.fast = fast
        self.seed = seed
        self.root = root
        self.llm_mode = llm_mode
        self.record = record
        self._index_built = False

    def path(self, p: str, *, optional: bool) -> Path:
        resolved = resolve(p, self.root)
        if not resolved.exists():
            if optional:
                raise PartNotRun(f"{p} missing")
            raise InvalidInput(f"{p} missing ({resolved})")
        return resolved

    def ensure_index(self) -> None:
        if not self._index_built:
            self.container.kb.reindex()
            self._index_built = True

    def configuration(self) -> dict:
        s = self.base_settings
        tax = self.container.triage.classifier.taxonomy
        assert tax is not None, "the service's classifier is always trained from a taxonomy"
        return {
            "embedding_model": s.embedding_model,
            "embedding_backend": s.embedding_backend,
            "taxonomy": tax.source,
            "taxonomy_hash": tax.content_hash,
            "n_intents": len(tax.intents),
            "classifier": self.container.triage.describe(),
            "llm": {"base_url": s.llm_base_url, "model": s.llm_model if s.llm_base_url else None},
            "kb_weights": {"dense": s.kb_dense_weight, "bm25": s.kb_bm25_weight, "rrf_k": s.kb_rrf_k},
            "python": platform.python_version(),
            "machine": platform.machine(),
        }

    def close(self) -> None:
        self.container.close()


# -- parts
# ----------------------------------------------------------------------------------------------------


def oos_false_alarm_rate(gold: Sequence[str], predicted: Sequence[str]) -> float | None:
    ins = [p for g, p in zip(gold, predicted, strict=True) if g != OUT_OF_SCOPE]
    return _round(sum(p == OUT_OF_SCOPE for p in ins) / len(ins)) if ins else None


def _headline(report: dict, *, peer: bool = False) -> dict:
    """The scalar metrics of an `eval.intents.score` report (no ECE for peers: they give no confidence)."""
    keys = ["n", "accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "oos_precision"]
    if not peer:
        keys.append("ece")
    return {k: report[k] for k in keys if k in report}


def _embedder_for(part: _OneLanguagePart, texts: list[str], ctx: RunContext) -> Embedder:
    """The embedder the service uses for the rows' language (the part's, else the most detected one in a
    seeded sample of 200 rows)."""
    triage = ctx.container.triage
    language = part.language
    if language is None:
        sample = random.Random(ctx.seed).sample(texts, min(200, len(texts)))
        counts = Counter(triage.language.detect(t).code for t in sample)
        language = counts.most_common(1)[0][0] if counts else ctx.settings.default_locale
    return triage.embedder_for(language)


def run_intents(part: IntentsPart, ctx: RunContext) -> dict:
    """ReplyDesk's classifier (through `eval.intents`, the intent capability's own evaluation) next to the
    TF-IDF + SVM peer trained on the same rows."""
    from eval import intents as intents_eval

    data = ctx.path(part.data, optional=part.optional)
    cols = {"text_col": part.text_col, "label_col": part.label_col}
    if part.split_test_frac:
        rows = [(t, _oos(lab)) for t, lab in load_rows(data, splits=part.train_splits, **cols)]
        train, test = stratified_split(rows, test_frac=part.split_test_frac, seed=ctx.seed)
    else:
        test = [(t, _oos(lab)) for t, lab in load_rows(data, splits=part.test_splits, **cols)]
        train = None
        if part.train:
            train_path = ctx.path(part.train, optional=part.optional)
            train = [(t, _oos(lab)) for t, lab in load_rows(train_path, splits=part.train_splits, **cols)]
    if part.label_map:
        mapping = load_label_map(ctx.path(part.label_map, optional=False))
        test = [(t, mapping[lab]) for t, lab in test if lab in mapping]
        if not test:
            raise InvalidInput(f"{part.data}: no rows with a label listed in {part.label_map}")
    if ctx.fast is not None:
        test = subsample(test, ctx.fast.max_test, ctx.seed)
        if train is not None:
            train = cap_per_label(train, ctx.fast.max_train_per_label, ctx.seed)

    texts = [t for t, _ in test]
    gold = [lab for _, lab in test]
    has_oos = OUT_OF_SCOPE in set(gold)
    t0 = time.perf_counter()
    if train is None:  # the configured taxonomy, as the service triages each message (its language's route)
        from service.triage.models import TriageRequest

        classifier = ctx.container.triage.classifier
        assert classifier.taxonomy is not None, "the service's classifier is always trained from a taxonomy"
        train_texts, train_labels = classifier.taxonomy.training_data()
        intents = [
            r.intent for r in ctx.container.triage.triage_batch([TriageRequest(text=t) for t in texts])
        ]
        report = intents_eval.score(
            gold, [i.name for i in intents], [i.confidence for i in intents], oos=has_oos
        )
        source, margin = classifier.taxonomy.source, classifier.oos_margin
    else:  # a taxonomy trained from the dataset's rows
        result = intents_eval.evaluate(
            train,
            test,
            embedder=_embedder_for(part, [t for t, _ in train], ctx),
            oos_label=OUT_OF_SCOPE if has_oos else None,
            latency_n=0,
            cache_dir=ctx.settings.resolved_cache_dir / "intent",
            oos_recall_target=ctx.settings.oos_recall_target,
            oos_max_lost=ctx.settings.oos_max_lost,
        )
        report, intents = result.report, result.predictions
        train_texts, train_labels = [t for t, _ in train], [lab for _, lab in train]
        source = f"{part.train or part.data} ({len(train)} rows)"
        margin = report.get("training", {}).get("oos_margin")
    seconds = time.perf_counter() - t0
    predicted = [i.name for i in intents]
    metrics = _headline(report)
    if has_oos:
        metrics["oos_false_alarm_rate"] = oos_false_alarm_rate(gold, predicted)

    peer = peers.TfidfSvmIntentPeer(seed=ctx.seed).fit(train_texts, train_labels)
    t1 = time.perf_counter()
    peer_pred = peer.predict(texts)
    peer_s = time.perf_counter() - t1
    peer_report = intents_eval.score(gold, peer_pred, [1.0] * len(peer_pred), oos=has_oos)
    peer_metrics = _headline(peer_report, peer=True)
    if has_oos:
        peer_metrics["oos_false_alarm_rate"] = oos_false_alarm_rate(gold, peer_pred)
    peer_metrics["messages_per_s"] = round(len(texts) / peer_s, 1) if peer_s else None

    rel = reliability([i.confidence for i in intents], [p == g for p, g in zip(predicted, gold, strict=True)])
    errors = [
        {"text": t, "gold": g, "predicted": p, "confidence": round(i.confidence, 3)}
        for t, g, p, i in zip(texts, gold, predicted, intents, strict=True)
        if g != p
    ]
    return {
        "metrics": metrics,
        "peers": {peers.INTENT_PEER: peer_metrics},
        "details": {
            "taxonomy": source,
            "train_rows": len(train_texts),
            "test_rows": len(texts),
            "labels": len(set(gold)),
            "seconds_train_and_predict": round(seconds, 2),
            "oos_margin": margin,
            "per_intent": {k: v for k, v in report["per_label"].items() if k in set(gold)},
            "peer_per_intent": {k: v for k, v in peer_report["per_label"].items() if k in set(gold)},
            "confusion": confusion_subset(gold, predicted),
            "top_confusions": report["confusion"].get("top", []),
            "reliability": rel,
            "errors": errors[:200],
        },
    }


def run_urgency(part: UrgencyPart, ctx: RunContext) -> dict:
    data = ctx.path(part.data, optional=part.optional)
    if part.label_map is None:
        examples = urgency_eval.load_examples(data)
    else:
        examples = urgency_eval.load_mapped_examples(
            data, ctx.path(part.label_map, optional=False), text_col=part.text_col, label_col=part.label_col
        )
    if ctx.fast is not None and part.label_map is not None and len(examples) > ctx.fast.max_test:
        examples = random.Random(ctx.seed).sample(examples, ctx.fast.max_test)
    results: list = []

    def triage_batch(requests: list) -> list:
        out = ctx.container.triage.triage_batch(requests)
        results.extend(out)
        return out

    report = urgency_eval.evaluate(examples, triage_batch)
    metrics = {k: report[k] for k in ("n", "accuracy", "macro_f1", "critical_recall")}
    metrics["messages_per_s"] = round(report["n"] / report["seconds"], 1) if report["seconds"] else None
    # peer: the intent's default urgency, what a taxonomy-only router would do
    tax = ctx.container.triage.classifier.taxonomy
    assert tax is not None, "the service's classifier is always trained from a taxonomy"
    peer_pred = [
        tax.intents[r.intent.name].default_urgency.value if r.intent.name in tax.intents else "normal"
        for r in results
    ]
    peer_metrics = urgency_eval.compute_metrics([e.gold for e in examples], peer_pred)
    return {
        "metrics": metrics,
        "peers": {
            "intent-default-urgency": {
                k: peer_metrics[k] for k in ("n", "accuracy", "macro_f1", "critical_recall")
            }
        },
        "details": {
            "per_level": report["per_level"],
            "confusion": report["confusion"],
            "errors": report["errors"][:100],
        },
    }


def run_retrieval(part: RetrievalPart, ctx: RunContext) -> dict:
    from service.kb.retrieval import Mode, fuse

    paths = [ctx.path(p, optional=part.optional) for p in (part.corpus, part.queries, part.qrels)]
    data = retrieval_eval.load_beir(*paths)
    if ctx.fast is not None and len(data.queries) > ctx.fast.max_queries:
        keep = sorted(random.Random(ctx.seed).sample(sorted(data.queries), ctx.fast.max_queries))
        data = retrieval_eval.BeirData(
            corpus=data.corpus,
            queries={q: data.queries[q] for q in keep},
            qrels={q: data.qrels[q] for q in keep},
        )
    embedder = _embedder_for(part, list(data.queries.values()), ctx)
    weights = ctx.container.kb.weights
    t0 = time.perf_counter()
    corpus = retrieval_eval.build_corpus(retrieval_eval.corpus_articles(data.corpus), embedder)
    build_s = time.perf_counter() - t0
    depth = max(weights.depth, 4 * part.k)
    prepared = retrieval_eval.prepare(corpus, data, embedder, depth=depth)
    by_mode = {
        m: retrieval_eval.evaluate_mode(corpus, prepared, data.qrels, m, weights, part.k) for m in Mode
    }
    curve_k = list(range(1, max(part.k, 10) + 1))
    curves: dict[str, list[float]] = {}
    for mode in Mode:
        sums = np.zeros(len(curve_k))
        for pq in prepared:
            ranked = [h.article_id for h in fuse(corpus, pq.cands, k=curve_k[-1], mode=mode, weights=weights)]
            rel = data.qrels[pq.qid]
            for j, cut in enumerate(curve_k):
                sums[j] += sum(1 for d in ranked[:cut] if d in rel) / len(rel)
        curves[str(mode)] = [round(float(x / max(1, len(prepared))), 4) for x in sums]

    def headline(m: dict) -> dict:
        return {
            **{k: v for k, v in m.items() if k != "latency_ms" and k != "queries"},
            "latency_ms_p50": m["latency_ms"]["p50"],
            "latency_ms_p95": m["latency_ms"]["p95"],
        }

    return {
        "metrics": {"queries": len(prepared), **headline(by_mode[peers.RETRIEVAL_SYSTEM])},
        "peers": {name: headline(by_mode[mode]) for name, mode in peers.RETRIEVAL_PEERS.items()},
        "details": {
            "documents": len(data.corpus),
            "chunks": len(corpus.chunks),
            "index_build_s": round(build_s, 2),
            "weights": {"dense": weights.dense, "bm25": weights.bm25, "rrf_k": weights.rrf_k},
            "recall_curve": {"k": curve_k, "modes": curves},
        },
    }


def run_tone(part: TonePart, ctx: RunContext) -> dict:
    data = ctx.path(part.data, optional=part.optional)
    rules = ctx.path(part.rules, optional=False) if part.rules else ctx.settings.tone_rules_path
    report = tone_eval.run(data, None, rules, default_locale=ctx.settings.default_locale)
    m = report["micro"]
    metrics = {
        "cases": report["cases"],
        "precision": m["precision"],
        "recall": m["recall"],
        "f1": m["f1"],
        "exact_match": report["exact_match"],
        "clean_cases_flagged": _round(report["clean_cases_flagged"] / report["clean_cases"])
        if report["clean_cases"]
        else None,
        "latency_ms_p95": report["latency_ms"]["p95"],
    }
    return {
        "metrics": metrics,
        "peers": {},
        "details": {
            "per_rule": report["per_rule"],
            "errors": report["errors"][:100],
            "unknown_expected_rules": report["unknown_expected_rules"],
        },
    }


def _drafts_llm(part: DraftsPart, ctx: RunContext) -> tuple[str, str, Path | None]:
    """(mode, note, cassette to use) for the drafts part."""
    cassette = resolve(part.cassette, ctx.root) if part.cassette else None
    configured = bool(ctx.base_settings.llm_base_url)
    if ctx.llm_mode == "live":
        if not configured:
            raise InvalidInput("--live needs an LLM endpoint: set REPLYDESK_LLM_BASE_URL")
        return "live", f"live LLM at {ctx.base_settings.llm_base_url}", cassette if ctx.record else None
    if cassette is not None and cassette.is_file():
        return "replay", f"recorded LLM answers replayed from {part.cassette}", cassette
    note = "template drafts: no LLM"
    note += f" (no cassette at {part.cassette})" if part.cassette else " (no cassette configured)"
    return "template", note, None


def run_drafts(part: DraftsPart, ctx: RunContext) -> dict:
    data = ctx.path(part.data, optional=part.optional)
    cases = drafts_eval.load_cases(data)
    if ctx.fast is not None and ctx.fast.max_draft_cases and len(cases) > ctx.fast.max_draft_cases:
        cases = random.Random(ctx.seed).sample(cases, ctx.fast.max_draft_cases)
    ctx.ensure_index()
    mode, note, cassette = _drafts_llm(part, ctx)
    container = ctx.container
    if mode == "template" and ctx.settings.llm_base_url:
        container = _sibling(ctx, llm_base_url=None)
    elif mode == "replay":
        assert cassette is not None
        base_url = drafts_eval.cassette_base_url(cassette)
        if base_url is None:
            raise InvalidInput(f"cassette {part.cassette} has no chat completion request")
        container = _sibling(ctx, **{**part.llm_settings, "llm_base_url": base_url})
    if mode == "template":
        report = drafts_eval.evaluate(cases, container, llm_mode=mode, llm_note=note)
    else:
        import vcr

        record_mode = "all" if mode == "live" else "none"
        recorder = vcr.VCR(
            record_mode=record_mode,
            match_on=["method", "scheme", "host", "port", "path", "body"],
            filter_headers=["authorization", "api-key", "x-api-key"],
        )
        if cassette is None:
            report = drafts_eval.evaluate(cases, container, llm_mode=mode, llm_note=note)
        else:
            from vcr.errors import CannotOverwriteExistingCassetteException

            templates = _sibling(ctx, llm_base_url=None)
            with recorder.use_cassette(str(cassette)):
                report = drafts_eval.evaluate(
                    cases,
                    container,
                    llm_mode=mode,
                    llm_note=note,
                    replay_miss=(CannotOverwriteExistingCassetteException,),
                    template_container=templates,
                )
    if container is not ctx.container and "drafter" in container.__dict__:
        container.drafter.close()  # the sibling shares everything else with the run's container
    return {
        "metrics": report["metrics"],
        "peers": {},
        "details": {k: v for k, v in report.items() if k != "metrics"},
    }


def run_pii(part: PiiPart, ctx: RunContext) -> dict:
    data = ctx.path(part.data, optional=part.optional)
    runner = pii_eval.PiiRun.build(ctx.settings, ctx.container.tone)
    try:
        report = pii_eval.evaluate(pii_eval.load_cases(data), runner)
    finally:
        runner.close()
    return {
        "metrics": pii_eval.metrics(report),
        "peers": {},
        "details": {k: report[k] for k in ("per_language", "per_type_n", "misses", "false_alarms", "leaks")},
    }


def _sibling(ctx: RunContext, **updates: Any) -> Any:
    """A container on the same scratch data (index) with other LLM settings; shares the loaded
    embedder/triage."""
    from service.container import Container

    sibling = Container(ctx.settings.model_copy(update=updates))
    for name in ("embedder", "triage", "kb", "tone"):
        sibling.__dict__[name] = getattr(ctx.container, name)
    return sibling


RUNNERS: dict[str, Callable[[Any, RunContext], dict]] = {
    "intents": run_intents,
    "urgency": run_urgency,
    "retrieval": run_retrieval,
    "tone": run_tone,
    "drafts": run_drafts,
    "pii": run_pii,
}


# -- flattening and comparison
# --------------------------------------------------------------------------------


def flatten(parts: dict[str, dict]) -> dict[str, float]:
    flat: dict[str, float] = {}

    def put(prefix: str, metrics: dict) -> None:
        for key, value in metrics.items():
            if isinstance(value, dict):
                put(f"{prefix}/{key}", value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                flat[f"{prefix}/{key}"] = float(value)

    for key, part in parts.items():
        if part.get("status") != "ok":
            continue
        put(key, part.get("metrics", {}))
        for peer, metrics in (part.get("peers") or {}).items():
            put(f"{key}/peer:{peer}", metrics)
    return flat


def lower_is_better(metric: str) -> bool:
    last = metric.rsplit("/", 1)[-1]
    return any(last == s or last.endswith(s) or f"/{s}/" in metric for s in LOWER_IS_BETTER)


def tolerance_for(metric: str, tolerances: dict[str, float | None]) -> float | None:
    for pattern, tol in tolerances.items():
        if fnmatch.fnmatchcase(metric, pattern):
            return tol
    return None


def compare(
    current: dict[str, float],
    baseline: dict[str, float],
    tolerances: dict[str, float | None],
    *,
    fail_on_missing: bool = True,
) -> dict:
    rows = []
    for metric in sorted(set(baseline) | set(current)):
        tol = tolerance_for(metric, tolerances)
        base, cur = baseline.get(metric), current.get(metric)
        if base is None:
            rows.append(
                {
                    "metric": metric,
                    "baseline": None,
                    "current": cur,
                    "delta": None,
                    "tolerance": tol,
                    "status": "new",
                }
            )
            continue
        if cur is None:
            status = "missing" if tol is not None and fail_on_missing else "missing (informational)"
            rows.append(
                {
                    "metric": metric,
                    "baseline": base,
                    "current": None,
                    "delta": None,
                    "tolerance": tol,
                    "status": status,
                }
            )
            continue
        delta = cur - base
        worse = -delta if not lower_is_better(metric) else delta
        if tol is None:
            status = "info"
        elif worse > tol + 1e-9:
            status = "regression"
        elif worse < -1e-9:
            status = "improved"
        else:
            status = "ok"
        rows.append(
            {
                "metric": metric,
                "baseline": base,
                "current": cur,
                "delta": round(delta, 4),
                "tolerance": tol,
                "status": status,
            }
        )
    failed = [r for r in rows if r["status"] in ("regression", "missing")]
    return {
        "rows": rows,
        "regressions": len([r for r in rows if r["status"] == "regression"]),
        "missing": len([r for r in rows if r["status"] == "missing"]),
        "passed": not failed,
    }


# -- the command
# ----------------------------------------------------------------------------------------------


def run_suite(
    suite: Suite,
    *,
    settings: Settings,
    fast: bool | None = None,
    root: Path = REPO_ROOT,
    llm_mode: str = "auto",
    record: bool = False,
    only: Sequence[str] | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict:
    is_fast = suite.mode == "fast" if fast is None else fast
    ctx = RunContext(
        settings,
        fast=suite.fast if is_fast else None,
        seed=suite.seed,
        root=root,
        llm_mode=llm_mode,
        record=record,
    )
    started = time.perf_counter()
    parts: dict[str, dict] = {}
    try:
        for part in suite.parts:
            key = f"{part.kind}/{part.name}"
            if only and part.kind not in only and key not in only:
                continue
            progress(f"{key} ...")
            t0 = time.perf_counter()
            try:
                result = RUNNERS[part.kind](part, ctx)
                result["status"] = "ok"
            except PartNotRun as exc:
                result = {"status": "not run", "reason": f"not run: {exc}"}
            except (InvalidInput, ValueError, OSError, KeyError) as exc:
                message = exc.message if isinstance(exc, InvalidInput) else str(exc)
                log.error("eval part failed", extra={"part": key, "error": message})
                result = {"status": "error", "reason": f"{type(exc).__name__}: {message}"}
            result["seconds"] = round(time.perf_counter() - t0, 2)
            progress(f"{key}: {result['status']} in {result['seconds']} s")
            parts[key] = result
        configuration = ctx.configuration()
    finally:
        ctx.close()
    return {
        "suite": suite.name,
        "mode": "fast" if is_fast else "full",
        "seed": suite.seed,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 2),
        "configuration": configuration,
        "parts": parts,
        "metrics": flatten(parts),
    }


def load_baseline(path: Path) -> dict[str, float]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"baseline {path}: cannot read it ({exc})") from exc
    metrics = data.get("metrics") if isinstance(data, dict) else None
    if not isinstance(metrics, dict):
        raise InvalidInput(f"baseline {path}: no `metrics` object (pass a report.json written by `eval run`)")
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def summary_lines(report: dict) -> list[str]:
    lines = [f"suite {report['suite']} ({report['mode']} mode) in {report['seconds']} s"]
    for key, part in report["parts"].items():
        if part["status"] != "ok":
            lines.append(f"  {key:28s} {part.get('reason', part['status'])}")
            continue
        shown = ", ".join(
            f"{k}={v}"
            for k, v in part["metrics"].items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        )[:160]
        lines.append(f"  {key:28s} {shown}")
        for peer, m in part.get("peers", {}).items():
            shown = ", ".join(f"{k}={v}" for k, v in m.items() if isinstance(v, int | float))[:140]
            lines.append(f"  {'':28s} peer {peer}: {shown}")
    comparison = report.get("comparison")
    if comparison:
        bad = [r for r in comparison["rows"] if r["status"] in ("regression", "missing")]
        lines.append(
            f"baseline: {'PASSED' if comparison['passed'] else 'FAILED'} "
            f"({comparison['regressions']} regressions, {comparison['missing']} missing)"
        )
        for r in bad:
            lines.append(
                f"  {r['status']:10s} {r['metric']}: {r['baseline']} -> {r['current']} "
                f"(tolerance {r['tolerance']})"
            )
    return lines


def execute(
    suite_path: Path,
    *,
    out: Path,
    baseline: Path | None = None,
    fast: bool | None = None,
    llm_mode: str = "auto",
    record: bool = False,
    only: Sequence[str] | None = None,
    settings: Settings | None = None,
    root: Path = REPO_ROOT,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[dict, int]:
    """Run, compare, write `report.json` + `report.html` into `out`; returns (report, exit code)."""
    from eval.report import write_html
    from service.settings import get_settings

    suite = load_suite(suite_path)
    base = load_baseline(baseline) if baseline is not None else None
    report = run_suite(
        suite,
        settings=settings or get_settings(),
        fast=fast,
        root=root,
        llm_mode=llm_mode,
        record=record,
        only=only,
        progress=progress,
    )
    report["suite_file"] = str(suite_path)
    code = 0
    if base is not None:
        report["baseline_file"] = str(baseline)
        if only:  # parts left out on purpose are not "missing"
            base = {m: v for m, v in base.items() if "/".join(m.split("/")[:2]) in report["parts"]}
        report["comparison"] = compare(
            report["metrics"], base, suite.tolerances, fail_on_missing=suite.fail_on_missing
        )
        code = 0 if report["comparison"]["passed"] else 1
    if any(p["status"] == "error" for p in report["parts"].values()):
        code = 1
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    write_html(report, out / "report.html")
    return report, code
