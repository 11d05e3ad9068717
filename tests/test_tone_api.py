"""POST /v1/tone/check through the real app."""

from __future__ import annotations

import pytest


def test_check_returns_findings_ok_and_suggested_text(client):
    body = {
        "text": "Your refund has been approved 👍😂",
        "locale": "ar-SA",
        "context": {"intent": "complaint", "sentiment": "negative", "urgency": "high"},
    }
    response = client.post("/v1/tone/check", json=body)
    assert response.status_code == 200
    data = response.json()
    assert data["ok"] is False
    assert data["suggested_text"] == "Your refund has been approved"
    assert data["locale"] == "ar-SA" and data["locale_recognised"] is True and data["emoji_count"] == 2
    rules = {f["rule"]: f for f in data["findings"]}
    assert set(rules) == {"thumbs_up_offensive", "playful_emoji_on_negative", "emoji_sentiment_mismatch"}
    thumbs = rules["thumbs_up_offensive"]
    assert thumbs["span"] == {"start": 30, "end": 31, "text": "👍"}
    assert thumbs["emoji"] == "👍" and thumbs["severity"] == "warn" and "SA" in thumbs["cultures"]
    assert thumbs["reason"] and thumbs["suggestion"] and thumbs["source"]
    assert rules["playful_emoji_on_negative"]["severity"] == "block"


def test_same_reply_is_fine_for_an_english_speaking_customer(client):
    response = client.post(
        "/v1/tone/check", json={"text": "Your refund has been approved 👍", "locale": "en-US"}
    )
    assert response.status_code == 200
    assert response.json()["findings"] == []
    assert response.json()["ok"] is True


def test_context_and_locale_are_optional(client):
    response = client.post("/v1/tone/check", json={"text": "Thanks 🙏"})
    assert response.status_code == 200
    assert [f["rule"] for f in response.json()["findings"]] == ["folded_hands_ambiguous"]


@pytest.mark.parametrize(
    "body",
    [
        {"text": ""},
        {"text": "   \n\t "},
        {"text": "x" * 4001},
        {},
        {"text": "hello", "locale": "english please"},
        {"text": "hello", "locale": "en US"},
        {"text": "hello", "context": {"urgency": "extreme"}},
        {"text": "hello", "context": {"sentiment": 0.5}},
    ],
)
def test_bad_input_is_a_422_with_a_message(client, body):
    response = client.post("/v1/tone/check", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and error["message"]


def test_text_with_an_unpaired_surrogate_is_a_422_not_a_crash(client):
    response = client.post(
        "/v1/tone/check",
        content=b'{"text": "hi \\ud83d there"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert "surrogate" in response.json()["error"]["message"]


def test_unknown_but_well_formed_locale_applies_only_universal_rules(client):
    response = client.post("/v1/tone/check", json={"text": "ok 👍 🍆", "locale": "xx-QQ"})
    assert response.status_code == 200
    data = response.json()
    assert data["locale"] == "xx-QQ" and data["locale_recognised"] is False
    assert [f["rule"] for f in data["findings"]] == ["sexual_emoji"]


def test_locale_with_underscore_is_normalised(client):
    response = client.post("/v1/tone/check", json={"text": "Tudo certo 👌", "locale": "pt_br"})
    assert response.status_code == 200
    assert response.json()["locale"] == "pt-BR"
    assert [f["rule"] for f in response.json()["findings"]] == ["ok_hand_offensive"]


def test_route_is_documented_in_openapi(client):
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/tone/check"]["post"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ToneCheckRead"
    )


def test_health_reports_the_tone_checker_once_it_is_loaded(client):
    client.post("/v1/tone/check", json={"text": "hello"})
    tone = client.get("/health").json()["components"]["tone"]
    assert tone["status"] == "ok"
    assert tone["detail"]["rules"] >= 30 and tone["detail"]["rules_file"] == "bundled"
