"""Bad input is a clear 4xx in the project's error envelope, never a 500 or a reset connection: ids past
SQLite's 64-bit range, bodies over the limit (refused before they are read), unknown routes and methods, and
text made only of invisible characters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.settings import Settings

TOO_BIG_ID = 2**63  # one past SQLite's largest integer
MESSAGE = {
    "channel": "webchat",
    "conversation_external_id": "bad-input-1",
    "customer": {"id": "c-bad-input"},
    "sent_at": "2026-01-05T09:00:00Z",
}


def _envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/messages/{TOO_BIG_ID}",
        f"/v1/suggestions/{TOO_BIG_ID}",
        f"/v1/conversations/{TOO_BIG_ID}",
        f"/v1/suggestions?conversation_id={TOO_BIG_ID}",
        f"/v1/events?since={TOO_BIG_ID}",
        f"/v1/messages/{-1}",
        "/v1/messages/99999999999999999999999999999",
    ],
)
def test_ids_outside_the_64_bit_range_are_422_not_500(client, path):
    _envelope(client.get(path), 422, "invalid_input")


@pytest.mark.parametrize("value", [str(TOO_BIG_ID), "١٢٣".encode(), "12a", "-5"])
def test_a_last_event_id_that_is_not_a_64_bit_event_id_is_422(client, value):
    _envelope(client.get("/v1/events", headers={"Last-Event-ID": value}), 422, "invalid_input")


def test_an_unknown_route_is_404_in_the_envelope(client):
    error = _envelope(client.get("/v1/nope"), 404, "not_found")
    assert "/v1/nope" in error["message"]


def test_a_wrong_method_is_405_in_the_envelope(client):
    error = _envelope(client.delete("/v1/queue"), 405, "method_not_allowed")
    assert error["details"]["method"] == "DELETE"


@pytest.mark.parametrize("text", ["\u200b", "\u200b\u200c\u200d", " \ufeff \u2060 ", "\u200e\u200f"])
def test_ingest_rejects_text_made_only_of_invisible_characters(client, text):
    error = _envelope(client.post("/v1/messages", json={**MESSAGE, "text": text}), 422, "invalid_input")
    assert "invisible" in error["message"]


@pytest.fixture(scope="module")
def small_limit(tmp_path_factory) -> Iterator[tuple[TestClient, Settings]]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("limit"),
        llm_base_url=None,
        workers_enabled=False,
        max_body_bytes=4096,
    )
    app = create_app(settings, warm=False)
    with TestClient(app) as client:
        yield client, settings


def test_a_body_over_the_limit_is_413_by_its_content_length(client):
    body = b"{" + b" " * (50 * 1024 * 1024) + b"}"  # 50 MB, against the default 1 MB limit
    error = _envelope(
        client.post("/v1/messages", content=body, headers={"Content-Type": "application/json"}),
        413,
        "payload_too_large",
    )
    assert error["details"]["limit_bytes"] == 1_048_576


def test_a_chunked_body_is_cut_off_with_413_once_it_passes_the_limit(small_limit):
    client, _ = small_limit

    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(100):
            yield b"x" * 1024

    response = client.post("/v1/tone/check", content=chunks(), headers={"Content-Type": "application/json"})
    _envelope(response, 413, "payload_too_large")


def test_the_limit_is_a_setting_and_bodies_under_it_are_read(small_limit):
    client, settings = small_limit
    assert settings.max_body_bytes == 4096
    over = client.post("/v1/tone/check", content=b"x" * 4097, headers={"Content-Type": "application/json"})
    _envelope(over, 413, "payload_too_large")
    under = client.post("/v1/tone/check", content=b"x" * 100, headers={"Content-Type": "application/json"})
    assert under.status_code in {401, 422}  # read and judged (no key here), not refused for its size
