"""CI gate: the default evaluation suite in fast mode must not regress against the committed baseline.

Regenerate the baseline on purpose (after an intended change) with:
    replydesk eval run eval/suites/default.yaml --fast --out reports/ --write-baseline
    eval/baselines/default-fast.json
"""

from __future__ import annotations

import pytest

from service.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.slow  # ~150 s: `make test` runs it, `make test-fast` does not

DEFAULT_SUITE = REPO_ROOT / "eval" / "suites" / "default.yaml"
BASELINE = REPO_ROOT / "eval" / "baselines" / "default-fast.json"


def test_the_default_suite_in_fast_mode_does_not_regress_against_the_baseline(shared_datasets, tmp_path):
    from eval.run import execute, summary_lines

    settings = Settings(
        llm_base_url=None
    )  # the shipped defaults; drafts replay the cassette or use templates
    report, code = execute(DEFAULT_SUITE, out=tmp_path, baseline=BASELINE, fast=True, settings=settings)
    summary = "\n".join(summary_lines(report))
    assert {k: p["status"] for k, p in report["parts"].items() if p["status"] != "ok"} == {}, summary
    assert report["comparison"]["passed"], summary
    assert code == 0
    assert (tmp_path / "report.html").is_file()
