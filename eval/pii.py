"""PII evaluation: what the redaction before an LLM call catches, and what reaches the LLM anyway.

    replydesk eval pii [--data eval/data/pii/dev.jsonl --data eval/data/pii/test.jsonl] [--out r.json]

Rows (JSONL): `{"id", "lang", "text", "spans": [{"type", "value"}], "locale"?, "country"?, "customer_name"?,
"channel"?, "history": [{"role", "text"}]?}`. A span is labelled by its value; every occurrence of the value
in the text or the history is a gold span. A row without spans is a negative (numbers that are not PII:
prices, quantities, times, ordinary dates, tracking and product codes).

Metrics per file:

* `recall`: share of gold spans whose every letter and digit lies inside a redacted span (of any type: what
  matters is that it does not leave); `typed_recall`: inside a span of its own type; `per_type/<type>`: recall
  per PII type; `per_language/<lang>`;
* `precision`: share of redacted spans that overlap a gold span; `negatives_flagged`: share of negatives with
  any redaction;
* `leak_rate`: every message goes through the real `Drafter` (triage as the service would compute language
  and entities; intent set to one that needs a human, so both the draft and the handoff prompts are sent) with
  an LLM whose HTTP transport is answered in-process and records each request; a request leaks when its chat
  messages contain any gold value (letters and digits in order, any separators between them, case- and
  accent-insensitive, on word boundaries). `drafts_payment_data_in_clear`: drafts (the fake LLM echoes every
  placeholder it received) that show a labelled card number or IBAN.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from service.drafting.llm import PROMPT_HEADER
from service.errors import InvalidInput
from service.pii.detect import find_pii
from service.pii.models import PiiHints, PiiSpan, PiiType
from service.settings import REPO_ROOT, Settings
from service.triage.models import HistoryMessage

DEFAULT_FILES = (REPO_ROOT / "eval/data/pii/dev.jsonl", REPO_ROOT / "eval/data/pii/test.jsonl")
_PLACEHOLDER = re.compile(r"\[[A-Z]+_\d+\]")


@dataclass(frozen=True)
class GoldSpan:
    type: PiiType
    value: str
    part: int  # 0 = the message, i = history[i - 1]
    start: int
    end: int


@dataclass
class PiiCase:
    id: str
    lang: str
    text: str
    gold: list[GoldSpan]
    locale: str | None = None
    country: str | None = None
    customer_name: str | None = None
    channel: str | None = None
    history: list[HistoryMessage] = field(default_factory=list)

    @property
    def parts(self) -> list[str]:
        return [self.text, *(h.text for h in self.history)]

    @property
    def negative(self) -> bool:
        return not self.gold


def load_cases(path: Path) -> list[PiiCase]:
    """Parse and check the file; a bad line is an InvalidInput naming the line."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: file not found")
    cases, seen = [], set()
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            row = json.loads(line)
            history = [HistoryMessage.model_validate(h) for h in row.get("history") or []]
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{where}: not valid JSON ({exc.msg})") from exc
        except ValidationError as exc:
            raise InvalidInput(f"{where}: history: {exc.errors()[0]['msg']}") from exc
        if not isinstance(row, dict) or not row.get("id") or not row.get("text") or not row.get("lang"):
            raise InvalidInput(f"{where}: needs `id`, `lang` and `text`")
        if row["id"] in seen:
            raise InvalidInput(f"{where}: duplicate id {row['id']!r}")
        seen.add(row["id"])
        case = PiiCase(
            id=row["id"],
            lang=row["lang"],
            text=row["text"],
            gold=[],
            locale=row.get("locale"),
            country=row.get("country"),
            customer_name=row.get("customer_name"),
            channel=row.get("channel"),
            history=history,
        )
        for span in row.get("spans") or []:
            try:
                kind = PiiType(span["type"])
            except (KeyError, ValueError) as exc:
                raise InvalidInput(f"{where}: unknown span type {span.get('type')!r}") from exc
            value = span.get("value") or ""
            found = [
                GoldSpan(kind, value, i, m.start(), m.end())
                for i, part in enumerate(case.parts)
                for m in re.finditer(re.escape(value), part)
            ]
            if not value or not found:
                raise InvalidInput(f"{where}: span value {value!r} is not in the text or the history")
            case.gold += found
        cases.append(case)
    if not cases:
        raise InvalidInput(f"{path}: no rows")
    return cases


