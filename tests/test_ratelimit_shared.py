"""Rate limits shared by replicas (service/auth/ratelimit.py), on the local Redis of scripts/redis.sh.

* Two apps (two replicas) counting in one Redis share one budget per API key: a key limited to N/minute gets
  N successes in total across both, then 429 with Retry-After on both. With `memory://` each process counts
  on its own.
* A storage that does not answer stops the start-up with a clear error; an unusable URI too.
* A Redis outage at run time does not stop the API: each replica counts on its own (the same limit, still
  enforced), logs a warning and counts the requests in a metric; once Redis answers again (checked every
  PROBE_EVERY_S), counting is shared again.

The `redis` tests FAIL (never skip) when the server is unreachable, like the PostgreSQL ones.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from bench.load import free_port
from service.auth.models import ApiKeyCreate
from service.auth.ratelimit import PROBE_EVERY_S, RateLimiter
from service.container import Container
from service.errors import InvalidInput, RateLimited, ServiceUnavailable
from service.settings import REPO_ROOT, Settings
from tests.replica_harness import replica

REDIS_URL = os.environ.get("REPLYDESK_TEST_REDIS_URL", "redis://127.0.0.1:56379")
FALLBACK_METRIC = "replydesk_rate_limit_local_fallback_total"


def _answers(url: str) -> str | None:
    """None if Redis at `url` answers PING, else why not."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
    except redis.RedisError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The local Redis; its absence is a failure, not a skip."""
    problem = _answers(REDIS_URL)
    if problem is not None:
        pytest.fail(
            f"Redis at {REDIS_URL} is unreachable ({problem}). Start it with `bash scripts/redis.sh` "
            "(`make test` does) or set REPLYDESK_TEST_REDIS_URL."
        )
    return REDIS_URL


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.redis
def test_two_apps_on_one_redis_share_one_budget_per_key(redis_url, tmp_path: Path):
    """A key limited to 4/minute: 4 requests succeed across replicas A and B together, then both answer 429
    with Retry-After."""
    db_url = f"sqlite:///{tmp_path / 'shared.db'}"  # the keys live in the shared database, as on PostgreSQL
    with (
        replica(db_url, tmp_path / "a", rate_limit_storage=redis_url) as (a, a_client),
        replica(db_url, tmp_path / "b", rate_limit_storage=redis_url) as (_, b_client),
    ):
        key = a.keys.create(ApiKeyCreate(name="burst", role="agent", rate_limit="4/minute")).key
        headers = {"Authorization": f"Bearer {key}"}
        answers = [client.get("/v1/queue", headers=headers) for client in (a_client, b_client) * 3]
    assert [r.status_code for r in answers] == [200, 200, 200, 200, 429, 429]
    for refused in answers[4:]:
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_with_memory_storage_each_process_counts_on_its_own():
    """The `memory://` default: two limiters (two processes) each allow the full budget."""
    one, two = RateLimiter("2/minute"), RateLimiter("2/minute")
    for limiter in (one, two, one, two):
        limiter.hit("key-1")
    with pytest.raises(RateLimited):
        one.hit("key-1")


def test_a_storage_that_does_not_answer_stops_the_start_up():
    port = free_port()  # nothing listens there
    with pytest.raises(
        ServiceUnavailable, match=rf"rate-limit storage redis://127.0.0.1:{port} does not answer"
    ):
        RateLimiter("10/minute", f"redis://127.0.0.1:{port}")


def test_the_container_builds_the_limiter_on_the_configured_storage_and_refuses_a_bad_one(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        cache_dir=REPO_ROOT / "data" / "cache",
        llm_base_url=None,
        rate_limit_storage=f"redis://:s3cret@127.0.0.1:{free_port()}",
    )
    with pytest.raises(ServiceUnavailable) as refused:
        _ = Container(settings).rate_limiter
    assert "s3cret" not in str(refused.value)  # the URL's password is redacted
    with pytest.raises(InvalidInput, match="not a usable `limits` storage"):
        RateLimiter("10/minute", "carrier-pigeon://loft")


@pytest.mark.redis
def test_a_redis_outage_keeps_requests_flowing_with_per_replica_limits_until_it_answers_again(caplog):
    """A private redis-server is stopped mid-run: hits are counted locally (the same limit per process,
    still enforced), a warning is logged once and the metric counts each; after it restarts, the first hit
    past PROBE_EVERY_S finds it and counting is shared again."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run `bash scripts/redis.sh` (`make test` does)")
    port = free_port()
    url = f"redis://127.0.0.1:{port}"
    registry, clock, key = CollectorRegistry(), FakeClock(), f"k-{uuid.uuid4().hex}"
    with _private_redis(port):
        limiter = RateLimiter("3/minute", url, registry=registry, clock=clock)
        limiter.hit(key)
        limiter.hit(key)  # 2 of 3 used, in Redis
    with caplog.at_level(logging.WARNING, logger="replydesk.ratelimit"):
        started = time.monotonic()
        for _ in range(3):  # the local count starts afresh: 3 more pass
            limiter.hit(key)
        with pytest.raises(RateLimited):
            limiter.hit(key)
        assert time.monotonic() - started < 1.0  # a refused connection does not hold requests up
    assert limiter.shared_down and limiter.health()["status"] == "degraded"
    assert registry.get_sample_value(FALLBACK_METRIC) == 4
    assert [r.__dict__.get("warning") for r in caplog.records] == ["rate_limit_storage_down"]

    with _private_redis(port):  # back, empty (no persistence)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="replydesk.ratelimit"):
            with pytest.raises(RateLimited):
                limiter.hit(key)  # before the probe interval: still counted locally
            clock.now += PROBE_EVERY_S
            for _ in range(3):
                limiter.hit(key)  # shared again: a fresh budget in the restarted Redis
            with pytest.raises(RateLimited):
                limiter.hit(key)
        assert not limiter.shared_down and limiter.health()["status"] == "ok"
        assert registry.get_sample_value(FALLBACK_METRIC) == 5
        assert [r.__dict__.get("warning") for r in caplog.records] == ["rate_limit_storage_recovered"]


@contextmanager
def _private_redis(port: int) -> Iterator[None]:
    """A throw-away redis-server on 127.0.0.1:`port` (no persistence), stopped on exit."""
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while _answers(f"redis://127.0.0.1:{port}") is not None:
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"a private redis-server on port {port} did not start")
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)
