"""The agent console as plain HTML (no JavaScript): sign-in with a session cookie and CSRF tokens, the queue
with its filters, a conversation with its triage, articles and drafts, and every decision going through the
same workflow as the API (who, when and edit distance kept)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from fastapi.testclient import TestClient

from service.console.session import SESSION_COOKIE


class _Forms(HTMLParser):
    """Collects each form's action and hidden inputs, and element ids."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "form":
            self.forms.append({"action": a.get("action"), "fields": {}})
        elif tag == "input" and self.forms and a.get("type") == "hidden":
            fields = self.forms[-1]["fields"]
            assert isinstance(fields, dict)
            fields[a.get("name")] = a.get("value") or ""


def parse(html: str) -> _Forms:
    p = _Forms()
    p.feed(html)
    return p


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def browser(wf) -> TestClient:
    """A client with no Authorization header: a person in a browser."""
    return TestClient(wf.app, follow_redirects=False)


def sign_in(wf, role: str = "agent") -> TestClient:
    c = browser(wf)
    page = c.get("/console/login")
    r = c.post(
        "/console/login",
        data={"api_key": wf.keys[role], "csrf_token": csrf_of(page.text), "next": "/console/queue"},
    )
    assert r.status_code == 303, r.text
    return c


# -- sign-in ---------------------------------------------------------------------------------------------


def test_the_root_leads_to_the_queue_and_the_queue_to_sign_in(wf):
    c = browser(wf)
    assert c.get("/").headers["location"] == "/console/queue"
    r = c.get("/console/queue?channel=whatsapp")
    assert r.status_code == 303
    assert r.headers["location"].startswith("/console/login?next=%2Fconsole%2Fqueue%3Fchannel%3Dwhatsapp")