# -- detection -----------------------------------------------------------------------------------------------


def hints_for(case: PiiCase, language: str, default_region: str | None) -> PiiHints:
    """The hints the Drafter builds for this message (see `Drafter.draft`)."""
    return PiiHints(
        locale=case.locale,
        country=case.country,
        default_region=default_region,
        language=language,
        names=(case.customer_name,) if case.customer_name else (),
    )


def covered(gold: GoldSpan, spans: Sequence[PiiSpan], *, same_type: bool = False) -> bool:
    """Every letter and digit of the gold span lies inside one of `spans`."""
    return all(
        any(s.start <= pos < s.end and (not same_type or s.type is gold.type) for s in spans)
        for pos in range(gold.start, gold.end)
        if gold.value[pos - gold.start].isalnum()
    )


def detection_report(cases: Sequence[PiiCase], detected: Sequence[list[list[PiiSpan]]]) -> dict[str, Any]:
    """`detected[i][part]`: the spans found in part `part` of case `i`."""
    per_type: dict[str, list[bool]] = defaultdict(list)
    per_language: dict[str, list[bool]] = defaultdict(list)
    typed: list[bool] = []
    misses, false_alarms = [], []
    n_found = n_found_on_gold = 0
    flagged_negatives = 0
    for case, parts in zip(cases, detected, strict=True):
        for g in case.gold:
            ok = covered(g, parts[g.part])
            per_type[g.type.value].append(ok)
            per_language[case.lang].append(ok)
            typed.append(covered(g, parts[g.part], same_type=True))
            if not ok:
                found = [(s.type.value, s.value) for s in parts[g.part]]
                misses.append({"id": case.id, "type": g.type.value, "value": g.value, "found": found})
        for i, spans in enumerate(parts):
            for s in spans:
                n_found += 1
                if any(g.part == i and g.start < s.end and s.start < g.end for g in case.gold):
                    n_found_on_gold += 1
                else:
                    false_alarms.append({"id": case.id, "type": s.type.value, "value": s.value})
        if case.negative and any(parts):
            flagged_negatives += 1
    all_gold = [ok for oks in per_type.values() for ok in oks]
    negatives = sum(c.negative for c in cases)
    return {
        "messages": len(cases),
        "negatives": negatives,
        "gold_spans": len(all_gold),
        "recall": _share(all_gold),
        "typed_recall": _share(typed),
        "precision": round(n_found_on_gold / n_found, 4) if n_found else None,
        "negatives_flagged": round(flagged_negatives / negatives, 4) if negatives else None,
        "per_type": {t: _share(v) for t, v in sorted(per_type.items())},
        "per_type_n": {t: len(v) for t, v in sorted(per_type.items())},
        "per_language": {lang: _share(v) for lang, v in sorted(per_language.items())},
        "misses": misses,
        "false_alarms": false_alarms,
    }


