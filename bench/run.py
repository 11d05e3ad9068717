"""`make bench` (`python -m bench.run`): every benchmark at a modest default size (≤ 15 min on 2 cores).

1. HTTP load on a real `replydesk serve` subprocess (127.0.0.1, fresh data dir): `/v1/triage` and
`/v1/messages`
   with N concurrent clients at a target rate for T seconds; p50/p95/p99, throughput, errors; after the
   messages run, every accepted message and suggestion is looked up in the database (`lost` must be 0); the
   server's peak RSS.
2. Batch triage throughput (messages/s through `TriageService.triage_batch`) and the share of it spent
embedding,
   on unique texts (no embedding-cache hits).
3. Retrieval scale curve: the knowledge base's ANN benchmark (`bench.kb.run_ann_bench`, the same code as
   `replydesk bench retrieval`) at a few collection sizes.
4. Slow LLM (`bench.slow_llm`, issue #12): `/health` and `GET /v1/queue` latency while 120 ingests wait on a
   4.5 s stand-in LLM, with LLM-bound work on its own pool and, for comparison, on the shared request pool.
5. Agent console (`bench.console`, issue #13): server time per console page next to the JSON API with many
   open conversations and a long thread, and ingest → queue row in Chromium (skipped without
   /usr/bin/chromium).
6. Channel acknowledgement (`bench.channel_ack`, issue #14): time to the 200 of signed WhatsApp webhook POSTs
   of 1 and 100 messages with the pipeline after the answer (default) and inside the request (the former
   behaviour), side by side, and how long the workers then take until every message has its drafts.
7. Outbox deliveries (`bench.deliveries`, issue #16, opt-in: `--only deliveries`, ~5 min): deliveries/s to a
   fast and a 0.3 s receiver, one at a time vs concurrent, and approved-reply delivery latency under a backlog
   of informational events, at a saturating and a sustained ingest rate, and the PostgreSQL wake-up vs poll.
8. Replicas (`bench.replicas`, issue #16, opt-in: `--only replicas`): ingest msg/s, webhook-ack p50/p95 and
   time until pipelines are done with 1 vs 2 workers and 1 vs 2 APIs on PostgreSQL.
9. Growth (`bench.growth`, issue #16, opt-in: `--only growth`, ~10 min): 10k and 100k conversations (1M
   messages) on PostgreSQL, queue / conversation / KPIs / pull / ingest before and after the 0006 and 0010
   indexes.

Results: `bench/results/<name>-<UTC time>.json` per benchmark, `bench/results/latest.json` with all of them,
and the table between the markers in `bench/README.md`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import load
from service.settings import REPO_ROOT

RESULTS_DIR = REPO_ROOT / "bench" / "results"
README = REPO_ROOT / "bench" / "README.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
TARGETS = {
    "triage_p95_ms": 30.0,
    "triage_rate_per_s": 20.0,
    "batch_messages_per_s": 100.0,
    "channel_ack_p50_ms": 250.0,  # a messaging provider's ask for webhook answers (issue #14)
}


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _write(name: str, result: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}-{_stamp()}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return path


def http_load(args: argparse.Namespace, log) -> dict[str, Any]:
    model = {"REPLYDESK_EMBEDDING_MODEL": args.embedding_model} if args.embedding_model else None
    server = load.Server.create(extra_env=model)
    try:
        startup_s = server.start()
        server.warm()
        log(
            f"server up on {server.base_url} in {startup_s:.1f} s; /v1/triage at {args.rate}/s x "
            f"{args.seconds} s"
        )
        triage = load.run_load(
            server, "/v1/triage", clients=args.clients, rate=args.rate, seconds=args.seconds
        )
        log(
            f"  triage: p50 {triage['latency_ms']['p50']} ms, p95 {triage['latency_ms']['p95']} ms, "
            f"errors {triage['errors']}"
        )
        log(f"/v1/messages at {args.messages_rate}/s x {args.seconds} s")
        messages = load.run_load(
            server,
            "/v1/messages",
            clients=args.clients,
            rate=args.messages_rate,
            seconds=args.seconds,
            seed=1,
        )
        log(
            f"  messages: p50 {messages['latency_ms']['p50']} ms, p95 {messages['latency_ms']['p95']} ms, "
            f"errors {messages['errors']}, lost {messages['durability']}"
        )
        return {
            "benchmark": "http-load",
            "startup_s": round(startup_s, 1),
            "triage": triage,
            "messages": messages,
            "server_peak_rss_mb": server.peak_rss_mb(),
            "settings": "production defaults (no LLM: template drafts), SQLite, 1 uvicorn worker",
        }
    finally:
        server.stop()
        server.cleanup()


def batch_triage(args: argparse.Namespace, log) -> dict[str, Any]:
    from service.container import Container
    from service.settings import Settings
    from service.triage.models import TriageRequest

    root = Path(tempfile.mkdtemp(prefix="replydesk-batch-"))
    cache = root / "cache"
    cache.mkdir()
    shared_onnx = REPO_ROOT / "data" / "cache" / "onnx"
    if shared_onnx.is_dir():
        (cache / "onnx").symlink_to(shared_onnx, target_is_directory=True)
    try:
        container = Container(Settings(data_dir=root, cache_dir=cache, llm_base_url=None))
        triage = container.triage  # loads the model and trains the classifier (not measured)
        rng = random.Random(7)
        nonce = uuid.uuid4().hex[:8]
        texts_a = [load.message(rng, nonce + "a", i) for i in range(args.batch)]
        texts_b = [load.message(rng, nonce + "b", i) for i in range(args.batch)]
        t0 = time.perf_counter()
        container.embedder.encode([t for t, _ in texts_a])
        embed_s = time.perf_counter() - t0
        requests = [TriageRequest(text=t, locale=loc) for t, loc in texts_b]
        t0, c0 = time.perf_counter(), time.process_time()
        triage.triage_batch(requests)
        total_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        result = {
            "benchmark": "batch-triage",
            "messages": args.batch,
            "messages_per_s": round(args.batch / total_s, 1),
            "seconds": round(total_s, 2),
            "embedding_only_messages_per_s": round(args.batch / embed_s, 1),
            "embedding_share": round(min(1.0, embed_s / total_s), 3),
            "cpu_seconds": round(cpu_s, 2),
            "messages_per_cpu_s": round(args.batch / cpu_s, 1) if cpu_s else None,
            "embedding_backend": container.settings.embedding_backend,
            "embedding_threads": container.settings.embedding_threads,
        }
        log(
            f"batch triage: {result['messages_per_s']} messages/s, embedding share "
            f"{result['embedding_share']}"
        )
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def retrieval_scale(args: argparse.Namespace, log) -> dict[str, Any]:
    from bench.kb import run_ann_bench

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    result = run_ann_bench(
        sizes, args.dim, types=["flat", "ivf", "hnsw"], queries=200, hnsw_max=max(sizes), log=log
    )
    result.setdefault("benchmark", "retrieval-scale")
    return result


def slow_llm(args: argparse.Namespace, log) -> dict[str, Any]:
    from bench.slow_llm import run_slow_llm_bench

    return run_slow_llm_bench(delay_s=args.llm_delay, ingests=args.llm_ingests, log=log)


def console(args: argparse.Namespace, log) -> dict[str, Any]:
    from bench.console import CHROMIUM_PATH, run_console_bench

    browser = args.console_browser
    if browser and not CHROMIUM_PATH.is_file():
        log(f"  {CHROMIUM_PATH} is missing (`bash scripts/browser.sh`): the browser part is skipped")
        browser = 0
    return run_console_bench(
        conversations=args.console_conversations,
        thread=args.console_thread,
        requests=args.console_requests,
        browser=browser,
        log=log,
    )


def channel_ack(args: argparse.Namespace, log) -> dict[str, Any]:
    from bench.channel_ack import run_channel_ack_bench

    return run_channel_ack_bench(
        singles=args.ack_singles, batches=args.ack_batches, batch_size=args.ack_batch_size, log=log
    )


def deliveries(args: argparse.Namespace, log) -> dict[str, Any]:
    from bench.deliveries import run_deliveries_bench

    return run_deliveries_bench(log=log)


def replicas(args: argparse.Namespace, log) -> dict[str, Any]:
    from bench.replicas import run_replicas_bench

    return run_replicas_bench(log=log)


def growth(args: argparse.Namespace, log) -> dict[str, Any]:
    from bench.growth import run_growth_bench

    sizes = [int(n) for n in args.growth_conversations.split(",")]
    return run_growth_bench(sizes, requests=args.growth_requests, ingests=args.growth_requests, log=log)


# Run only when named with --only: each takes 5-10 minutes (replicas and growth need the local PostgreSQL), so
# `make bench` stays within 15 minutes.
OPT_IN = {"deliveries", "replicas", "growth"}


def check_targets(results: dict[str, Any]) -> dict[str, Any]:
    load_r = results.get("http-load", {})
    batch = results.get("batch-triage", {})
    triage = load_r.get("triage", {})
    messages = load_r.get("messages", {})
    dur = messages.get("durability", {})
    checks = {
        "triage_p95_ms<=30": triage.get("latency_ms", {}).get("p95", float("inf"))
        <= TARGETS["triage_p95_ms"],
        "triage_errors==0": triage.get("errors", 1) == 0,
        "batch_messages_per_s>=100": batch.get("messages_per_s", 0) >= TARGETS["batch_messages_per_s"],
        "messages_errors==0": messages.get("errors", 1) == 0,
        "lost==0": dur.get("lost_messages", 1) == 0 and dur.get("lost_suggestions", 1) == 0,
    }
    slow = results.get("slow-llm", {}).get("modes", {}).get("own")
    if slow:
        checks["slow_llm_ingest_errors==0"] = slow["ingest_errors"] == 0
    ack = results.get("channel-ack", {}).get("modes", {}).get("background")
    if ack:
        p50s = [e["ack_ms"].get("p50", float("inf")) for e in ack["by_messages_per_post"].values()]
        checks["channel_ack_p50_ms<250"] = bool(p50s) and max(p50s) < TARGETS["channel_ack_p50_ms"]
        checks["channel_ack_errors==0"] = set(ack["statuses"]) == {"200"} and not ack["problems"]
        checks["channel_ack_lost==0"] = ack["durability"]["lost"] == 0
    return {"checks": checks, "all_met": all(checks.values())}


def readme_table(results: dict[str, Any]) -> str:
    rows = ["| benchmark | measure | value |", "|---|---|---|"]
    load_r = results.get("http-load")
    if load_r:
        for key in ("triage", "messages"):
            r = load_r[key]
            lat = r["latency_ms"]
            rows.append(
                f"| HTTP `{r['endpoint']}` ({r['clients']} clients, {r['target_rate_per_s']}/s, "
                f"{r['seconds']} s) | p50 / p95 / p99 ms | {lat['p50']} / {lat['p95']} / {lat['p99']} |"
            )
            rows.append(
                f"| | throughput, errors | {r['throughput_per_s']}/s, {r['errors']} of {r['requests']} |"
            )
            rows.append(f"| | server CPU per request | {r.get('server_cpu_ms_per_request')} ms |")
        dur = load_r["messages"].get("durability", {})
        rows.append(
            f"| | lost messages / suggestions | {dur.get('lost_messages')} of {dur.get('accepted_messages')} "
            f"/ {dur.get('lost_suggestions')} of {dur.get('returned_suggestions')} |"
        )
        rows.append(
            f"| server | peak RSS, start-up | {load_r['server_peak_rss_mb']} MB, {load_r['startup_s']} s |"
        )
    batch = results.get("batch-triage")
    if batch:
        rows.append(
            f"| batch triage ({batch['messages']} unique messages) | messages/s (wall), per CPU-second, "
            f"embedding share | {batch['messages_per_s']}, {batch.get('messages_per_cpu_s')}, "
            f"{batch['embedding_share']:.0%} |"
        )
    scale = results.get("retrieval-scale")
    for entry in (scale or {}).get("results", []):
        if "skipped" in entry:
            continue
        rows.append(
            f"| retrieval {entry['index_type']}, n={entry['n']:,} | query p95 wall / cpu ms, recall@10, "
            f"build s | {entry['query_ms']['p95']} / {entry['query_cpu_ms']['p95']}, "
            f"{entry.get('recall@10')}, {entry['build_s']} |"
        )
    slow = results.get("slow-llm") or {}
    for mode, label in (("own", "own pool (default)"), ("shared", "shared request pool (before #12)")):
        r = slow.get("modes", {}).get(mode)
        if not r:
            continue
        h, q = r["health_ms"], r["queue_ms"]
        rows.append(
            f"| slow LLM ({slow['llm_delay_s']} s, {slow['ingests']} concurrent ingests), {label} | "
            f"`/health` p50 / p95 / max ms; `/v1/queue` same | {h['p50']} / {h['p95']} / {h['max']}; "
            f"{q['p50']} / {q['p95']} / {q['max']} |"
        )
        rows.append(
            f"| | burst, ingest errors, LLM calls at once | {r['burst_s']} s, {r['ingest_errors']}, "
            f"{r['llm_peak_in_flight']} |"
        )
    cons = results.get("console") or {}
    seed = cons.get("seed", {})
    for name, page in cons.get("pages", {}).items():
        w = page["wall_ms"]
        label = (
            f"console, {seed.get('conversations')} open conversations, "
            f"{seed.get('thread', {}).get('messages')}-message thread"
            if name == "console_queue"
            else ""
        )
        rows.append(
            f"| {label} | `GET {page['path']}` p50 / p95 / max ms, server CPU ms | {w['p50']} / {w['p95']} / "
            f"{w['max']}, {page['server_cpu_ms_per_request']} |"
        )
    for b in cons.get("browser", []):
        s = b["ingest_to_row_ms"]
        rows.append(
            f"| | ingest → queue row in Chromium, poll {b['events_poll_s']} s, p50 / p95 / max ms | "
            f"{s['p50']} / {s['p95']} / {s['max']} |"
        )
    ack = results.get("channel-ack") or {}
    for mode, label in (
        ("background", "pipeline after the 200 (default)"),
        ("inline", "inside the request (before)"),
    ):
        r = ack.get("modes", {}).get(mode)
        if not r:
            continue
        for n, e in r["by_messages_per_post"].items():
            a, d = e["ack_ms"], e["pipeline_drain_ms"]
            rate = e.get("messages_per_s", {}).get("overall")
            what = f"{n} message{'' if n == '1' else 's'} per POST ({e['posts']} POSTs)"
            rows.append(
                f"| WhatsApp webhook, {what}, {label} | ack p50 / p95 "
                f"/ max ms; all pipelines done p50 / p95 ms, messages/s | {a.get('p50')} / {a.get('p95')} / "
                f"{a.get('max')}; {d.get('p50')} / {d.get('p95')}, {rate} |"
            )
        dur = r["durability"]
        rows.append(
            f"| | non-200, problems, lost | {sum(v for k, v in r['statuses'].items() if k != '200')}, "
            f"{len(r['problems'])}, {dur['lost']} of {dur['sent']} |"
        )
    targets = results.get("targets", {})
    if targets:
        met = ", ".join(f"{k} {'✔' if v else '✘'}" for k, v in targets["checks"].items())
        rows.append(f"| targets | | {met} |")
    meta = results.get("meta", {})
    return (
        f"Measured {meta.get('created_at', '')} on {meta.get('cpus', '?')} CPUs, load average "
        f"{meta.get('load_average_at_start')} at start (other processes share the cores), "
        f"`{meta.get('command', 'make bench')}`:\n\n" + "\n".join(rows) + "\n"
    )


def update_readme(results: dict[str, Any]) -> None:
    text = (
        README.read_text(encoding="utf-8")
        if README.exists()
        else (
            "# Benchmarks\n\n`make bench` runs `python -m bench.run`; raw results are in `results/`.\n\n"
            f"{BEGIN}\n{END}\n"
        )
    )
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1] if END in rest else ""
    README.write_text(f"{head}{BEGIN}\n{readme_table(results)}{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="Duration of each HTTP load phase.")
    parser.add_argument(
        "--embedding-model",
        default=None,
        help="HTTP load: serve with this embedding model (default: the default).",
    )
    parser.add_argument("--rate", type=float, default=20.0, help="Target /v1/triage requests per second.")
    parser.add_argument(
        "--messages-rate", type=float, default=10.0, help="Target /v1/messages requests per second."
    )
    parser.add_argument("--clients", type=int, default=4, help="Concurrent HTTP clients.")
    parser.add_argument("--batch", type=int, default=1000, help="Messages in the batch triage benchmark.")
    parser.add_argument("--sizes", default="1000,10000,50000", help="Retrieval scale curve sizes.")
    parser.add_argument("--dim", type=int, default=384, help="Vector dimension of the retrieval benchmark.")
    parser.add_argument("--llm-delay", type=float, default=4.5, help="Slow-LLM benchmark: seconds per call.")
    parser.add_argument(
        "--llm-ingests", type=int, default=120, help="Slow-LLM benchmark: concurrent ingests."
    )
    parser.add_argument(
        "--console-conversations", type=int, default=200, help="Console benchmark: open conversations."
    )
    parser.add_argument("--console-thread", type=int, default=30, help="Console benchmark: thread length.")
    parser.add_argument(
        "--console-requests", type=int, default=20, help="Console benchmark: timed requests per page."
    )
    parser.add_argument(
        "--console-browser", type=int, default=5, help="Console benchmark: browser samples per poll interval."
    )
    parser.add_argument(
        "--ack-singles", type=int, default=30, help="Channel-ack benchmark: POSTs of 1 message per mode."
    )
    parser.add_argument(
        "--ack-batches", type=int, default=10, help="Channel-ack benchmark: batch POSTs per mode."
    )
    parser.add_argument(
        "--ack-batch-size", type=int, default=100, help="Channel-ack benchmark: messages per batch POST."
    )
    parser.add_argument(
        "--growth-conversations", default="10000,100000", help="Growth benchmark: sizes, comma-separated."
    )
    parser.add_argument(
        "--growth-requests", type=int, default=30, help="Growth benchmark: requests per route."
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[
            "http-load",
            "batch-triage",
            "retrieval-scale",
            "slow-llm",
            "console",
            "channel-ack",
            "deliveries",
            "replicas",
            "growth",
        ],
        help="Run only these benchmarks (repeatable).",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    benches = {
        "http-load": http_load,
        "batch-triage": batch_triage,
        "retrieval-scale": retrieval_scale,
        "slow-llm": slow_llm,
        "console": console,
        "channel-ack": channel_ack,
        "deliveries": deliveries,
        "replicas": replicas,
        "growth": growth,
    }
    results: dict[str, Any] = {
        "meta": {
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "command": " ".join(["python -m bench.run", *(sys.argv[1:] if argv is None else argv)]),
        }
    }
    t0 = time.perf_counter()
    for name, fn in benches.items():
        if (args.only and name not in args.only) or (not args.only and name in OPT_IN):
            continue
        print(f"== {name}", flush=True)
        result = fn(args, lambda m: print(m, flush=True))
        results[name] = result
        print(f"   written to {_write(name, result)}", flush=True)
    previous = RESULTS_DIR / "latest.json"
    if args.only and previous.is_file():  # keep the benchmarks not re-run this time
        for name, value in json.loads(previous.read_text(encoding="utf-8")).items():
            if name in benches and name not in results:
                results[name] = value
    results["targets"] = check_targets(results)
    results["meta"]["seconds"] = round(time.perf_counter() - t0, 1)
    results["meta"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    (RESULTS_DIR / "latest.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    update_readme(results)
    print(json.dumps(results["targets"], indent=2))
    print(f"done in {results['meta']['seconds']} s; table in {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
