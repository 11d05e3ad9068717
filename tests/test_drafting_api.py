"""POST /v1/drafts through the real app (real triage, real knowledge base index of the bundled articles)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from kb_index import SAMPLE_ARTICLES_DIR
from service.api import create_app
from service.auth.models import ApiKeyCreate, Role
from service.drafting.deps import get_drafter
from service.drafting.drafter import Drafter
from service.settings import REPO_ROOT, Settings


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("drafting-api"),
        kb_articles_dir=SAMPLE_ARTICLES_DIR,
        cache_dir=REPO_ROOT / "data" / "cache",
        llm_base_url=None,
    )
    app = create_app(settings, warm=False)
    with TestClient(app) as client:
        container = app.state.container
        container.kb.reindex()
        key = container.keys.create(
            ApiKeyCreate(name="drafting-tests", role=Role.agent, rate_limit="100000/minute")
        ).key
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


def test_drafts_are_grounded_in_the_knowledge_base_in_the_customers_language(api):
    resp = api.post(
        "/v1/drafts",
        json={
            "text": "Hola, ¿dónde está mi pedido NW-48213? Lo necesito ya",
            "locale": "es-MX",
            "channel": "whatsapp",
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["language"] == "es"
    assert body["llm_outcome"] == "not_configured"
    assert body["prompt_version"] == "templates.es.v1"
    assert 1 <= len(body["drafts"]) <= 3
    cited = {i for d in body["drafts"] for i in d["cited_article_ids"]}
    for article_id in cited:
        assert api.app.state.container.kb.get(article_id).locale.startswith("es")
    for d in body["drafts"]:
        assert d["generator"] == "template"
        assert len(d["text"]) <= 600


def test_explicit_article_ids_ground_the_drafts(api):
    article = api.app.state.container.kb.get("track-your-order")
    resp = api.post(
        "/v1/drafts",
        json={"text": "where is my order NW-48213?", "locale": "en-US", "article_ids": ["track-your-order"]},
    )
    assert resp.status_code == 200, resp.text
    drafts = resp.json()["drafts"]
    assert any(article.url in d["text"] for d in drafts)
    assert all(d["cited_article_ids"] in ([], ["track-your-order"]) for d in drafts)


def test_an_unknown_article_id_is_a_422_not_a_500(api):
    resp = api.post("/v1/drafts", json={"text": "where is my order?", "article_ids": ["no-such-article"]})
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "invalid_input"
    assert "no-such-article" in resp.json()["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"text": "   "},
        {"text": "x" * 4001},
        {"text": "hi", "article_ids": ["a", "b", "c", "d", "e", "f"]},
        {"text": "hi", "history": "not a list"},
    ],
)
def test_bad_bodies_are_rejected_with_422(api, body):
    resp = api.post("/v1/drafts", json=body)
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "invalid_input"


def test_a_given_triage_result_is_used_instead_of_running_triage(api):
    triage = {
        "language": {"code": "fr", "confidence": 0.9, "source": "text"},
        "intent": {"name": "talk_to_human", "confidence": 0.95},
        "urgency": {"level": "normal", "score": 0.4},
        "sentiment": {"label": "neutral", "score": 0.0},
        "entities": [],
        "automatable": False,
    }
    resp = api.post("/v1/drafts", json={"text": "where is my order?", "triage": triage})
    body = resp.json()
    assert resp.status_code == 200, resp.text
    assert body["language"] == "fr"
    assert body["needs_human"] is True
    assert body["handoff_summary"]["wants"]


def test_an_unreachable_llm_still_answers_200_with_template_drafts(api, tmp_path):
    settings = Settings(data_dir=tmp_path, llm_base_url="http://127.0.0.1:9/v1", llm_timeout_s=2)
    container = api.app.state.container
    broken = Drafter.from_settings(settings, tone=container.tone)
    api.app.dependency_overrides[get_drafter] = lambda: broken
    try:
        resp = api.post("/v1/drafts", json={"text": "where is my order NW-48213?", "locale": "en-GB"})
    finally:
        api.app.dependency_overrides.pop(get_drafter)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["llm_outcome"] == "fallback:transport_error"
    assert all(d["generator"] == "template" for d in body["drafts"])


def test_health_reports_the_drafting_mode(api):
    api.post("/v1/drafts", json={"text": "hello"})
    llm = api.get("/health").json()["components"]["llm"]
    assert llm["status"] == "ok"
    assert llm["detail"]["mode"] == "templates"