def _share(values: Sequence[bool]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


# -- what reaches the LLM ------------------------------------------------------------------------------------


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("’", "'")


def value_pattern(value: str) -> re.Pattern[str] | None:
    """Letters and digits of `value` in order, any separators between them, on word boundaries (folded)."""
    chars = [c for c in fold(value) if c.isalnum()]
    if not chars:
        return None
    body = r"[\W_]{0,3}".join(re.escape(c) for c in chars)
    return re.compile(rf"(?<![^\W_]){body}(?![^\W_])")


def leaked_values(payload_text: str, case: PiiCase) -> list[GoldSpan]:
    folded = fold(payload_text)
    out, seen = [], set()
    for g in case.gold:
        if (g.type, g.value) in seen:
            continue
        seen.add((g.type, g.value))
        pattern = value_pattern(g.value)
        if pattern is not None and pattern.search(folded):
            out.append(g)
    return out


_DRAFT_SENTENCE = {
    "en": "Thank you for your message, we are checking the details you sent us: {ph}.",
    "es": "Gracias por su mensaje, estamos revisando los datos que nos ha enviado: {ph}.",
    "de": "Vielen Dank für Ihre Nachricht, wir prüfen die Angaben, die Sie uns geschickt haben: {ph}.",
    "fr": "Merci pour votre message, nous vérifions les informations que vous nous avez envoyées : {ph}.",
    "pt": "Obrigado pela sua mensagem, estamos a verificar os dados que nos enviou: {ph}.",
    "it": "Grazie per il suo messaggio, stiamo verificando i dati che ci ha inviato: {ph}.",
    "nl": "Bedankt voor uw bericht, we controleren de gegevens die u ons hebt gestuurd: {ph}.",
}


class RecordingLLM:
    """The LLM's HTTP transport, answered in-process: records every request body, echoes the placeholders it
    was sent inside a valid draft in the case's language (or answers `reply` when set), and a valid handoff
    note."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.language = "en"
        self.reply: str | None = None

    def transport(self) -> Any:
        import httpx2

        def handle(request: httpx2.Request) -> httpx2.Response:
            body = json.loads(request.content)
            self.requests.append(body)
            user = str(body["messages"][-1]["content"])
            placeholders = list(dict.fromkeys(_PLACEHOLDER.findall(user)))
            if request.headers.get(PROMPT_HEADER, "").startswith("handoff."):
                answer: dict[str, Any] = {
                    "wants": "The customer needs a colleague to check the case.",
                    "known": [],
                }
            else:
                sentence = _DRAFT_SENTENCE.get(self.language, _DRAFT_SENTENCE["en"])
                answer = {
                    "language": self.language,
                    "drafts": [self.reply or sentence.format(ph=", ".join(placeholders) or "-")],
                    "cited_article_ids": [],
                    "needs_human": True,
                    "missing_info": [],
                }
            return httpx2.Response(
                200,
                json={
                    "id": "eval-pii",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "eval-pii",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {
                                "role": "assistant",
                                "content": json.dumps(answer, ensure_ascii=False),
                            },
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                },
            )

        return httpx2.MockTransport(handle)


@dataclass
class PiiRun:
    """The components one evaluation needs, built once."""

    settings: Settings
    drafter: Any
    llm: RecordingLLM
    language: Any

    @classmethod
    def build(cls, settings: Settings, tone: Any = None) -> PiiRun:
        import httpx2
        import openai

        from service.drafting.drafter import Drafter
        from service.drafting.llm import LLMClient
        from service.tone.checker import ToneChecker
        from service.triage.language import LanguageDetector

        settings = settings.model_copy(update={"llm_base_url": "http://llm.eval-pii.invalid/v1"})
        recording = RecordingLLM()
        sdk = openai.OpenAI(
            base_url=settings.llm_base_url,
            api_key="eval",
            max_retries=0,
            http_client=httpx2.Client(transport=recording.transport()),
        )
        llm = LLMClient(
            base_url=str(settings.llm_base_url),
            model="eval-pii",
            response_format=settings.llm_response_format,
            reask_attempts=0,
            client=sdk,
        )
        tone = tone or ToneChecker.from_path(settings.tone_rules_path, default_locale=settings.default_locale)
        drafter = Drafter.from_settings(settings, tone=tone, llm=llm)
        detector = LanguageDetector(settings.default_locale)
        return cls(settings=settings, drafter=drafter, llm=recording, language=detector)

    def close(self) -> None:
        self.drafter.close()


def _triage(case: PiiCase, language: Any) -> Any:
    from service.triage.entities import extract_entities
    from service.triage.models import Intent, Sentiment, SentimentLabel, TriageRead, Urgency, UrgencyLevel

    return TriageRead(
        language=language,
        intent=Intent(name="order_status", confidence=0.9),
        urgency=Urgency(level=UrgencyLevel.normal, score=0.4),
        sentiment=Sentiment(label=SentimentLabel.neutral, score=0.0),
        entities=extract_entities(case.text, case.locale, country=case.country),
        automatable=False,  # a human takes over: the handoff prompt is sent as well as the draft prompt
    )


def evaluate(cases: Sequence[PiiCase], run: PiiRun) -> dict[str, Any]:
    detected: list[list[list[PiiSpan]]] = []
    requests = leaking = 0
    leaks_by_type: Counter[str] = Counter()
    leak_rows: list[dict[str, Any]] = []
    drafts = in_clear = 0
    for case in cases:
        earlier = [h.text for h in case.history if h.role.strip().lower() == "customer"]
        language = run.language.detect(case.text, earlier, case.locale)
        hints = hints_for(case, language.code, run.settings.pii_default_region)
        detected.append([find_pii(part, hints) for part in case.parts])

        run.llm.requests.clear()
        run.llm.language = language.code
        result = run.drafter.draft(
            case.text,
            _triage(case, language),
            [],
            case.history,
            case.locale,
            country=case.country,
            customer_name=case.customer_name,
        )
        for body in run.llm.requests:
            requests += 1
            payload = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
            leaked = leaked_values(payload, case)
            if leaked:
                leaking += 1
                leaks_by_type.update(g.type.value for g in leaked)
                leak_rows.append({"id": case.id, "values": [(g.type.value, g.value) for g in leaked]})
        payment = [g for g in case.gold if g.type in (PiiType.card_number, PiiType.iban)]
        for d in result.drafts:
            drafts += 1
            if any(leaked_values(d.text, PiiCase(case.id, case.lang, case.text, [g])) for g in payment):
                in_clear += 1
    report = detection_report(cases, detected)
    report.update(
        {
            "llm_requests": requests,
            "leaking_requests": leaking,
            "leak_rate": round(leaking / requests, 4) if requests else None,
            "leaks_by_type": dict(sorted(leaks_by_type.items())),
            "leaks": leak_rows,
            "drafts": drafts,
            "drafts_payment_data_in_clear": in_clear,
        }
    )
    return report


def metrics(report: dict[str, Any]) -> dict[str, Any]:
    """The figures the suite gates on (numbers only)."""
    keys = ("messages", "gold_spans", "recall", "typed_recall", "precision", "negatives_flagged", "leak_rate")
    out: dict[str, Any] = {k: report[k] for k in keys if report.get(k) is not None}
    out["drafts_payment_data_in_clear"] = report["drafts_payment_data_in_clear"]
    out["per_type"] = {k: v for k, v in report["per_type"].items() if v is not None}
    return out


def run(
    files: Sequence[Path], settings: Settings, out: Path | None = None, tone: Any = None
) -> dict[str, Any]:
    runner = PiiRun.build(settings, tone)
    try:
        report = {"files": {_shown(f): evaluate(load_cases(f), runner) for f in files}}
    finally:
        runner.close()
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    return report


def _shown(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def summary_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for name, r in report["files"].items():
        lines.append(
            f"{name}: {r['messages']} messages ({r['negatives']} negatives), {r['gold_spans']} PII spans · "
            f"recall {r['recall']:.3f} (typed {r['typed_recall']:.3f}) · precision {_fmt(r['precision'])} · "
            f"negatives flagged {_fmt(r['negatives_flagged'])} · LLM requests leaking "
            f"{r['leaking_requests']}/{r['llm_requests']} ({_fmt(r['leak_rate'])}) · drafts showing a card "
            f"or IBAN {r['drafts_payment_data_in_clear']}/{r['drafts']}"
        )
        for t, v in r["per_type"].items():
            lines.append(f"  {t:<20} recall {_fmt(v)}  n={r['per_type_n'][t]}")
        lines.append("  per language: " + ", ".join(f"{k} {_fmt(v)}" for k, v in r["per_language"].items()))
        for m in r["misses"]:
            lines.append(f"  missed {m['id']} {m['type']}: {m['value']!r} (found {m['found']})")
        for f in r["false_alarms"][:30]:
            lines.append(f"  extra  {f['id']} {f['type']}: {f['value']!r}")
    return lines


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
