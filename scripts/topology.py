"""The replica topology of compose.yaml without containers, for tests and benchmarks: N `replydesk serve`
API processes (REPLYDESK_WORKERS_ENABLED=false) and M `replydesk worker` processes on one fresh PostgreSQL
database and one shared data directory, all on 127.0.0.1.

    python scripts/topology.py start [--api 2] [--workers 2] [--run-dir /tmp/replydesk-topology] [--redis]
                                     [--env REPLYDESK_X=value ...]
    python scripts/topology.py status [--run-dir ...]
    python scripts/topology.py stop [--run-dir ...]

`start` runs `bash scripts/postgres.sh` (idempotent; prints the URL of the local server, 127.0.0.1:55432),
creates a fresh database `replydesk_topo_<hex>`, creates an admin key with `replydesk keys create` (which also
migrates the database, once, before any replica starts), builds the help-article index into the shared data
directory (`replydesk kb build`), starts the API processes on free 127.0.0.1 ports and the workers, and waits
until every API answers /health and every worker has written its heartbeat. It writes `topology.json` (URLs,
pids, ports, logs, the database and the key) to the run directory, the processes' logs next to it, and prints
`topology.json` on stdout. With `--redis`, `bash scripts/redis.sh` starts a local Redis and every process
counts rate limits there (REPLYDESK_RATE_LIMIT_STORAGE). Other `REPLYDESK_*` settings are passed with
`--env` (the caller's own REPLYDESK_* variables are not inherited: a topology is the same wherever it starts).

Idempotent: `start` on a run directory whose topology is up prints it and changes nothing; if some of its
processes are gone, it starts them again (same ports, same database). `stop` sends SIGTERM to every process it
started (checked by pid and start time, so a reused pid is never signalled), SIGKILL after 20 s, drops the
database and removes `topology.json` (logs and the data directory stay); with nothing running it does nothing.

Tests and benchmarks use the same code in-process: `Topology(run_dir, apis=2, workers=2).start()`, then
`kill("api", 0)` / `start_process("api", 0)` to SIGKILL and restart one process on its port, and `stop()`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 300.0
STOP_GRACE_S = 20.0
DEFAULT_RUN_DIR = Path("/tmp/replydesk-topology")
STATE_FILE = "topology.json"
KINDS = ("api", "worker")


class TopologyError(RuntimeError):
    """A step of starting or stopping the topology failed; the message says which and why."""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, /proc/<pid>/stat field 22); None when it is gone
    (or a zombie: exited, not yet reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])


def _service_url(script: str) -> str:
    """Start a local service with its idempotent script (`postgres.sh`, `redis.sh`) and return the URL the
    script prints on its last line."""
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / script)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise TopologyError(f"scripts/{script} failed: {done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def _exe() -> str:
    return str(Path(sys.executable).with_name("replydesk"))


@dataclass
class Proc:
    """One process of the topology: `api` (with its port) or `worker`."""

    kind: str
    index: int
    log: str
    port: int | None = None
    pid: int | None = None
    started: int | None = None  # /proc start time, to recognise the pid later

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.index}"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def alive(self) -> bool:
        return self.pid is not None and self.started is not None and _start_time(self.pid) == self.started


@dataclass
class Topology:
    run_dir: Path
    apis: int = 2
    workers: int = 2
    env: dict[str, str] = field(default_factory=dict)  # extra REPLYDESK_* settings for every process
    redis: bool = False
    server_url: str | None = None  # the PostgreSQL server (any database on it); default: scripts/postgres.sh
    database_url: str = ""
    api_key: str = ""
    procs: list[Proc] = field(default_factory=list)
    _popen: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    # -- state -----------------------------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.run_dir / STATE_FILE

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    def save(self) -> None:
        state = {
            "apis": self.apis,
            "workers": self.workers,
            "env": self.env,
            "redis": self.redis,
            "database_url": self.database_url,
            "api_key": self.api_key,
            "api_urls": self.api_urls,
            "data_dir": str(self.data_dir),
            "procs": [asdict(p) for p in self.procs],
        }
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.state_path)

    @classmethod
    def load(cls, run_dir: Path) -> Topology | None:
        path = run_dir / STATE_FILE
        if not path.is_file():
            return None
        state = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            run_dir=run_dir,
            apis=state["apis"],
            workers=state["workers"],
            env=state["env"],
            redis=state["redis"],
            database_url=state["database_url"],
            api_key=state["api_key"],
            procs=[Proc(**p) for p in state["procs"]],
        )

    @property
    def api_urls(self) -> list[str]:
        return [p.url for p in self.procs if p.kind == "api"]

    def proc(self, kind: str, index: int) -> Proc:
        for p in self.procs:
            if p.kind == kind and p.index == index:
                return p
        raise KeyError(f"{kind}-{index}")

    # -- environment -----------------------------------------------------------------------------------------

    def process_env(self, kind: str) -> dict[str, str]:
        """What every process gets: the caller's environment without its REPLYDESK_* settings, the topology's
        own (database, shared data directory, shared model caches), then `env`; API replicas leave the
        background loops to the workers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("REPLYDESK_")}
        env.update(
            {
                "REPLYDESK_DATABASE_URL": self.database_url,
                "REPLYDESK_DATA_DIR": str(self.data_dir),
                # the exported ONNX model and the trained intent classifier, shared as the tests share them
                "REPLYDESK_CACHE_DIR": str(REPO_ROOT / "data" / "cache"),
                "REPLYDESK_LOG_LEVEL": "WARNING",
                "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
            }
        )
        env.update(self.env)
        if kind == "api":
            env["REPLYDESK_WORKERS_ENABLED"] = "false"
        return env

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            [_exe(), *args],
            env=self.process_env("cli"),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise TopologyError(f"replydesk {' '.join(args)} failed: {done.stderr[-2000:]}")
        return done.stdout

    # -- database --------------------------------------------------------------------------------------------

    def _server_url(self) -> str:
        return self.server_url or _service_url("postgres.sh")

    def _create_database(self) -> None:
        base = make_url(self._server_url())
        name = f"replydesk_topo_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(libpq_dsn(base.render_as_string(hide_password=False)), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        self.database_url = base.set(database=name).render_as_string(hide_password=False)

    def _drop_database(self) -> None:
        if not self.database_url:
            return
        url = make_url(self.database_url)
        other = url.set(database="postgres").render_as_string(hide_password=False)
        with psycopg.connect(libpq_dsn(other), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')

    def _redis(self) -> None:
        self.env.setdefault("REPLYDESK_RATE_LIMIT_STORAGE", _service_url("redis.sh"))

    # -- processes -------------------------------------------------------------------------------------------

    def start(self, *, wait_workers: bool = True) -> Topology:
        """Database, key, index, then every process; returns when all are ready (see the module docstring)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.redis:
            self._redis()
        self._create_database()
        try:
            # the first command on the database migrates it: once, before any replica starts
            out = self._cli(
                "keys", "create", "--role", "admin", "--name", "topology", "--rate-limit", "1000000/minute"
            )
            self.api_key = out.strip().splitlines()[-1]
            self._cli("kb", "build")
            self.procs = [
                Proc("api", i, str(self.run_dir / f"api-{i}.log"), port=_free_port())
                for i in range(self.apis)
            ] + [Proc("worker", i, str(self.run_dir / f"worker-{i}.log")) for i in range(self.workers)]
            for p in self.procs:
                self._spawn(p)
            self.save()
            self.wait_ready(wait_workers=wait_workers)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, p: Proc) -> None:
        if p.kind == "api":
            cmd = [_exe(), "serve", "--host", LOOPBACK, "--port", str(p.port)]
        else:
            cmd = [_exe(), "worker"]
        with open(p.log, "ab") as log:
            # a session of its own: the processes outlive `topology.py start` and a Ctrl-C of the caller
            proc = subprocess.Popen(
                cmd,
                env=self.process_env(p.kind),
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._popen[p.name] = proc
        p.pid = proc.pid
        p.started = _start_time(proc.pid)

    def start_process(self, kind: str, index: int, *, wait: bool = True) -> float:
        """(Re)start one process with its port and log; seconds until it was ready."""
        p = self.proc(kind, index)
        if p.alive():
            raise TopologyError(f"{p.name} is still running (pid {p.pid})")
        t0 = time.monotonic()
        self._spawn(p)
        self.save()
        if wait:
            self._wait_one(p, time.monotonic() + START_TIMEOUT_S)
        return time.monotonic() - t0

    def kill(self, kind: str, index: int, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send `sig` (default SIGKILL) to one process and wait until it is gone."""
        p = self.proc(kind, index)
        self._signal(p, sig)
        self._reap(p, STOP_GRACE_S)

    def _signal(self, p: Proc, sig: signal.Signals) -> None:
        if p.alive():
            assert p.pid is not None
            os.kill(p.pid, sig)

    def _reap(self, p: Proc, timeout_s: float) -> bool:
        """Wait until the process is gone; False if it is still there after `timeout_s`."""
        popen = self._popen.get(p.name)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if popen is not None and popen.pid == p.pid:
                try:
                    popen.wait(timeout=0.1)
                except subprocess.TimeoutExpired:
                    continue
                return True
            if not p.alive():
                return True
            time.sleep(0.1)
        return not p.alive()

    def wait_ready(self, *, wait_workers: bool = True) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        for p in self.procs:
            if p.kind == "api" or wait_workers:
                self._wait_one(p, deadline)

    def _wait_one(self, p: Proc, deadline: float) -> None:
        """An API is ready when /health answers 200; a worker when its heartbeat row (written once its models
        are loaded and its loops run) names its pid."""
        while time.monotonic() < deadline:
            if not p.alive():
                tail = Path(p.log).read_text(errors="replace")[-3000:] if Path(p.log).exists() else ""
                raise TopologyError(f"{p.name} exited during start-up; end of {p.log}:\n{tail}")
            if p.kind == "api":
                try:
                    if httpx.get(f"{p.url}/health", timeout=2).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
            elif p.pid in self.worker_pids():
                return
            time.sleep(0.2)
        raise TopologyError(f"{p.name} was not ready within {START_TIMEOUT_S:.0f} s (log: {p.log})")

    def worker_pids(self) -> set[int]:
        """Pids of this host's processes whose worker heartbeat is in the database."""
        try:
            with psycopg.connect(libpq_dsn(self.database_url), connect_timeout=5) as con:
                rows = con.execute("select pid from worker_heartbeats where kind = 'worker'").fetchall()
        except psycopg.errors.UndefinedTable:
            return set()
        return {int(r[0]) for r in rows}

    def stop(self) -> None:
        """SIGTERM every process, SIGKILL what is left after the grace period, drop the database."""
        for p in self.procs:
            self._signal(p, signal.SIGTERM)
        for p in self.procs:
            if not self._reap(p, STOP_GRACE_S):
                self._signal(p, signal.SIGKILL)
                self._reap(p, 10)
        self._drop_database()
        self.state_path.unlink(missing_ok=True)

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in self.procs:
            state: dict[str, Any] = {"pid": p.pid, "alive": p.alive(), "log": p.log}
            if p.kind == "api":
                state["url"] = p.url
                try:
                    state["health"] = httpx.get(f"{p.url}/health", timeout=2).json().get("status")
                except (httpx.HTTPError, ValueError):
                    state["health"] = None
            out[p.name] = state
        return out


def libpq_dsn(url: str) -> str:
    """A SQLAlchemy `postgresql+psycopg://` URL as a libpq connection string."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# -- command line --------------------------------------------------------------------------------------------


def _ensure_up(run_dir: Path, args: argparse.Namespace) -> Topology:
    existing = Topology.load(run_dir)
    if existing is None:
        env = dict(kv.split("=", 1) for kv in args.env)
        return Topology(run_dir, apis=args.api, workers=args.workers, env=env, redis=args.redis).start()
    for p in existing.procs:  # the same topology: bring back what is gone, leave the rest alone
        if not p.alive():
            print(f"topology: restarting {p.name}", file=sys.stderr)
            existing.start_process(p.kind, p.index, wait=False)
    existing.wait_ready()
    return existing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/topology.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="Logs, data and topology.json.")
    parser.add_argument("--api", type=int, default=2, help="API processes (replydesk serve).")
    parser.add_argument("--workers", type=int, default=2, help="Worker processes (replydesk worker).")
    parser.add_argument("--redis", action="store_true", help="Shared rate limits in a local Redis.")
    parser.add_argument(
        "--env", action="append", default=[], metavar="REPLYDESK_X=VALUE", help="Setting for every process."
    )
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    try:
        if args.command == "start":
            topo = _ensure_up(run_dir, args)
            print(topo.state_path.read_text(encoding="utf-8"), end="")
        elif args.command == "status":
            loaded = Topology.load(run_dir)
            print(json.dumps(loaded.status() if loaded else {}, indent=2))
        else:
            loaded = Topology.load(run_dir)
            if loaded is not None:
                loaded.stop()
                print(f"topology in {run_dir} stopped", file=sys.stderr)
    except TopologyError as exc:
        print(f"topology: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
