"""`report.html`: one self-contained page (inline base64 PNG plots, inline CSS, no external assets).

Sections: configuration; a headline table (ReplyDesk next to its peers for every part); the baseline
comparison (deltas, tolerances, regressions); then per part its plots: intents (per-intent F1 bars vs the
TF-IDF + SVM peer, confusion matrix, reliability diagram), urgency (confusion), retrieval (recall@k curves of
hybrid, BM25-only and dense-only), drafts (latency histogram, sentence-level groundedness examples).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PEER_COLOR = "#9aa5b1"
OURS_COLOR = "#2f6fde"
CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;
     color:#1d2733;     line-height:1.4;padding:0 16px}
h1{margin-bottom:4px} h2{border-bottom:2px solid #e4e8ee;padding-bottom:4px;margin-top:36px}
h3{margin-bottom:6px} .muted{color:#66727f} .small{font-size:12px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #dde3ea;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f3f5f8} td.l,th.l{text-align:left}
.ok{color:#137333} .bad{color:#b3261e;font-weight:600} .info{color:#66727f}
.warn{color:#a15c00;font-weight:600}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:600;font-size:13px}
.pass{background:#e6f4ea;color:#137333} .fail{background:#fce8e6;color:#b3261e} .neutral{background:#eef1f5}
.plots{display:flex;flex-wrap:wrap;gap:12px} .plots img{max-width:100%;border:1px solid #eef1f5}
details{margin:6px 0 12px} code{background:#f3f5f8;padding:1px 4px;border-radius:3px}
"""


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.0f}"
    return html.escape(str(v))


def _e(text: Any) -> str:
    return html.escape(str(text))


# -- plots
# ----------------------------------------------------------------------------------------------------


