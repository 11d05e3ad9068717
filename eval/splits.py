"""Labelled-data loading and reproducible stratified dev splits for the intent evaluations.

Reads CSV and JSONL files of `text,label` rows (column names configurable) and the CLINC150 JSON layout
(`{"train": [[text, intent], ...], "val": [...], "oos_train": [...], ...}`), where `splits` picks which lists
to use.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from sklearn.model_selection import train_test_split

from service.errors import InvalidInput
from service.triage.models import clean_text
from service.triage.taxonomy import load_taxonomy, read_labelled_rows

Row = tuple[str, str]
CLINC_DEFAULT_TRAIN = ("train", "oos_train")
CLINC_DEFAULT_TEST = ("val", "oos_val")


def load_clinc_json(path: Path, splits: tuple[str, ...] | list[str]) -> list[Row]:
    """Rows of the named lists of a CLINC150-style JSON file (e.g. `data_train_val.json`)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: not valid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a JSON object of split name -> [[text, label], ...]")
    missing = [s for s in splits if s not in data]
    if missing:
        raise InvalidInput(f"{path}: no split(s) {missing}; the file has {sorted(data)}")
    rows: list[Row] = []
    for split in splits:
        for i, item in enumerate(data[split]):
            if not (isinstance(item, list | tuple) and len(item) == 2):
                raise InvalidInput(f"{path}: {split}[{i}] is not a [text, label] pair")
            text = clean_text(str(item[0]))
            if text:
                rows.append((text, str(item[1])))
    return rows


def load_rows(
    path: Path,
    *,
    text_col: str = "text",
    label_col: str = "label",
    splits: tuple[str, ...] | list[str] | None = None,
) -> list[Row]:
    """(text, label) rows from a CSV, JSONL, CLINC-style JSON or YAML taxonomy file (its examples)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: file not found")
    if path.suffix.lower() in {".yaml", ".yml"}:
        texts, labels = load_taxonomy(path).training_data()
        return list(zip(texts, labels, strict=True))
    if path.suffix.lower() == ".json":
        return load_clinc_json(path, tuple(splits) if splits else CLINC_DEFAULT_TRAIN)
    return read_labelled_rows(path, text_col=text_col, label_col=label_col)


def load_texts(path: Path, *, text_col: str = "text") -> list[str]:
    """The texts of an unlabelled JSONL or CSV file (e.g. BEIR `queries.jsonl`: `{"_id", "text"}` per line),
    cleaned, empty ones dropped: messages of a source scored as a whole (say, all out of scope)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: file not found")
    raw = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(raw.splitlines())
        if text_col not in (reader.fieldnames or []):
            raise InvalidInput(f"{path}: no column {text_col!r}; the file has {reader.fieldnames}")
        values = [row[text_col] for row in reader]
    else:
        values = []
        for n, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
            if not isinstance(item, dict) or text_col not in item:
                raise InvalidInput(f"{path}:{n}: expected an object with a {text_col!r} field")
            values.append(item[text_col])
    texts = [t for t in (clean_text(str(v)) for v in values) if t]
    if not texts:
        raise InvalidInput(f"{path}: no texts found")
    return texts


def stratified_split(rows: list[Row], *, test_frac: float, seed: int) -> tuple[list[Row], list[Row]]:
    """Stratified (by label) train/test split; labels with a single row stay in train."""
    if not 0 < test_frac < 1:
        raise InvalidInput(f"test fraction must be between 0 and 1; got {test_frac}")
    counts = Counter(label for _, label in rows)
    singles = [r for r in rows if counts[r[1]] < 2]
    rest = [r for r in rows if counts[r[1]] >= 2]
    train, test = train_test_split(
        rest, test_size=test_frac, random_state=seed, stratify=[r[1] for r in rest]
    )
    return list(train) + singles, list(test)


def write_rows(path: Path, rows: list[Row], *, text_col: str = "text", label_col: str = "label") -> None:
    """Write rows as CSV or JSONL (by suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([text_col, label_col])
            writer.writerows(rows)
    else:
        with path.open("w", encoding="utf-8") as f:
            for text, label in rows:
                f.write(json.dumps({text_col: text, label_col: label}, ensure_ascii=False) + "\n")


def split_file(
    path: Path,
    out_dir: Path,
    *,
    test_frac: float = 0.2,
    seed: int = 13,
    text_col: str = "text",
    label_col: str = "label",
    splits: tuple[str, ...] | list[str] | None = None,
    fmt: str | None = None,
) -> dict:
    """Carve `out_dir/train.<fmt>` and `out_dir/test.<fmt>` from one labelled file; returns a summary."""
    rows = load_rows(path, text_col=text_col, label_col=label_col, splits=splits)
    train, test = stratified_split(rows, test_frac=test_frac, seed=seed)
    ext = fmt or ("csv" if Path(path).suffix.lower() == ".csv" else "jsonl")
    out_dir = Path(out_dir)
    train_path, test_path = out_dir / f"train.{ext}", out_dir / f"test.{ext}"
    write_rows(train_path, train, text_col=text_col, label_col=label_col)
    write_rows(test_path, test, text_col=text_col, label_col=label_col)
    return {
        "source": str(path),
        "seed": seed,
        "test_frac": test_frac,
        "n_train": len(train),
        "n_test": len(test),
        "n_labels": len({label for _, label in rows}),
        "train": str(train_path),
        "test": str(test_path),
    }
