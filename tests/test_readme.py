"""The README's configuration table is the one `scripts/settings_table.py` prints from `Settings`."""

from __future__ import annotations

import subprocess
import sys

from service.settings import REPO_ROOT


def test_the_readme_settings_table_matches_the_settings():
    table = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "settings_table.py")],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    ).stdout.strip()
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert table in readme, "run `python scripts/settings_table.py` and paste its output into the README"