def confusion_plot(conf: dict, title: str) -> str:
    labels, matrix = conf["labels"], np.asarray(conf["matrix"], dtype=float)
    n = len(labels)
    size = max(4.0, min(11.0, 0.42 * n + 2))
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7 if n > 12 else 9)
    ax.set_yticks(range(n), labels, fontsize=7 if n > 12 else 9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(
                        j,
                        i,
                        str(int(matrix[i, j])),
                        ha="center",
                        va="center",
                        fontsize=6 if n > 12 else 8,
                        color="white" if norm[i, j] > 0.6 else "#1d2733",
                    )
    ax.set_title(title + (" (labels with most errors)" if conf.get("subset") else ""), fontsize=10)
    return _png(fig)


def reliability_plot(rel: dict, title: str, ece: float | None = None) -> str:
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], linestyle="--", color="#999", linewidth=1, label="perfect calibration")
    bins = rel["bins"]
    if bins:
        centers = [(b["lo"] + b["hi"]) / 2 for b in bins]
        ax.bar(
            centers,
            [b["accuracy"] for b in bins],
            width=[0.9 * (b["hi"] - b["lo"]) for b in bins],
            color=OURS_COLOR,
            alpha=0.75,
            label="accuracy",
        )
        ax.plot(
            [b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="#0b3d91", markersize=4
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}: reliability (ECE {rel['ece'] if ece is None else ece:.3f})", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


def f1_bars_plot(ours: dict, peer: dict, title: str, peer_name: str, max_labels: int = 40) -> str:
    labels = sorted(ours, key=lambda lab: ours[lab]["f1"])
    if len(labels) > max_labels:
        labels = labels[:max_labels]
        title += f" (the {max_labels} lowest)"
    y = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(7.5, max(3.0, 0.22 * len(labels) + 1)))
    ax.barh(y + 0.2, [ours[lab]["f1"] for lab in labels], height=0.4, color=OURS_COLOR, label="ReplyDesk")
    ax.barh(
        y - 0.2,
        [peer.get(lab, {}).get("f1", 0) for lab in labels],
        height=0.4,
        color=PEER_COLOR,
        label=peer_name,
    )
    ax.set_yticks(y, labels, fontsize=7 if len(labels) > 25 else 8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def recall_curve_plot(curve: dict, title: str) -> str:
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    names = {
        "hybrid": ("ReplyDesk (hybrid)", OURS_COLOR, "-"),
        "bm25": ("BM25 only", "#d98a00", "--"),
        "dense": ("dense only", "#4caf50", ":"),
    }
    for mode, values in curve["modes"].items():
        label, color, style = names.get(mode, (mode, "#666", "-"))
        ax.plot(curve["k"], values, style, color=color, marker="o", markersize=3, label=label)
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    ax.set_ylim(0, 1)
    ax.set_xticks(curve["k"])
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def latency_plot(values: list[float], title: str) -> str:
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.hist(values, bins=min(30, max(5, len(values) // 2)), color=OURS_COLOR, alpha=0.85)
    if values:
        for q, style in ((50, "--"), (95, ":")):
            v = float(np.percentile(values, q))
            ax.axvline(v, color="#b3261e", linestyle=style, linewidth=1, label=f"p{q} {v:.0f} ms")
        ax.legend(fontsize=8)
    ax.set_xlabel("ms per message")
    ax.set_ylabel("messages")
    ax.set_title(title, fontsize=10)
    return _png(fig)


# -- sections
# -------------------------------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[Any]], left: int = 1) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{_e(h)}</th>' for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def headline_section(report: dict) -> str:
    rows = []
    for key, part in report["parts"].items():
        if part["status"] != "ok":
            cls = "warn" if part["status"] == "not run" else "bad"
            rows.append([f"<b>{_e(key)}</b>", "", f'<span class="{cls}">{_e(part.get("reason"))}</span>', ""])
            continue
        metrics = {k: v for k, v in part["metrics"].items() if not isinstance(v, dict)}
        shown = " · ".join(f"{_e(k)} <b>{_fmt(v)}</b>" for k, v in metrics.items())
        rows.append([f"<b>{_e(key)}</b>", "ReplyDesk", shown, _fmt(part.get("seconds"))])
        for peer, pm in (part.get("peers") or {}).items():
            shown = " · ".join(f"{_e(k)} {_fmt(v)}" for k, v in pm.items() if not isinstance(v, dict))
            rows.append(
                ["", f'<span class="muted">{_e(peer)}</span>', f'<span class="muted">{shown}</span>', ""]
            )
    return "<h2>Results</h2>" + _table(["part", "system", "metrics", "seconds"], rows, left=3)


def comparison_section(report: dict) -> str:
    comp = report.get("comparison")
    if not comp:
        return (
            '<h2>Baseline comparison</h2><p class="muted">No baseline given '
            "(<code>--baseline report.json</code>).</p>"
        )
    badge = (
        '<span class="badge pass">PASSED</span>'
        if comp["passed"]
        else '<span class="badge fail">FAILED</span>'
    )
    rows = []
    order = {"regression": 0, "missing": 1, "improved": 2, "ok": 3, "new": 4}
    for r in sorted(comp["rows"], key=lambda r: (order.get(r["status"], 5), r["metric"])):
        cls = {"regression": "bad", "missing": "bad", "improved": "ok", "ok": "ok"}.get(r["status"], "info")
        delta = r["delta"]
        rows.append(
            [
                _e(r["metric"]),
                _fmt(r["baseline"]),
                _fmt(r["current"]),
                "–" if delta is None else f"{delta:+.4f}",
                _fmt(r["tolerance"]),
                f'<span class="{cls}">{_e(r["status"])}</span>',
            ]
        )
    return (
        f"<h2>Baseline comparison {badge}</h2><p class='muted'>Baseline "
        f"<code>{_e(report.get('baseline_file'))}"
        f"</code>: {comp['regressions']} regressions, {comp['missing']} missing. Tolerances are absolute; "
        "<i>info</i> metrics (latency, peers) are not gated.</p>"
        + _table(["metric", "baseline", "current", "delta", "tolerance", "status"], rows)
    )


def intents_section(key: str, part: dict) -> str:
    d = part["details"]
    peer_name = next(iter(part.get("peers") or {"peer": {}}))
    plots = [
        f1_bars_plot(d["per_intent"], d.get("peer_per_intent", {}), f"{key}: F1 per intent", peer_name),
        confusion_plot(d["confusion"], f"{key}: confusion"),
        reliability_plot(d["reliability"], key, part["metrics"].get("ece")),
    ]
    errs = "".join(
        f"<tr><td class='l'>{_e(e['text'])}</td><td class='l'>{_e(e['gold'])}</td>"
        f"<td class='l'>{_e(e['predicted'])}</td><td>{_fmt(e['confidence'])}</td></tr>"
        for e in d.get("errors", [])[:40]
    )
    return (
        f"<h3>{_e(key)}</h3><p class='muted small'>taxonomy {_e(d['taxonomy'])}; {d['train_rows']} training "
        f"rows, {d['test_rows']} test rows, {d['labels']} labels, OOS margin {_fmt(d.get('oos_margin'))}"
        f"</p><div class='plots'>{''.join(plots)}</div>"
        f"<details><summary>first errors</summary><table><tr><th class='l'>text</th><th class='l'>gold</th>"
        f"<th class='l'>predicted</th><th>confidence</th></tr>{errs}</table></details>"
    )


def urgency_section(key: str, part: dict) -> str:
    return f"<h3>{_e(key)}</h3><div class='plots'>{confusion_plot(part['details']['confusion'], key)}</div>"


def retrieval_section(key: str, part: dict) -> str:
    d = part["details"]
    return (
        f"<h3>{_e(key)}</h3><p class='muted small'>{d['documents']} documents, {d['chunks']} chunks, fusion "
        f"weights {_e(d['weights'])}</p><div class='plots'>"
        f"{recall_curve_plot(d['recall_curve'], f'{key}: recall@k')}</div>"
    )


def drafts_section(key: str, part: dict) -> str:
    d = part["details"]
    lat = d.get("latencies_ms") or []
    examples = []
    for case in d.get("cases", [])[:12]:
        for draft in case["drafts"][:1]:
            sentences = "".join(
                f"<li class='{'ok' if s['supported'] else 'bad'}'>{_e(s['sentence'])} "
                f"<span class='muted small'>(cos {s['max_cosine']}, overlap {s['overlap']})</span></li>"
                for s in draft["sentences"]
            )
            examples.append(
                f"<tr><td class='l'>{_e(case['id'])}</td><td class='l'>{_e(case['text'])}</td>"
                f"<td class='l'>{_e(draft['text'])}<ul class='small'>{sentences}</ul></td>"
                f"<td class='l'>{_e(', '.join(draft['cited']))}</td></tr>"
            )
    definition = d.get("definition", {})
    return (
        f"<h3>{_e(key)}</h3><p><b>LLM:</b> {_e(d.get('llm_mode'))} — {_e(d.get('llm_note'))}; generators "
        f"{_e(d.get('generators'))}; outcomes {_e(d.get('llm_outcomes'))}</p>"
        f"<p class='muted small'>Groundedness: an assessed sentence (not a question, no placeholder, ≥ "
        f"{definition.get('min_content_words')} content words) is supported when its max cosine similarity "
        f"to "
        f"the cited articles' sentences ≥ τ={definition.get('tau')} or its content-word overlap ≥ "
        f"θ={definition.get('theta')}.</p><div class='plots'>{latency_plot(lat, f'{key}: latency per case')}"
        f"</div><details><summary>example drafts with sentence verdicts</summary><table><tr><th class='l'>id"
        f"</th><th class='l'>message</th><th class='l'>first draft</th><th class='l'>cited</th></tr>"
        f"{''.join(examples)}</table></details>"
    )


SECTIONS = {
    "intents": intents_section,
    "urgency": urgency_section,
    "retrieval": retrieval_section,
    "drafts": drafts_section,
}


def render_html(report: dict) -> str:
    cfg = report.get("configuration", {})
    cfg_rows = [[_e(k), f"<code>{_e(v)}</code>"] for k, v in cfg.items() if k != "classifier"]
    comp = report.get("comparison")
    errors = any(p["status"] == "error" for p in report["parts"].values())
    if comp is not None or errors:
        ok = (comp is None or comp["passed"]) and not errors
        status = f'<span class="badge {"pass" if ok else "fail"}">{"PASSED" if ok else "FAILED"}</span>'
    else:
        status = '<span class="badge neutral">no baseline</span>'
    detail = []
    for key, part in report["parts"].items():
        kind = key.split("/")[0]
        if part["status"] == "ok" and kind in SECTIONS:
            detail.append(SECTIONS[kind](key, part))
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>ReplyDesk evaluation: {_e(report['suite'])}</title><style>{CSS}</style></head><body>"
        f"<h1>ReplyDesk evaluation — {_e(report['suite'])} {status}</h1>"
        f"<p class='muted'>{_e(report['mode'])} mode · seed {report['seed']} · {_e(report['created_at'])} · "
        f"{report['seconds']} s · suite <code>{_e(report.get('suite_file', ''))}</code></p>"
        "<h2>Configuration</h2>"
        + _table(["setting", "value"], cfg_rows, left=2)
        + headline_section(report)
        + comparison_section(report)
        + "<h2>Details</h2>"
        + "".join(detail)
        + "</body></html>"
    )


def write_html(report: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return path
