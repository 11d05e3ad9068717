"""The intent taxonomy: which intents exist, what they mean, example messages, default urgency, automatable.

The bundled taxonomy (`taxonomy.yaml` beside this file) is the default. `Settings.intents_path`
(`REPLYDESK_INTENTS_PATH`) may point at another YAML taxonomy of the same shape, or at a CSV/JSONL file of
`text,label` rows; labels that only exist in such a file get urgency `normal` and `automatable: false`. Rows
labelled `oos` / `out_of_scope` are not an intent: they become out-of-scope training data.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from service import yamlfile
from service.errors import InvalidInput
from service.triage.models import UrgencyLevel, clean_text

BUNDLED_TAXONOMY = Path(__file__).resolve().parent / "taxonomy.yaml"
# The same intents with examples in 17 languages and code-mixed varieties: the default taxonomy when the
# embedding model is multilingual. An English-only encoder (the MiniLM default) learns noise from scripts it
# cannot read: with it the 17-language file cost English 3.4 points (own dev 92.5 → 89.1 %), so it keeps the
# five-language file.
BUNDLED_MULTILINGUAL_TAXONOMY = Path(__file__).resolve().parent / "taxonomy_multilingual.yaml"


def multilingual_model(embedding_model: str) -> bool:
    """Whether an embedding model reads languages other than English (for an `A+B` pair: one part does, e.g.
    `bundled:all-MiniLM-L6-v2+bundled:multilingual-e5-small`)."""
    return "multilingual" in embedding_model.lower()


def bundled_path(embedding_model: str) -> Path:
    """The bundled taxonomy that fits the encoder."""
    return BUNDLED_MULTILINGUAL_TAXONOMY if multilingual_model(embedding_model) else BUNDLED_TAXONOMY


OUT_OF_SCOPE = "out_of_scope"
OOS_LABELS = frozenset({"oos", "out_of_scope", "out-of-scope"})
INTENT_NAME_PATTERN = r"^[^\s\x00-\x1f](?:[^\x00-\x1f]{0,98}[^\s\x00-\x1f])?$"


class IntentSpec(BaseModel):
    """One intent of the taxonomy."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=INTENT_NAME_PATTERN, description="Stable machine name, e.g. `order_status`.")
    description: str = Field("", description="What the customer wants, in one or two sentences.")
    examples: list[str] = Field(default_factory=list, description="Example customer messages.")
    default_urgency: UrgencyLevel = Field(UrgencyLevel.normal, description="Urgency before message cues.")
    automatable: bool = Field(False, description="True when a bot can finish this intent without a human.")

    @field_validator("examples")
    @classmethod
    def _clean_examples(cls, v: list[str]) -> list[str]:
        cleaned = [clean_text(str(x)) for x in v]
        return [x for x in cleaned if x]


class Taxonomy(BaseModel):
    """All intents (by name) plus optional out-of-scope example messages."""

    intents: dict[str, IntentSpec]
    oos_examples: list[str] = Field(default_factory=list, description="Messages that belong to no intent.")
    source: str = Field("bundled", description="Where the taxonomy was loaded from.")

    @property
    def names(self) -> list[str]:
        return sorted(self.intents)

    @property
    def content_hash(self) -> str:
        """Hash of everything that changes a trained classifier (not of `source`)."""
        payload = {
            "intents": {n: self.intents[n].model_dump(mode="json") for n in sorted(self.intents)},
            "oos": self.oos_examples,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[
            :16
        ]

    def training_data(self) -> tuple[list[str], list[str]]:
        """(texts, labels) of every example; out-of-scope examples are labelled `out_of_scope`."""
        texts: list[str] = []
        labels: list[str] = []
        for name in self.names:
            for ex in self.intents[name].examples:
                texts.append(ex)
                labels.append(name)
        for ex in self.oos_examples:
            texts.append(ex)
            labels.append(OUT_OF_SCOPE)
        return texts, labels

    def get(self, name: str) -> IntentSpec | None:
        return self.intents.get(name)


def _invalid(path: Path, message: str, **details: Any) -> InvalidInput:
    return InvalidInput(f"intent taxonomy {path}: {message}", details={"path": str(path), **details})


def _from_yaml(path: Path, raw_text: str) -> Taxonomy:
    try:
        raw = yamlfile.safe_load(raw_text)
    except yamlfile.YAMLError as exc:
        raise _invalid(path, f"not valid YAML ({exc})") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("intents"), list | dict):
        raise _invalid(path, "expected a mapping with an `intents:` list (see service/triage/taxonomy.yaml)")
    items = raw["intents"]
    if isinstance(items, dict):  # {name: {...}} form
        items = [{"name": k, **(v or {})} for k, v in items.items()]
    intents: dict[str, IntentSpec] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _invalid(path, f"intent #{i + 1} is not a mapping")
        try:
            spec = IntentSpec.model_validate(item)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise _invalid(path, f"intent #{i + 1} ({item.get('name', '?')}) is invalid: {problems}") from exc
        if spec.name in OOS_LABELS:
            raise _invalid(
                path, f"`{spec.name}` is reserved; put out-of-scope messages under `out_of_scope_examples`"
            )
        if spec.name in intents:
            raise _invalid(path, f"intent `{spec.name}` is defined twice")
        intents[spec.name] = spec
    oos = raw.get("out_of_scope_examples") or []
    if not isinstance(oos, list):
        raise _invalid(path, "`out_of_scope_examples` must be a list of messages")
    oos_clean = [t for t in (clean_text(str(x)) for x in oos) if t]
    return _finish(path, intents, oos_clean)


