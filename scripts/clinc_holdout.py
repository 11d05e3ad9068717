"""Write a CLINC150 file whose `val` is a stratified part of `train`: to choose the out-of-scope budget
without looking at CLINC150's own val split.

    python scripts/clinc_holdout.py ../shared/datasets/clinc150/data_train_val.json /tmp/clinc-holdout.json
    replydesk eval oos --clinc /tmp/clinc-holdout.json --extra-oos none --out /tmp/oos-holdout.json

`train` keeps the other 80 % (seed 13), `oos_train` is unchanged and `val` is the held-out 20 % of train (in
scope). The budget is chosen on that val's in-scope accuracy only; `oos_val` repeats `oos_train` just to keep
the file's shape (ignore its recall), so CLINC150's own val and oos_val are never read. The budget chosen this
way is then read on CLINC150's real val / oos_val (`replydesk eval oos`), which it never saw.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from eval.splits import stratified_split


def main(source: Path, target: Path, *, test_frac: float = 0.2, seed: int = 13) -> None:
    data = json.loads(source.read_text(encoding="utf-8"))
    rows = [(text, label) for text, label in data["train"]]
    keep, held = stratified_split(rows, test_frac=test_frac, seed=seed)
    out = {
        "train": [list(r) for r in keep],
        "val": [list(r) for r in held],
        "oos_train": data["oos_train"],
        "oos_val": data["oos_train"],
    }
    target.write_text(json.dumps(out), encoding="utf-8")
    print(
        f"{target}: train {len(keep)}, held-out val {len(held)} (from train), "
        f"oos_train {len(data['oos_train'])}"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
