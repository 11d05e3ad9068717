"""`replydesk eval encoders`: the embedding models side by side, in one process, through the product's code.

For each encoder (a `Settings.embedding_model` value, run on its `auto` backend):

- **memory**: resident set size of a fresh Python process after building the embedder and embedding one
  message (the same for a bare process that only imports the seam is reported as `base`);
- **latency**: classify-only time per message, one message at a time, through `IntentClassifier.predict` with
  an uncached embedder (embedding + classifier, as a live message), p50/p95 per language; **batch**: messages
  per second embedding a batch of test messages with an uncached embedder (`batch_threads` threads);
- **Banking77 (en)**: a fixed stratified split of `banking77/train.csv` (the only labelled file; `--seed`,
  `--test-frac`), the production intent model trained on the train part, scored on the held-out part;
- **Arabic, cross-lingual**: that English model scored on each Arabic dialect file of `arbanking77` (labels
  mapped to Banking77's through `Banking77_intents.csv`); then English train part + one whole dialect file,
  scored on the other dialect (not for a combined `A+B` model, which is here for English);
- **bundled taxonomy**: the production classifier of the bundled taxonomy (out-of-scope margin included),
  scored per language on `eval/data/multilingual_dev.jsonl` (`text,intent,language`) when the file exists,
  and on the English `eval/data/intents_dev.jsonl`. The taxonomy's own examples are training data, never a
  test set.

Banking77 has no out-of-scope class, so its models are trained without cross-validation (`cv_folds=1`): the
folds only fit the temperature and the out-of-scope margin, neither of which changes the arg-max intent, and
they multiply training time by six. The taxonomy classifier is trained exactly as the service trains it.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from service.settings import REPO_ROOT

if TYPE_CHECKING:  # the heavy modules load when the command runs, not when the CLI starts
    from service.embeddings import Embedder
    from service.settings import Settings
    from service.triage.intent import IntentClassifier, IntentModelConfig

Row = tuple[str, str]
Progress = Callable[[str], None]

DEFAULT_ENCODERS = (
    "bundled:all-MiniLM-L6-v2",
    "bundled:use-multilingual-v3",
    "bundled:multilingual-e5-small",
    "bundled:all-MiniLM-L6-v2+bundled:multilingual-e5-small",
)
SHARED = REPO_ROOT.parent / "shared" / "datasets"
BANKING77 = SHARED / "banking77" / "train.csv"
ARBANKING77 = SHARED / "arbanking77"
MULTILINGUAL_DEV = REPO_ROOT / "eval" / "data" / "multilingual_dev.jsonl"
OWN_DEV = REPO_ROOT / "eval" / "data" / "intents_dev.jsonl"
DIALECTS = ("moroccan", "tunisian")
FAST_CV_FOLDS = 1


@dataclass
class EncoderData:
    en_train: list[Row]
    en_test: list[Row]
    dialects: dict[str, list[Row]]
    multilingual: list[tuple[str, str, str]] = field(default_factory=list)  # text, intent, language
    own_dev: list[Row] = field(default_factory=list)
    sources: dict = field(default_factory=dict)


def _csv_rows(path: Path, text_col: str, label_col: str) -> list[Row]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [
            (r[text_col].strip(), r[label_col].strip()) for r in csv.DictReader(fh) if r[text_col].strip()
        ]


def load_arabic(directory: Path, english_labels: set[str]) -> dict[str, list[Row]]:
    """Each dialect file's rows with its Arabic labels mapped to Banking77's (`card arrival` → `card_arrival`,
    matched case-insensitively)."""
    by_lower = {lab.lower(): lab for lab in english_labels}
    mapping = {
        ar: by_lower[en.lower().replace(" ", "_")]
        for en, ar in _csv_rows(directory / "Banking77_intents.csv", "label_en", "label_ar")
    }
    return {
        name: [
            (text, mapping[label]) for label, text in _csv_rows(directory / f"{name}.csv", "label", "text")
        ]
        for name in DIALECTS
        if (directory / f"{name}.csv").is_file()
    }


def cap_per_label(rows: list[Row], cap: int | None) -> list[Row]:
    """The first `cap` rows of each label, in order (all rows when `cap` is None)."""
    if cap is None:
        return list(rows)
    seen: dict[str, int] = defaultdict(int)
    kept = []
    for text, label in rows:
        if seen[label] < cap:
            seen[label] += 1
            kept.append((text, label))
    return kept


def load_data(
    *,
    seed: int,
    test_frac: float,
    multilingual_dev: Path = MULTILINGUAL_DEV,
    max_train_per_label: int | None = None,
) -> EncoderData:
    from eval.splits import stratified_split

    rows = _csv_rows(BANKING77, "text", "category")
    full_train, test = stratified_split(rows, test_frac=test_frac, seed=seed)
    train = cap_per_label(full_train, max_train_per_label)
    dialects = load_arabic(ARBANKING77, {lab for _, lab in rows})
    multilingual = []
    if multilingual_dev.is_file():
        for line in multilingual_dev.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                multilingual.append((r["text"], r["intent"], r["language"]))
    own = [json.loads(line) for line in OWN_DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
    return EncoderData(
        en_train=train,
        en_test=test,
        dialects=dialects,
        multilingual=multilingual,
        own_dev=[(r["text"], r["label"]) for r in own],
        sources={
            "banking77": f"{BANKING77.name}: {len(rows)} rows, stratified split seed={seed} "
            f"test_frac={test_frac} → train {len(full_train)} / test {len(test)}; trained on {len(train)} "
            f"(at most {max_train_per_label or 'all'} per label)",
            "arbanking77": {name: len(r) for name, r in dialects.items()},
            "multilingual_dev": f"{multilingual_dev.name}: {len(multilingual)} rows"
            if multilingual
            else "absent",
            "own_dev": f"{OWN_DEV.name}: {len(own)} rows (English)",
        },
    )


_RSS_SNIPPET = """
import json, sys
from service.embeddings import build_embedder
name, backend, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
embedder = build_embedder(name, backend=backend, threads=threads, cache_dir=None) if name else None
if embedder is not None:  # kept referenced while RSS is read
    embedder.encode(["where is my parcel?"])