def test_sign_in_sets_an_httponly_samesite_session_cookie_and_logout_clears_it(wf):
    c = browser(wf)
    page = c.get("/console/login")
    assert page.status_code == 200
    r = c.post(
        "/console/login",
        data={"api_key": wf.keys["agent"], "csrf_token": csrf_of(page.text), "next": "/console/queue"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/queue"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert wf.keys["agent"] not in cookie  # the cookie names the key by id; the secret never leaves
    queue = c.get("/console/queue")
    assert queue.status_code == 200 and "t-agent" in queue.text

    out = c.post("/console/logout", data={"csrf_token": csrf_of(queue.text)})
    assert out.status_code == 303
    assert c.get("/console/queue").status_code == 303  # back to sign-in


def test_sign_in_refuses_a_wrong_key_a_missing_csrf_token_and_an_integration_key(wf):
    c = browser(wf)
    token = csrf_of(c.get("/console/login").text)
    wrong = c.post("/console/login", data={"api_key": "rdk_nope", "csrf_token": token})
    assert wrong.status_code == 401 and "not valid" in wrong.text
    no_csrf = c.post("/console/login", data={"api_key": wf.keys["agent"]})
    assert no_csrf.status_code == 401 and "expired" in no_csrf.text
    integ = c.post("/console/login", data={"api_key": wf.keys["integration"], "csrf_token": token})
    assert integ.status_code == 401 and "integration key cannot use the console" in integ.text


def test_an_open_redirect_in_next_is_ignored(wf):
    c = browser(wf)
    token = csrf_of(c.get("/console/login").text)
    for evil in ("https://evil.example/", "//evil.example/x", "/console/\\evil"):
        r = c.post("/console/login", data={"api_key": wf.keys["agent"], "csrf_token": token, "next": evil})
        assert r.headers["location"] == "/console/queue"


def test_a_form_posted_with_the_cookie_but_without_the_csrf_token_is_refused(wf):
    conv = wf.ingest("Where is my order 4471?")
    c = sign_in(wf)
    sug = conv["suggestions"][0]
    r = c.post(f"/console/suggestions/{sug['id']}/reject", data={"reason": "no"})
    assert r.status_code == 403 and "security token" in r.text
    assert wf.get(f"/v1/suggestions/{sug['id']}").json()["status"] == "pending"


def test_a_revoked_key_ends_its_console_session(wf):
    c = sign_in(wf)
    assert c.get("/console/queue").status_code == 200
    key_id = next(k for k in wf.container.keys.list() if k.name == "t-agent").id
    wf.container.keys.revoke(key_id)
    wf.container.keys._cache.clear()  # the 5 s lookup cache, not worth waiting for here
    assert c.get("/console/queue").status_code == 303


def test_pages_accept_a_bearer_key_without_csrf(wf):
    conv = wf.ingest("Where is my order 4471?")
    sug = conv["suggestions"][0]
    c = TestClient(wf.app, headers=wf.headers("agent"), follow_redirects=False)
    assert c.get("/console/queue").status_code == 200
    r = c.post(f"/console/suggestions/{sug['id']}/reject", data={"reason": "wrong order"})
    assert r.status_code == 303
    assert wf.get(f"/v1/suggestions/{sug['id']}").json()["reject_reason"] == "wrong order"


def test_console_pages_send_a_strict_content_security_policy(wf):
    c = sign_in(wf)
    r = c.get("/console/queue")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    assert "http://" not in r.text and "https://" not in r.text  # nothing loaded from elsewhere


# -- the queue ------------------------------------------------------------------------------------------


def test_the_queue_lists_open_conversations_with_their_sla_and_filters_them(wf):
    wf.ingest("My card was stolen, block it now!!", conversation="c-urgent", customer="u1")
    wf.ingest("How do I change my address?", conversation="c-calm", customer="u2", channel="webchat")
    c = sign_in(wf)
    page = c.get("/console/queue").text
    assert page.count('class="queue-row') == 2
    assert 'data-due="' in page and 'data-at-risk="' in page
    web = c.get("/console/queue?channel=webchat").text
    assert web.count('class="queue-row') == 1 and "How do I change my address?" in web
    rows = c.get("/console/queue?fragment=rows&channel=webchat")
    assert rows.text.lstrip().startswith('<tbody id="queue-rows"')
    assert 'hx-trigger="sse:queue"' in rows.text and "channel=webchat" in rows.text
    assert c.get("/console/queue?assigned=mine").text.count('class="queue-row') == 0
    assert c.get("/console/queue?assigned=unassigned").text.count('class="queue-row') == 2


def test_a_bad_filter_is_a_clear_4xx_page(wf):
    c = sign_in(wf)
    r = c.get("/console/queue?urgency=soon")
    assert r.status_code == 422 and "urgency" in r.text and "<html" in r.text


# -- a conversation ------------------------------------------------------------------------------------


def test_a_conversation_shows_the_thread_triage_articles_and_up_to_three_drafts(wf):
    conv = wf.ingest("Hola, mi pedido #A12345 no ha llegado y lo necesito hoy!!", locale="es-MX")
    cid = conv["conversation"]["id"]
    c = sign_in(wf)
    page = c.get(f"/console/conversations/{cid}")
    assert page.status_code == 200
    html = page.text
    assert "mi pedido #A12345 no ha llegado" in html
    assert 'id="triage-title"' in html and conv["triage"]["intent"]["name"] in html
    assert conv["triage"]["urgency"]["level"] in html
    drafts = parse(html)
    n = len(conv["suggestions"])
    assert 1 <= n <= 3
    assert {f"draft-{i}" for i in range(1, n + 1)} <= drafts.ids
    approve_forms = [f for f in drafts.forms if str(f["action"]).endswith("/approve")]
    assert len(approve_forms) == n


def test_opening_a_conversation_marks_the_customer_messages_read_and_records_presence(wf):
    conv = wf.ingest("Where is my order 4471?")
    cid = conv["conversation"]["id"]
    sign_in(wf).get(f"/console/conversations/{cid}")
    msg = wf.get(f"/v1/messages/{conv['message']['id']}").json()
    assert msg["agent_read_at"] is not None
    viewers = wf.post(f"/v1/conversations/{cid}/presence", role="admin").json()["viewers"]
    assert {v["agent"] for v in viewers} == {"t-agent", "t-admin"}


def test_a_second_agent_sees_that_the_first_is_on_it(wf):
    conv = wf.ingest("Where is my order 4471?")
    cid = conv["conversation"]["id"]
    sign_in(wf, "agent").get(f"/console/conversations/{cid}")
    other = sign_in(wf, "admin").get(f"/console/conversations/{cid}").text
    assert "<strong>t-agent</strong>" in other and "also viewing" in other


def test_approving_a_draft_as_is_goes_through_the_workflow(wf):
    conv = wf.ingest("Where is my order 4471?")
    sug = conv["suggestions"][0]
    c = sign_in(wf)
    page = c.get(f"/console/conversations/{conv['conversation']['id']}").text
    r = c.post(f"/console/suggestions/{sug['id']}/approve", data={"csrf_token": csrf_of(page)})
    assert r.status_code == 303 and r.headers["location"].endswith("?done=approved")
    s = wf.get(f"/v1/suggestions/{sug['id']}").json()
    assert s["decision"] == "approved" and s["decided_by"] == "t-agent" and s["edit_distance"] == 0
    assert s["outbound_message_id"] is not None


def test_the_composer_sends_an_edited_draft_with_its_edit_distance(wf):
    conv = wf.ingest("Where is my order 4471?")
    cid, sug = conv["conversation"]["id"], conv["suggestions"][0]
    c = sign_in(wf)
    page = c.get(f"/console/conversations/{cid}?edit={sug['id']}").text
    assert sug["draft_text"].split()[0] in page  # the composer is prefilled without JavaScript
    edited = sug["draft_text"] + " Thanks for waiting."
    r = c.post(
        f"/console/conversations/{cid}/send",
        data={"csrf_token": csrf_of(page), "text": edited, "suggestion_id": str(sug["id"])},
    )
    assert r.status_code == 303 and r.headers["location"].endswith("?done=edited")
    s = wf.get(f"/v1/suggestions/{sug['id']}").json()
    assert s["decision"] == "edited" and s["final_text"] == edited
    assert s["edit_distance"] == len(" Thanks for waiting.")


def test_a_blocking_tone_finding_keeps_the_text_and_asks_for_an_override_reason(wf):
    conv = wf.ingest("Where is my order 4471?")
    cid, sug = conv["conversation"]["id"], conv["suggestions"][0]
    c = sign_in(wf)
    token = csrf_of(c.get(f"/console/conversations/{cid}").text)
    text = "Fixed it for you 🖕"
    blocked = c.post(
        f"/console/conversations/{cid}/send",
        data={"csrf_token": token, "text": text, "suggestion_id": str(sug["id"])},
    )
    assert blocked.status_code == 409
    assert "A tone finding blocks this reply" in blocked.text
    assert f">{text}</textarea>" in blocked.text  # nothing the agent typed is lost
    assert wf.get(f"/v1/suggestions/{sug['id']}").json()["status"] == "pending"
    ok = c.post(
        f"/console/conversations/{cid}/send",
        data={
            "csrf_token": token,
            "text": text,
            "suggestion_id": str(sug["id"]),
            "override_reason": "quoting the customer's own emoji",
        },
    )
    assert ok.status_code == 303
    s = wf.get(f"/v1/suggestions/{sug['id']}").json()
    assert s["tone_override_reason"] == "quoting the customer's own emoji"


def test_the_inline_tone_check_returns_the_findings_fragment(wf):
    conv = wf.ingest("Where is my order 4471?")
    cid = conv["conversation"]["id"]
    c = sign_in(wf)
    token = csrf_of(c.get(f"/console/conversations/{cid}").text)
    r = c.post(
        f"/console/conversations/{cid}/tone",
        data={"text": "Fixed it for you 🖕"},
        headers={"X-CSRF-Token": token, "HX-Request": "true"},
    )
    assert r.status_code == 200
    assert 'data-blocking="true"' in r.text and "finding--block" in r.text
    clean = c.post(
        f"/console/conversations/{cid}/tone",
        data={"text": "Your parcel is on its way."},
        headers={"X-CSRF-Token": token},
    )
    assert 'data-blocking="true"' not in clean.text


def test_rejecting_with_a_reason_and_writing_an_own_reply(wf):
    conv = wf.ingest("Where is my order 4471?")
    cid, sug = conv["conversation"]["id"], conv["suggestions"][0]
    c = sign_in(wf)
    token = csrf_of(c.get(f"/console/conversations/{cid}").text)
    r = c.post(f"/console/suggestions/{sug['id']}/reject", data={"csrf_token": token, "reason": "wrong tone"})
    assert r.status_code == 303
    assert wf.get(f"/v1/suggestions/{sug['id']}").json()["reject_reason"] == "wrong tone"
    own = c.post(
        f"/console/conversations/{cid}/send", data={"csrf_token": token, "text": "Checking now, Ana."}
    )
    assert own.status_code == 303 and own.headers["location"].endswith("?done=replied")
    thread = c.get(f"/console/conversations/{cid}?fragment=thread").text
    assert "Checking now, Ana." in thread and 'data-status="queued"' in thread


def test_claiming_is_first_come_and_assigning_shows_in_the_queue_filter(wf):
    conv = wf.ingest("Where is my order 4471?")
    cid = conv["conversation"]["id"]
    ana, boss = sign_in(wf, "agent"), sign_in(wf, "admin")
    token_a = csrf_of(ana.get(f"/console/conversations/{cid}").text)
    token_b = csrf_of(boss.get(f"/console/conversations/{cid}").text)
    assert (
        ana.post(
            f"/console/conversations/{cid}/assign", data={"csrf_token": token_a, "claim": "true"}
        ).status_code
        == 303
    )
    late = boss.post(f"/console/conversations/{cid}/assign", data={"csrf_token": token_b, "claim": "true"})
    assert late.status_code == 409 and "assigned to t-agent" in late.text
    assert ana.get("/console/queue?assigned=mine").text.count('class="queue-row') == 1
    assert boss.get("/console/queue?assigned=mine").text.count('class="queue-row') == 0


def test_the_thread_shows_status_ticks_and_a_failure_with_its_reason(wf):
    conv = wf.ingest("Where is my order 4471?")
    cid = conv["conversation"]["id"]
    sent = wf.post(f"/v1/conversations/{cid}/reply", json={"text": "On it!"}).json()["message"]
    c = sign_in(wf)
    wf.post(f"/v1/messages/{sent['id']}/status", role="integration", json={"status": "delivered"})
    thread = c.get(f"/console/conversations/{cid}?fragment=thread").text
    assert 'data-status="delivered"' in thread and "Delivered" in thread
    second = wf.post(f"/v1/conversations/{cid}/reply", json={"text": "Still there?"}).json()["message"]
    wf.post(
        f"/v1/messages/{second['id']}/status",
        role="integration",
        json={"status": "failed", "error": "131047: re-engagement message"},
    )
    failed = c.get(f"/console/conversations/{cid}?fragment=thread").text
    assert 'data-status="failed"' in failed and "131047: re-engagement message" in failed


def test_right_to_left_text_and_emoji_are_kept_and_marked_dir_auto(wf):
    conv = wf.ingest("مرحبا، أين طلبي رقم 5521؟ 😡", locale="ar-SA")
    c = sign_in(wf)
    html = c.get(f"/console/conversations/{conv['conversation']['id']}").text
    assert '<p class="bubble" dir="auto">مرحبا، أين طلبي رقم 5521؟ 😡</p>' in html


def test_an_attachment_with_a_script_url_is_not_a_link(wf):
    conv = wf.ingest(
        "see attached",
        attachments=[
            {"type": "image", "url": "javascript:alert(1)"},
            {"type": "file", "url": "https://cdn.example/x.pdf"},
        ],
    )
    html = sign_in(wf).get(f"/console/conversations/{conv['conversation']['id']}").text
    assert 'href="javascript:' not in html and 'href="https://cdn.example/x.pdf"' in html


# -- roles ---------------------------------------------------------------------------------------------


def test_an_auditor_reads_conversations_but_has_no_decision_forms(wf):
    conv = wf.ingest("Where is my order 4471?")
    cid = conv["conversation"]["id"]
    c = TestClient(wf.app, headers=wf.headers("admin"), follow_redirects=False)
    auditor_key = wf.container.keys.create(
        __import__("service.auth.models", fromlist=["ApiKeyCreate"]).ApiKeyCreate(name="aud", role="auditor")
    ).key
    c.headers["Authorization"] = f"Bearer {auditor_key}"
    page = c.get(f"/console/conversations/{cid}")
    assert page.status_code == 200
    assert "/approve" not in page.text and 'id="composer"' not in page.text
    sug = conv["suggestions"][0]
    assert c.post(f"/console/suggestions/{sug['id']}/approve").status_code == 403


def test_the_kpi_page_shows_figures_and_chart_data(wf):
    conv = wf.ingest("Where is my order 4471?")
    wf.clock.advance(minutes=3)
    wf.post(f"/v1/suggestions/{conv['suggestions'][0]['id']}/approve")
    wf.clock.advance(minutes=1)
    c = TestClient(wf.app, headers=wf.headers("evaluator"), follow_redirects=False)
    page = c.get("/console/kpis")
    assert page.status_code == 200
    assert 'id="frt-chart"' in page.text and 'id="kpi-series"' in page.text
    assert conv["triage"]["intent"]["name"] in page.text  # the per-intent table
    assert "3.0 min" in page.text  # first response p50: approved 3 minutes after the message
    assert c.get("/console/queue").status_code == 403  # evaluators see aggregates, not conversations


def test_next_and_previous_follow_the_queue_order(wf):
    for i, text in enumerate(["How do I change my address?", "My card was stolen, block it!!", "Refund?"]):
        wf.ingest(text, conversation=f"c-{i}", customer=f"u-{i}")
        wf.clock.advance(minutes=1)
    wf.clock.advance(minutes=20)  # some waits are now at risk or breached
    workflow = wf.container.workflow
    full = [it.conversation_id for it in workflow.queue(limit=100).items]
    assert workflow.queue_order(100) == full
    c = sign_in(wf)
    middle = c.get(f"/console/conversations/{full[1]}").text
    assert f'data-prev="/console/conversations/{full[0]}"' in middle
    assert f'data-next="/console/conversations/{full[2]}"' in middle