def _rows_from_csv(path: Path, raw_text: str, text_col: str, label_col: str) -> list[tuple[str, str]]:
    reader = csv.DictReader(raw_text.splitlines())
    fields = reader.fieldnames or []
    if text_col not in fields or label_col not in fields:
        raise _invalid(path, f"CSV needs columns `{text_col}` and `{label_col}`; found {fields}")
    rows = []
    for i, row in enumerate(reader, start=2):
        text, label = row.get(text_col), row.get(label_col)
        if text is None or label is None:
            raise _invalid(path, f"line {i} has fewer columns than the header", line=i)
        rows.append((text, label))
    return rows


def _rows_from_jsonl(path: Path, raw_text: str, text_col: str, label_col: str) -> list[tuple[str, str]]:
    rows = []
    for i, line in enumerate(raw_text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _invalid(path, f"line {i} is not valid JSON ({exc.msg})", line=i) from exc
        if isinstance(obj, list) and len(obj) == 2:
            obj = {text_col: obj[0], label_col: obj[1]}
        if not isinstance(obj, dict) or not isinstance(obj.get(text_col), str) or obj.get(label_col) is None:
            raise _invalid(path, f"line {i} needs string fields `{text_col}` and `{label_col}`", line=i)
        rows.append((obj[text_col], str(obj[label_col])))
    return rows


def read_labelled_rows(
    path: Path, *, text_col: str = "text", label_col: str = "label"
) -> list[tuple[str, str]]:
    """(text, label) rows of a CSV or JSONL file, cleaned; empty texts are dropped."""
    path = Path(path)
    raw_text = _read(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _rows_from_csv(path, raw_text, text_col, label_col)
    elif suffix in {".jsonl", ".ndjson"}:
        rows = _rows_from_jsonl(path, raw_text, text_col, label_col)
    else:
        raise _invalid(path, "unsupported file type; use .csv or .jsonl")
    out = []
    for text, label in rows:
        t, lab = clean_text(str(text)), str(label).strip()
        if t and lab:
            out.append((t, lab))
    if not out:
        raise _invalid(path, "no labelled rows found")
    return out


def _from_rows(path: Path, rows: list[tuple[str, str]]) -> Taxonomy:
    by_label: dict[str, list[str]] = defaultdict(list)
    oos: list[str] = []
    for text, label in rows:
        if label.lower() in OOS_LABELS:
            oos.append(text)
        else:
            by_label[label].append(text)
    intents = {}
    for label, examples in by_label.items():
        try:
            intents[label] = IntentSpec(name=label, examples=examples)
        except ValidationError as exc:
            raise _invalid(
                path, f"label `{label[:120]}` is not a valid intent name (1-100 printable characters)"
            ) from exc
    return _finish(path, intents, oos)


def _finish(path: Path, intents: dict[str, IntentSpec], oos: list[str]) -> Taxonomy:
    if len(intents) < 2:
        raise _invalid(path, f"needs at least 2 intents; found {len(intents)}")
    thin = sorted(n for n, s in intents.items() if len(s.examples) < 2)
    if thin:
        raise _invalid(
            path, f"every intent needs at least 2 example messages; too few for {thin}", intents=thin
        )
    return Taxonomy(intents=intents, oos_examples=oos, source=str(path))


def _read(path: Path) -> str:
    if not path.is_file():
        raise _invalid(path, "file not found")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _invalid(path, "file is not UTF-8 text") from exc


def load_taxonomy(path: Path | None = None, *, embedding_model: str | None = None) -> Taxonomy:
    """The YAML / CSV / JSONL taxonomy at `path`, or the bundled one that fits `embedding_model` (the
    five-language file for an English-only encoder, the 17-language file for a multilingual one)."""
    if path is None:
        bundled = bundled_path(embedding_model or "")
        tax = _from_yaml(bundled, _read(bundled))
        return tax.model_copy(
            update={"source": "bundled" if bundled == BUNDLED_TAXONOMY else "bundled-multilingual"}
        )
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in {".yaml", ".yml"}:
        return _from_yaml(path, _read(path))
    if suffix in {".csv", ".jsonl", ".ndjson"}:
        return _from_rows(path, read_labelled_rows(path))
    raise _invalid(path, "unsupported file type; use .yaml, .csv or .jsonl")
