"""The deployment files say what the README promises: compose.yaml runs PostgreSQL, Redis, N API replicas with
the background loops off and M `replydesk worker` processes on one database and one data volume, with secrets
only as placeholders; the Dockerfile installs the pinned torch before the project, builds the index, and runs
as a non-root user with a /health check. (No Docker daemon in CI: this reads the files, it does not build.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+)(?::?[-?](?P<default>[^}]*))?\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _default(value: str) -> str | None:
    """The default of a `${VAR:-default}` placeholder."""
    m = PLACEHOLDER.match(str(value))
    return m.group("default") if m else None


def test_compose_runs_postgres_redis_migrations_api_replicas_and_workers(compose):
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "api", "worker"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]
    for name in ("api", "worker"):
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["migrate"]["condition"] == "service_completed_successfully"


def test_api_replicas_serve_http_with_the_background_loops_off(compose):
    api = compose["services"]["api"]
    assert api["command"][:2] == ["replydesk", "serve"] and "0.0.0.0" in api["command"]
    assert api["environment"]["REPLYDESK_WORKERS_ENABLED"] == "false"
    assert _default(api["deploy"]["replicas"]) == "2"
    assert any(str(p).endswith(":8000") for p in api["ports"])


def test_workers_run_the_worker_command_with_their_loops_on(compose):
    worker = compose["services"]["worker"]
    assert worker["command"] == ["replydesk", "worker"]
    assert worker["environment"].get("REPLYDESK_WORKERS_ENABLED", "true") != "false"
    assert _default(worker["deploy"]["replicas"]) == "2"
    assert worker["stop_signal"] == "SIGTERM"


def test_api_and_workers_share_one_database_one_data_volume_and_redis_rate_limits(compose):
    api, worker = compose["services"]["api"], compose["services"]["worker"]
    for key in ("REPLYDESK_DATABASE_URL", "REPLYDESK_DATA_DIR", "REPLYDESK_RATE_LIMIT_STORAGE"):
        assert api["environment"][key] == worker["environment"][key]
    assert "@postgres:5432/" in api["environment"]["REPLYDESK_DATABASE_URL"]
    assert api["environment"]["REPLYDESK_RATE_LIMIT_STORAGE"] == "redis://redis:6379"
    data_dir = api["environment"]["REPLYDESK_DATA_DIR"]
    assert f"replydesk-data:{data_dir}" in api["volumes"] and api["volumes"] == worker["volumes"]
    assert "replydesk-data" in compose["volumes"]


def test_compose_holds_no_secret_only_required_placeholders(compose):
    envs = [s.get("environment", {}) for s in compose["services"].values()]
    secrets = {k: v for env in envs for k, v in env.items() if re.search(r"SECRET|PASSWORD|TOKEN|API_KEY", k)}
    assert {"POSTGRES_PASSWORD", "REPLYDESK_WEBHOOK_SECRET", "REPLYDESK_CONSOLE_SESSION_SECRET"} <= set(
        secrets
    )
    for name, value in secrets.items():
        assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", value), f"{name} must be a required ${{VAR:?}}"
    url = compose["services"]["api"]["environment"]["REPLYDESK_DATABASE_URL"]
    assert "${POSTGRES_PASSWORD:?" in url


def test_dockerfile_installs_the_pinned_torch_before_the_project():
    steps = _instructions()
    base = steps[0]
    assert base[0] == "FROM" and re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base[1]), base
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in deps if re.match(r"torch\b", d))
    assert pin.startswith("torch==")
    args = dict(a.split("=", 1) for w, a in steps if w == "ARG" and "=" in a)
    assert f"torch=={args['TORCH_VERSION']}" == pin
    runs = [a for w, a in steps if w == "RUN"]
    torch_at = next(i for i, r in enumerate(runs) if 'pip install "torch==${TORCH_VERSION}"' in r)
    project_at = next(i for i, r in enumerate(runs) if re.search(r"pip install \.(\s|$)", r))
    assert torch_at < project_at
    assert any("replydesk kb build" in r for r in runs)


def test_dockerfile_runs_as_a_non_root_user_with_a_health_check():
    steps = _instructions()
    words = [w for w, _ in steps]
    users = [a for w, a in steps if w == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert words.index("USER") < words.index("CMD")
    health = next(a for w, a in steps if w == "HEALTHCHECK")
    assert "/health" in health and "127.0.0.1:8000" in health
    assert ("EXPOSE", "8000") in steps
    assert (
        next(a for w, a in steps if w == "CMD")
        == '["replydesk", "serve", "--host", "0.0.0.0", "--port", "8000"]'
    )


def test_the_build_context_has_what_the_dockerfile_copies_and_no_secrets_or_local_data():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".venv", "data", ".git"} <= ignored
    copied = [a.split()[:-1] for w, a in _instructions() if w == "COPY"]
    for sources in copied:
        for src in sources:
            assert (ROOT / src).exists(), src
            assert src not in ignored, f"{src} is copied but excluded from the build context"