with open("/proc/self/status") as fh:
    rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS"))
print(json.dumps({"rss_mb": round(rss / 1024, 1)}))
"""


def rss_after_load(model: str, backend: str, threads: int) -> float | None:
    """RSS (MiB) of a fresh interpreter after loading `model` and embedding one message; `model=""`: only the
    seam imported. None where /proc is unavailable."""
    if not Path("/proc/self/status").is_file():
        return None
    done = subprocess.run(
        [sys.executable, "-c", _RSS_SNIPPET, model, backend, str(threads)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["rss_mb"])


def interleaved_latency(clfs: dict[str, IntentClassifier], texts: list[str], n: int) -> dict[str, dict]:
    """Classify-only ms per message, one message at a time, each message through every classifier in turn:
    the load of a shared machine changes by the minute, and rotating gives every encoder the same share."""
    import numpy as np

    sample = texts[:n]
    times: dict[str, list[float]] = {name: [] for name in clfs}
    for clf in clfs.values():
        if sample:
            clf.predict(sample[0])  # warm-up
    for text in sample:
        for name, clf in clfs.items():
            t0 = time.perf_counter()
            clf.predict(text)
            times[name].append((time.perf_counter() - t0) * 1000)
    return {
        name: {
            "p50": round(float(np.percentile(ts, 50)), 2) if ts else None,
            "p95": round(float(np.percentile(ts, 95)), 2) if ts else None,
            "n": len(ts),
        }
        for name, ts in times.items()
    }


def interleaved_batch_rate(embedders: dict[str, Embedder], texts: list[str], chunk: int = 32) -> dict:
    """Messages per second embedding `texts` in batches of `chunk`, the encoders taking turns per batch."""
    spent = dict.fromkeys(embedders, 0.0)
    for start in range(0, len(texts), chunk):
        for name, embedder in embedders.items():
            t0 = time.perf_counter()
            embedder.encode(texts[start : start + chunk])
            spent[name] += time.perf_counter() - t0
    return {
        name: {"msg_per_s": round(len(texts) / seconds, 1), "n": len(texts), "batch": chunk}
        for name, seconds in spent.items()
    }


def _accuracy(clf: IntentClassifier, rows: list[Row]) -> dict:
    from eval.intents import score

    texts = [t for t, _ in rows]
    pred = clf.predict_batch(texts)
    report = score([lab for _, lab in rows], [p.name for p in pred], [p.confidence for p in pred])
    return {"n": report["n"], "accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}


def _fit(
    embedder: Embedder, rows: list[Row], config: IntentModelConfig, settings: Settings
) -> IntentClassifier:
    from service.triage.intent import IntentClassifier

    clf = IntentClassifier(
        embedder,
        config=config,
        oos_recall_target=settings.oos_recall_target,
        oos_max_lost=settings.oos_max_lost,
    )
    return clf.fit([t for t, _ in rows], [lab for _, lab in rows])


@dataclass
class Measured:
    report: dict
    live: Embedder  # uncached: a cache hit would hide the embedding time
    timed: dict[str, IntentClassifier]  # "b77" (Banking77 en model), "taxonomy" (the bundled one)


def measure_encoder(
    model: str,
    data: EncoderData,
    *,
    settings: Settings,
    cache_dir: Path | None,
    progress: Progress,
) -> Measured:
    import numpy as np

    from service.embeddings import backend_for, build_embedder
    from service.triage.intent import IntentClassifier, IntentModelConfig
    from service.triage.taxonomy import BUNDLED_MULTILINGUAL_TAXONOMY, load_taxonomy

    fast = IntentModelConfig(cv_folds=FAST_CV_FOLDS)
    threads, batch_threads = settings.embedding_threads, settings.resolved_embedding_batch_threads
    t0 = time.perf_counter()
    live = build_embedder(model, backend="auto", threads=threads, batch_threads=batch_threads, cache_dir=None)
    load_s = time.perf_counter() - t0
    cached = build_embedder(
        model, backend="auto", threads=threads, batch_threads=batch_threads, cache_dir=cache_dir
    )
    out: dict = {
        "model_id": live.model_id,
        "backend": "+".join(backend_for(m, "auto") for m in model.split("+")),
        "dimension": live.dimension,
        "load_s": round(load_s, 2),
        "rss_mb": rss_after_load(model, "auto", threads),
    }
    progress(f"{model}: Banking77 en (train {len(data.en_train)})")
    en = _fit(cached, data.en_train, fast, settings)
    out["banking77_en"] = _accuracy(en, data.en_test)
    out["arabic_from_en"] = {name: _accuracy(en, rows) for name, rows in data.dialects.items()}
    timed = {"b77": en.with_embedder(live)}
    out["arabic_en_plus_dialect"] = {}
    for train_name in data.dialects:
        for test_name, test_rows in data.dialects.items():
            if test_name == train_name:
                continue
            progress(f"{model}: en + {train_name} → {test_name}")
            clf = _fit(cached, data.en_train + data.dialects[train_name], fast, settings)
            out["arabic_en_plus_dialect"][f"en+{train_name}→{test_name}"] = _accuracy(clf, test_rows)
    progress(f"{model}: bundled taxonomy")
    # the 17-language taxonomy for every encoder, so the rows compare encoders on the same training data (the
    # service gives an English-only encoder the five-language file: `taxonomy.bundled_path`)
    taxonomy = load_taxonomy(BUNDLED_MULTILINGUAL_TAXONOMY)
    tax = IntentClassifier(
        cached,
        taxonomy,
        cache_dir=settings.resolved_cache_dir / "intent",  # the service's own cache of trained taxonomies
        oos_recall_target=settings.oos_recall_target,
        oos_max_lost=settings.oos_max_lost,
    ).fit(*taxonomy.training_data())
    out["taxonomy_own_dev_en"] = _accuracy(tax, data.own_dev)
    if data.multilingual:
        by_lang: dict[str, list[Row]] = defaultdict(list)
        for text, intent, lang in data.multilingual:
            by_lang[lang].append((text, intent))
        per_lang = {lang: _accuracy(tax, rows) for lang, rows in sorted(by_lang.items())}
        out["taxonomy_multilingual_dev"] = per_lang
        out["taxonomy_multilingual_dev_macro"] = round(
            float(np.mean([r["accuracy"] for r in per_lang.values()])), 4
        )
    timed["taxonomy"] = tax.with_embedder(live)
    return Measured(out, live, timed)


def compare(
    encoders: list[str],
    *,
    settings: Settings,
    seed: int = 13,
    test_frac: float = 0.2,
    latency_n: int = 100,
    batch_n: int = 256,
    multilingual_dev: Path = MULTILINGUAL_DEV,
    max_train_per_label: int | None = None,
    progress: Progress | None = None,
) -> dict:
    """Every encoder measured in this one process (same machine, same load): see the module docstring."""
    say = progress or (lambda _msg: None)
    data = load_data(
        seed=seed,
        test_frac=test_frac,
        multilingual_dev=multilingual_dev,
        max_train_per_label=max_train_per_label,
    )
    cache_dir = settings.resolved_cache_dir / "embeddings"
    measured = {
        model: measure_encoder(model, data, settings=settings, cache_dir=cache_dir, progress=say)
        for model in encoders
    }
    results = {model: m.report for model, m in measured.items()}
    say("latency, the encoders taking turns per message")
    ar_texts = [t for rows in data.dialects.values() for t, _ in rows]
    ar_sample = ar_texts[:: max(1, len(ar_texts) // max(1, latency_n))]
    b77 = {model: m.timed["b77"] for model, m in measured.items()}
    for key, texts in (("en", [t for t, _ in data.en_test]), ("ar", ar_sample)):
        for model, lat in interleaved_latency(b77, texts, latency_n).items():
            results[model].setdefault("latency_ms", {})[key] = lat
    if data.multilingual:
        by_lang: dict[str, list[str]] = defaultdict(list)
        for text, _intent, lang in data.multilingual:
            by_lang[lang].append(text)
        tax = {model: m.timed["taxonomy"] for model, m in measured.items()}
        for lang, texts in sorted(by_lang.items()):
            for model, lat in interleaved_latency(tax, texts, max(10, latency_n // 5)).items():
                results[model]["latency_ms"].setdefault("per_language", {})[lang] = lat
    say("batch throughput, the encoders taking turns per batch")
    rates = interleaved_batch_rate(
        {model: m.live for model, m in measured.items()}, [t for t, _ in data.en_test[:batch_n]]
    )
    for model, rate in rates.items():
        results[model]["batch"] = rate
    return {
        "command": "replydesk eval encoders "
        + " ".join(f"--encoder {e}" for e in encoders)
        + (f" --max-train-per-label {max_train_per_label}" if max_train_per_label else ""),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "settings": {
            "embedding_threads": settings.embedding_threads,
            "embedding_batch_threads": settings.resolved_embedding_batch_threads,
            "banking77_config": "production IntentModelConfig, cv_folds=1 (no OOS class; arg-max unchanged)",
        },
        "data": data.sources,
        "rss_base_mb": rss_after_load("", "auto", settings.embedding_threads),
        "encoders": results,
    }


def summary_rows(report: dict) -> list[list[str]]:
    """One row per encoder: the figures the choice of default is made on."""

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v * 100:.1f}"

    rows = []
    for model, r in report["encoders"].items():
        lat = r["latency_ms"]
        dialect = r["arabic_en_plus_dialect"]
        rows.append(
            [
                model,
                pct(r["banking77_en"]["accuracy"]),
                " / ".join(pct(v["accuracy"]) for v in r["arabic_from_en"].values()),
                " / ".join(pct(v["accuracy"]) for v in dialect.values()) or "not run",
                pct(r["taxonomy_own_dev_en"]["accuracy"]),
                pct(r.get("taxonomy_multilingual_dev_macro")),
                f"{lat['en']['p50']} / {lat['en']['p95']}",
                f"{lat['ar']['p50']} / {lat['ar']['p95']}",
                str(r["batch"]["msg_per_s"]),
                str(r["rss_mb"]),
            ]
        )
    return rows


SUMMARY_HEADER = [
    "encoder",
    "B77 en %",
    "ar from en % (mor/tun)",
    "ar en+dialect % (→tun/→mor)",
    "own-dev en %",
    "multi-dev macro %",
    "en ms p50/p95",
    "ar ms p50/p95",
    "batch msg/s",
    "RSS MiB",
]


def command(
    encoder: Annotated[
        list[str] | None,
        typer.Option(
            help="An embedding model setting to compare (repeat); default: the four bundled choices."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Write the JSON report here.")] = REPO_ROOT
    / "reports"
    / "encoders.json",
    seed: Annotated[int, typer.Option(help="Seed of the stratified Banking77 split.")] = 13,
    test_frac: Annotated[float, typer.Option(help="Share of Banking77 held out for the test.")] = 0.2,
    latency_n: Annotated[int, typer.Option(help="Messages timed one at a time per language.")] = 100,
    batch_n: Annotated[int, typer.Option(help="Messages embedded in one batch for msg/s.")] = 256,
    multilingual_dev: Annotated[
        Path, typer.Option(help="Per-language dev set of the bundled taxonomy (used when it exists).")
    ] = MULTILINGUAL_DEV,
    max_train_per_label: Annotated[
        int | None, typer.Option(help="Train on at most this many Banking77 rows per label (default: all).")
    ] = None,
) -> None:
    """Compare embedding models side by side: accuracy (Banking77 en, Arabic dialects, the bundled taxonomy
    per language), per-message latency, batch throughput and memory."""
    from rich.console import Console
    from rich.table import Table

    from service.settings import get_settings

    console = Console(stderr=True, width=200)
    report = compare(
        list(encoder or DEFAULT_ENCODERS),
        settings=get_settings(),
        seed=seed,
        test_frac=test_frac,
        latency_n=latency_n,
        batch_n=batch_n,
        multilingual_dev=multilingual_dev,
        max_train_per_label=max_train_per_label,
        progress=lambda msg: console.print(f"[dim]{msg}[/dim]"),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    table = Table(*SUMMARY_HEADER, title=f"encoders side by side ({report['machine']['cpus']} CPUs)")
    for row in summary_rows(report):
        table.add_row(*row)
    console.print(table)
    typer.echo(f"report written to {out}")
