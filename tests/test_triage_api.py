"""POST /v1/triage through the real app (real embedder, intent classifier and every signal)."""

from __future__ import annotations

import pytest

from service.triage.models import Intent, TriageRead, TriageRequest
from service.triage.service import is_automatable
from service.triage.taxonomy import load_taxonomy


def _triage(client, body: dict) -> dict:
    response = client.post("/v1/triage", json=body)
    assert response.status_code == 200, response.text
    TriageRead.model_validate(response.json())  # the documented schema, nothing less
    return response.json()


def test_a_spanish_message_gets_every_signal(client):
    data = _triage(
        client,
        {
            "text": "Hola, mi pedido #A12345 no ha llegado y lo necesito hoy!!",
            "locale": "es-MX",
            "channel": "whatsapp",
            "history": [],
        },
    )
    assert data["language"] == {"code": "es", "confidence": data["language"]["confidence"], "source": "text"}
    assert data["urgency"]["level"] in ("high", "critical")
    assert any("hoy" in r for r in data["urgency"]["reasons"])
    assert data["sentiment"]["label"] == "negative"
    assert data["entities"] == [{"type": "order_number", "value": "A12345", "start": 17, "end": 23}]
    intent = data["intent"]
    assert 0 <= intent["confidence"] <= 1 and 1 <= len(intent["alternatives"]) <= 3
    assert isinstance(data["automatable"], bool)


def test_calm_fraud_report_is_critical_and_not_automatable(client):
    data = _triage(
        client,
        {"text": "hi, there's a charge of $489 on my card from you that I never made", "locale": "en-US"},
    )
    assert data["urgency"]["level"] == "critical"
    assert data["automatable"] is False


@pytest.mark.parametrize(
    ("name", "out_of_scope", "expected"),
    [
        ("order_status", False, True),
        ("hacked_account", False, False),
        ("out_of_scope", True, False),
        ("order_status", True, False),
        ("no_such_intent", False, False),
    ],
)
def test_automatable_comes_from_the_taxonomy_and_never_for_out_of_scope(name, out_of_scope, expected):
    intent = Intent(name=name, confidence=0.9, out_of_scope=out_of_scope)
    assert is_automatable(intent, load_taxonomy()) is expected


def test_the_service_embeds_the_message_once(app):
    """An English message reads the English route (MiniLM): the vector handed back for article search is
    that part's, placed in the combined model's space; a Spanish one reads the whole model."""
    service = app.state.container.triage
    route = service.routes["en"]
    text = "where is my order #NW-48213?"
    vector = route.embedding.to_index_space(route.embedding.embedder.encode([text])[0])
    read, embedding = service.triage_with_embedding(TriageRequest(text=text))
    assert embedding.shape == vector.shape and abs(float(embedding @ vector) - 1.0) < 1e-4
    assert read.intent == route.classifier.predict(text, embedding=route.embedding.embedder.encode([text])[0])
    spanish = "¿dónde está mi pedido #NW-48213?"
    read, embedding = service.triage_with_embedding(TriageRequest(text=spanish))
    assert abs(float(embedding @ service.embedder.encode([spanish])[0]) - 1.0) < 1e-4
    assert read.intent == service.classifier.predict(spanish, embedding=service.embedder.encode([spanish])[0])


def test_emoji_only_message_takes_its_language_from_the_locale(client):
    data = _triage(client, {"text": "👍🙏", "locale": "pt-BR"})
    assert data["language"]["code"] == "pt" and data["language"]["source"] == "locale"
    assert data["sentiment"]["label"] == "positive"


def test_short_follow_up_takes_language_from_history_and_urgency_from_repeat_contact(client):
    data = _triage(
        client,
        {
            "text": "??",
            "locale": "en-US",
            "history": [
                {
                    "role": "customer",
                    "text": "Wo bleibt meine Bestellung NW-22871? Sie ist immer noch nicht da.",
                },
                {"role": "customer", "text": "Hallo, bitte um eine Rückmeldung zu meiner Bestellung"},
            ],
        },
    )
    assert data["language"]["code"] == "de" and data["language"]["source"] == "history"
    assert data["urgency"]["level"] == "high"
    assert any(r.startswith("repeated contact") for r in data["urgency"]["reasons"])


def test_control_characters_are_removed_before_offsets_are_computed(client):
    data = _triage(client, {"text": "\x00\x07order #NW-48213\x1b please"})
    assert data["entities"][0]["value"] == "NW-48213"
    assert data["entities"][0]["start"] == len("order #")


def test_mixed_scripts_are_a_normal_answer(client):
    data = _triage(client, {"text": "hola 你好 привет, where is my order?"})
    assert data["language"]["source"] == "text"


def test_the_longest_allowed_message_is_accepted(client):
    _triage(client, {"text": "where is my order? " * 210})  # 3990 characters


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "text"),
        ({"text": ""}, "text"),
        ({"text": "   \n\t  "}, "text"),
        ({"text": "\x00\x01\x02"}, "text"),
        ({"text": "\u200b\u200c\u200d\ufeff"}, "text"),
        ({"text": "x" * 5000}, "text"),
        ({"text": 123}, "text"),
        ({"text": ["hi"]}, "text"),
        ({"text": "hi", "history": "earlier"}, "history"),
        ({"text": "hi", "history": [{"role": "customer"}]}, "history.0.text"),
        ({"text": "hi", "channel": "pigeon"}, "channel"),
        ({"text": "hi", "locale": "x" * 40}, "locale"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(client, body, field):
    response = client.post("/v1/triage", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["message"].startswith(field)


def test_over_long_text_says_what_the_limit_is(client):
    response = client.post("/v1/triage", json={"text": "x" * 5000})
    assert "limit is 4000" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"not json at all", "application/json"),
        (b'{"text": "hi"', "application/json"),
        (b"text=hi", "application/x-www-form-urlencoded"),
        (b'"just a string"', "application/json"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_422(client, content, content_type):
    response = client.post("/v1/triage", content=content, headers={"Content-Type": content_type})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"


def test_openapi_documents_the_route_with_examples(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/triage"]["post"]
    assert "calm_fraud_en" in op["requestBody"]["content"]["application/json"]["examples"]
    assert "200" in op["responses"] and "422" in op["responses"]
