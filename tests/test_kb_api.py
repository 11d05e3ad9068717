"""Knowledge base through the real app: search, upsert, delete, reindex, hot reload, health, missing/corrupt
index."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kb_index import SAMPLE_ARTICLES_DIR
from service.api import create_app
from service.errors import ReplyDeskError
from service.kb import store
from service.settings import REPO_ROOT, Settings

NEW_ARTICLE = """---
id: gift-wrap
title: Gift wrapping
locale: en
intents: [product_question]
tags: [gifts]
url: https://help.northwind.example/en/products/gift-wrap
summary: Add gift wrapping at checkout for $4. We hide prices on the packing slip.
updated_at: 2025-03-20
---

## Add gift wrap

1. In your cart, tap **Gift options**.
2. Choose a wrap and add a note.
"""


def authorise(client: TestClient, role: str = "admin") -> TestClient:
    from service.auth.models import ApiKeyCreate

    key = client.app.state.container.keys.create(
        ApiKeyCreate(name=f"kb-tests-{role}", role=role, rate_limit="100000/minute")
    ).key
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def make_settings(root: Path, **overrides) -> Settings:
    articles = root / "articles"
    if not articles.exists():
        shutil.copytree(SAMPLE_ARTICLES_DIR, articles)
    return Settings(
        data_dir=root / "data",
        kb_articles_dir=articles,
        cache_dir=REPO_ROOT / "data" / "cache",
        kb_reload_interval_s=0.0,
        **overrides,
    )


@pytest.fixture(scope="module")
def kb_client(tmp_path_factory):
    root = tmp_path_factory.mktemp("kb-api")
    app = create_app(make_settings(root), warm=False)
    with TestClient(app) as client:
        authorise(client)
        resp = client.post("/v1/kb/reindex")
        assert resp.status_code == 200, resp.text
        client.root = root
        yield client


def search_ids(client: TestClient, q: str, **params) -> list[str]:
    resp = client.get("/v1/kb/search", params={"q": q, **params})
    assert resp.status_code == 200, resp.text
    return [h["article_id"] for h in resp.json()["hits"]]


def test_search_returns_the_right_sample_articles(kb_client):
    assert search_ids(kb_client, "how do I track my order", k=3)[0] == "track-your-order"
    assert search_ids(kb_client, "¿cuándo llega mi reembolso?", locale="es-MX", k=1) == [
        "es-estado-reembolso"
    ]
    assert search_ids(kb_client, "Wie ändere ich die Lieferadresse?", locale="de-DE", k=1) == [
        "de-lieferadresse-aendern"
    ]
    body = kb_client.get("/v1/kb/search", params={"q": "reset my password", "k": 2}).json()
    assert set(body) == {"query", "locale", "language", "fallback", "hits"}
    assert set(body["hits"][0]) == {
        "article_id",
        "title",
        "url",
        "summary",
        "snippet",
        "score",
        "matched_section",
        "locale",
        "language",
    }


def test_health_reports_the_loaded_index(kb_client):
    index = kb_client.get("/health").json()["components"]["index"]
    assert index["status"] == "ok"
    assert index["detail"]["articles"] >= 40 and index["detail"]["chunks"] > index["detail"]["articles"]
    assert (
        index["detail"]["model"] == kb_client.app.state.container.embedder.model_id
        and index["detail"]["built_at"]
    )


def test_upsert_markdown_creates_then_updates_and_search_sees_it_at_once(kb_client):
    resp = kb_client.put(
        "/v1/kb/articles/gift-wrap", content=NEW_ARTICLE.encode(), headers={"content-type": "text/markdown"}
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["created"] and body["build"]["added"] == ["gift-wrap"]
    assert 0 < body["build"]["embedded_chunks"] <= 3  # only the new article was embedded
    assert (kb_client.root / "articles" / "en" / "gift-wrap.md").exists()
    assert search_ids(kb_client, "gift wrapping for a present", k=1) == ["gift-wrap"]

    changed = NEW_ARTICLE.replace("$4", "$5").replace("add a note.", "add a note.\n3. Pick a ribbon colour.")
    resp = kb_client.put(
        "/v1/kb/articles/gift-wrap", content=changed.encode(), headers={"content-type": "text/markdown"}
    )
    assert resp.status_code == 200 and not resp.json()["created"]
    assert resp.json()["build"]["updated"] == ["gift-wrap"]
    hit = kb_client.get("/v1/kb/search", params={"q": "ribbon colour gift", "k": 1}).json()["hits"][0]
    assert hit["article_id"] == "gift-wrap" and "$5" in hit["summary"]
    assert (
        kb_client.get("/v1/kb/articles/gift-wrap")
        .json()["summary"]
        .startswith("Add gift wrapping at checkout for $5")
    )


def test_upsert_json_without_id_uses_the_path_id(kb_client):
    payload = {
        "title": "Engraving",
        "locale": "en",
        "intents": ["product_question"],
        "tags": ["gifts"],
        "url": "https://help.northwind.example/en/products/engraving",
        "summary": "Engraving is free on selected items and adds 2 business days.",
        "updated_at": "2025-03-20",
        "body": "## Add engraving\n\n1. Tap **Personalise**.\n2. Type the text.\n",
    }
    resp = kb_client.put("/v1/kb/articles/engraving", json=payload)
    assert resp.status_code == 201, resp.text
    assert resp.json()["article"]["id"] == "engraving"
    assert search_ids(kb_client, "engraving personalise text", k=1) == ["engraving"]


@pytest.mark.parametrize(
    ("content", "content_type", "expected"),
    [
        (
            NEW_ARTICLE.replace("summary: Add", "summary: " + "Long " * 70 + "Add"),
            "text/markdown",
            "summary-too-long",
        ),
        (NEW_ARTICLE.replace("[product_question]", "[make_coffee]"), "text/markdown", "unknown-intent"),
        (NEW_ARTICLE + "\n| a | b |\n|---|---|\n| 1 | 2 |\n", "text/markdown", "table"),
        (NEW_ARTICLE + "\nSee [nothing](missing-article.md).\n", "text/markdown", "broken-link"),
        ("just text, no front matter", "text/markdown", "no-front-matter"),
    ],
)
def test_bad_articles_are_rejected_with_the_lint_message(kb_client, content, content_type, expected):
    content = content.replace("id: gift-wrap\n", "id: bad-one\n")
    resp = kb_client.put(
        "/v1/kb/articles/bad-one", content=content.encode(), headers={"content-type": content_type}
    )
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_input" and f"[{expected}]" in error["message"]
    assert expected in {i["rule"] for i in error["details"]["issues"]}
    assert not list((kb_client.root / "articles").rglob("bad-one.md"))


def test_an_id_that_differs_from_the_path_is_rejected(kb_client):
    resp = kb_client.put(
        "/v1/kb/articles/other-id", content=NEW_ARTICLE.encode(), headers={"content-type": "text/markdown"}
    )
    assert resp.status_code == 422 and "differs from the path id" in resp.json()["error"]["message"]


def test_invalid_json_and_ids_are_4xx_not_500(kb_client):
    assert kb_client.put("/v1/kb/articles/x1", json={"title": "only a title"}).status_code == 422
    assert kb_client.put("/v1/kb/articles/Bad%20Id", json={}).status_code == 422
    assert (
        kb_client.put(
            "/v1/kb/articles/x2", content=b"<xml/>", headers={"content-type": "application/xml"}
        ).status_code
        == 422
    )
    assert kb_client.get("/v1/kb/search", params={"q": ""}).status_code == 422
    assert kb_client.get("/v1/kb/search", params={"q": "x", "k": 0}).status_code == 422


def test_delete_removes_the_article_from_search(kb_client):
    kb_client.put(
        "/v1/kb/articles/gift-wrap", content=NEW_ARTICLE.encode(), headers={"content-type": "text/markdown"}
    )
    resp = kb_client.delete("/v1/kb/articles/gift-wrap")
    assert resp.status_code == 200 and resp.json()["build"]["removed"] == ["gift-wrap"]
    assert "gift-wrap" not in search_ids(kb_client, "gift wrapping for a present", k=5)
    assert kb_client.get("/v1/kb/articles/gift-wrap").status_code == 404
    assert kb_client.delete("/v1/kb/articles/gift-wrap").status_code == 404


def test_reindex_picks_up_files_edited_on_disk(kb_client):
    path = kb_client.root / "articles" / "en" / "warranty.md"
    original = path.read_text(encoding="utf-8")
    try:
        path.write_text(
            original.replace("normal wear.", "normal wear or pet bites (quokkabite)."), encoding="utf-8"
        )
        resp = kb_client.post("/v1/kb/reindex")
        assert resp.status_code == 200 and resp.json()["updated"] == ["warranty"]
        assert resp.json()["embedded_chunks"] == 1
        assert search_ids(kb_client, "quokkabite", k=1) == ["warranty"]
    finally:
        path.write_text(original, encoding="utf-8")
        kb_client.post("/v1/kb/reindex")


def test_reindex_with_a_broken_file_is_rejected_and_keeps_serving(kb_client):
    broken = kb_client.root / "articles" / "en" / "broken.md"
    broken.write_text("no front matter at all\n", encoding="utf-8")
    try:
        resp = kb_client.post("/v1/kb/reindex")
        assert resp.status_code == 422 and "no-front-matter" in resp.text
        assert search_ids(kb_client, "track my order", k=1) == ["track-your-order"]
    finally:
        broken.unlink()


def test_a_build_published_by_another_process_is_hot_reloaded(kb_client):
    kb = kb_client.app.state.container.kb
    articles = kb_client.root / "articles"
    path = articles / "en" / "gift-wrap-cli.md"
    path.write_text(
        NEW_ARTICLE.replace("id: gift-wrap", "id: gift-wrap-cli")
        .replace("gift-wrap\n", "gift-wrap-cli\n")
        .replace("Gift wrapping", "Gift wrapping with wombat paper"),
        encoding="utf-8",
    )
    try:
        store.build_index(articles, kb.index_dir, kb.embedder, kb.build_options())  # what `kb build` does
        assert search_ids(kb_client, "wombat paper gift wrapping", k=1) == ["gift-wrap-cli"]
    finally:
        path.unlink()
        kb_client.post("/v1/kb/reindex")


@pytest.mark.slow  # a stress test: two threads search through two forced rebuilds
def test_concurrent_searches_never_fail_while_the_index_is_swapped(kb_client):
    kb = kb_client.app.state.container.kb
    errors: list[BaseException] = []
    empty: list[str] = []
    stop = threading.Event()

    def searcher() -> None:
        while not stop.is_set():
            try:
                if not kb.search("where is my refund", locale="en", k=3):
                    empty.append("no hits")
            except (ReplyDeskError, RuntimeError, ValueError, KeyError, IndexError) as exc:
                errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(2):
            kb.upsert("gift-wrap", markdown=NEW_ARTICLE.replace("$4", f"${10 + i}"))
            kb.reindex(force=True)
    finally:
        stop.set()
        for t in threads:
            t.join()
    kb.delete("gift-wrap")
    assert errors == [] and empty == []


def test_the_service_starts_without_an_index_and_search_answers_503(tmp_path):
    app = create_app(make_settings(tmp_path), warm=False)
    with TestClient(app) as client:
        authorise(client)
        assert client.get("/health").json()["components"]["index"]["status"] == "degraded"
        resp = client.get("/v1/kb/search", params={"q": "track my order"})
        assert resp.status_code == 503
        assert resp.json()["error"]["code"] == "index_unavailable"
        assert "kb build" in resp.json()["error"]["message"]


def test_a_corrupt_index_leaves_the_service_up_with_503_and_degraded_health(tmp_path):
    settings = make_settings(tmp_path)
    app = create_app(settings, warm=False)
    with TestClient(app) as client:
        assert authorise(client).post("/v1/kb/reindex").status_code == 200
    version = settings.resolved_index_dir / "versions" / store.current_version(settings.resolved_index_dir)
    (version / "index.faiss").write_bytes(b"garbage")
    app = create_app(settings, warm=False)
    with TestClient(app) as client:
        authorise(client)
        health = client.get("/health").json()["components"]["index"]
        assert health["status"] == "degraded" and "bytes" in health["detail"]["reason"]
        resp = client.get("/v1/kb/search", params={"q": "track my order"})
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "index_unavailable"
        assert client.post("/v1/kb/reindex", params={"force": True}).status_code == 200  # repairs it
        assert search_ids(client, "track my order", k=1) == ["track-your-order"]
        assert client.get("/health").json()["components"]["index"]["status"] == "ok"


def test_evaluators_may_search_but_not_edit(kb_client):
    with TestClient(kb_client.app) as client:
        authorise(client, "evaluator")
        assert client.get("/v1/kb/search", params={"q": "track my order"}).status_code == 200
        assert client.post("/v1/kb/reindex").status_code == 403
        assert client.delete("/v1/kb/articles/warranty").status_code == 403
        resp = client.put(
            "/v1/kb/articles/gift-wrap",
            content=NEW_ARTICLE.encode(),
            headers={"content-type": "text/markdown"},
        )
        assert resp.status_code == 403
