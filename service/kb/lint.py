"""`replydesk kb lint`: mobile-friendliness and consistency checks for help articles.

Every rule has an id (shown in brackets), a severity, and a message that says how to fix the problem. Errors
make `kb lint` exit non-zero and make `PUT /v1/kb/articles/{id}` answer 422; warnings are advice.

Limits come from what a phone screen shows without scrolling sideways or losing the thread: a paragraph of at
most 400 characters (about 10 lines on a 360 px wide screen), code lines of at most 40 characters, no tables,
every image described for screen readers and low-bandwidth clients, and a summary of at most 300 characters
that a bot can send verbatim as one chat bubble.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from service.kb import markdown
from service.kb.articles import REQUIRED_FIELDS, Article, ArticleParseError, ParsedDoc, load_documents
from service.kb.links import LinkPolicy, LinkProblem

SUMMARY_MAX_CHARS = 300
PARAGRAPH_MAX_CHARS = 400
CODE_LINE_MAX_CHARS = 40
TITLE_MAX_CHARS = 70

ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
# language[-script][-region], the subset of BCP 47 helpdesks use (`en`, `es-MX`, `zh-Hant-TW`, `es-419`)
LOCALE_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?$")
HTML_IMG_RE = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
HTML_ALT_RE = re.compile(r"\balt\s*=\s*(\"[^\"]+\"|'[^']+'|[^\s>\"']+)", re.IGNORECASE)
HTML_TABLE_RE = re.compile(r"<table\b", re.IGNORECASE)
EXTERNAL_SCHEMES = frozenset({"http", "https", "mailto", "tel", "sms", "whatsapp"})
CONTACT_SCHEMES = frozenset({"mailto", "tel", "sms"})  # contacts, judged by the drafting claim checks


class Severity(StrEnum):
    error = "error"
    warning = "warning"


@dataclass(frozen=True)
class LintIssue:
    rule: str
    severity: Severity
    message: str
    source: str
    article_id: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.severity} [{self.rule}] {self.message}"

    def as_dict(self) -> dict:
        data = asdict(self)
        data["severity"] = str(self.severity)
        return data


RULES: dict[str, str] = {
    "unreadable": "the file must be UTF-8 Markdown whose front matter is valid YAML",
    "no-front-matter": "the file must start with a YAML front matter block between `---` lines",
    "missing-field": "every front matter field is required: " + ", ".join(REQUIRED_FIELDS),
    "field-type": "intents and tags are lists of names; the other fields are single values",
    "invalid-id": "ids are lower-case letters, digits, '.', '_' or '-' (max 100)",
    "invalid-locale": "locale is a BCP 47 tag such as `en`, `es-MX`, `pt-BR`",
    "unknown-intent": "intents must be names from the intent taxonomy",
    "summary-too-long": f"the summary is sent verbatim in chat: at most {SUMMARY_MAX_CHARS} characters",
    "invalid-url": "url is the absolute https address of the public mobile page",
    "invalid-date": "updated_at is an ISO 8601 date or date-time",
    "empty-body": "the body needs at least one section with text",
    "long-paragraph": f"paragraphs longer than {PARAGRAPH_MAX_CHARS} characters do not fit a phone screen",
    "table": "tables overflow phone screens: use a list or short sections instead",
    "image-alt": "every image needs alt text (screen readers, images turned off on mobile data)",
    "wide-code-block": (
        f"code block lines longer than {CODE_LINE_MAX_CHARS} characters scroll sideways on phones"
    ),
    "broken-link": "internal links must point to an existing article, article url or heading",
    "duplicate-id": "article ids are unique across the knowledge base",
    "disallowed-link": "links may point only to https:// pages of the help host or an allowed host "
    "(REPLYDESK_KB_HELP_BASE_URL, REPLYDESK_KB_LINK_ALLOWED_HOSTS)",
    "deceptive-link": "a link's text must not show another URL or host than the one it opens",
    "long-title": f"titles longer than {TITLE_MAX_CHARS} characters are cut in chat previews",
}


def default_intent_names(intents_path: Path | None = None) -> frozenset[str]:
    """Intent names of the triage taxonomy (bundled, or `Settings.intents_path`), plus `out_of_scope`."""
    from service.triage.taxonomy import OUT_OF_SCOPE, load_taxonomy

    return frozenset(load_taxonomy(intents_path).names) | {OUT_OF_SCOPE}


@dataclass
class _Context:
    """What cross-article rules need: ids, urls and heading anchors of the whole collection."""

    ids: set[str]
    urls: set[str]
    files: dict[str, str]  # resolved path -> article id
    anchors: dict[str, set[str]]  # article id -> heading slugs
    help_host: str | None
    links: LinkPolicy | None = None  # None: no help host configured, links are not restricted


def _norm_url(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def _anchors(body: str) -> set[str]:
    tokens = markdown.parse(body)
    return {markdown.slugify(tokens[i + 1].content) for i, t in enumerate(tokens) if t.type == "heading_open"}


def _issue(
    doc: ParsedDoc,
    article_id: str,
    rule: str,
    message: str,
    line: int | None = None,
    severity: Severity = Severity.error,
) -> LintIssue:
    return LintIssue(
        rule=rule, severity=severity, message=message, source=doc.source, article_id=article_id, line=line
    )


def _lint_front_matter(doc: ParsedDoc, known_intents: Collection[str] | None) -> list[LintIssue]:
    meta = doc.meta
    aid = str(meta.get("id") or "")
    out: list[LintIssue] = []
    if not doc.has_front_matter:
        return [_issue(doc, aid, "no-front-matter", RULES["no-front-matter"], 1)]
    for name in REQUIRED_FIELDS:
        value = meta.get(name)
        empty = value is None or (isinstance(value, str) and not value.strip())
        if name not in meta or (empty and name != "tags") or (name == "intents" and value == []):
            out.append(
                _issue(doc, aid, "missing-field", f"front matter field `{name}` is missing or empty", 1)
            )
    for name in ("intents", "tags"):
        value = meta.get(name)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            out.append(
                _issue(doc, aid, "field-type", f"`{name}` must be a list of names, e.g. [order_status]", 1)
            )
    for name in ("id", "title", "locale", "url", "summary"):
        value = meta.get(name)
        if isinstance(value, list | dict):
            out.append(
                _issue(doc, aid, "field-type", f"`{name}` must be a single value, not a list or mapping", 1)
            )
    article = Article.from_doc(doc)
    if article.id and not ID_RE.match(article.id):
        out.append(_issue(doc, aid, "invalid-id", f"id `{article.id}`: {RULES['invalid-id']}", 1))
    if article.locale and not LOCALE_RE.match(article.locale):
        out.append(
            _issue(doc, aid, "invalid-locale", f"locale `{article.locale}` is not a BCP 47 tag like es-MX", 1)
        )
    if known_intents is not None and isinstance(meta.get("intents"), list):
        for intent in article.intents:
            if intent not in known_intents:
                out.append(
                    _issue(
                        doc,
                        aid,
                        "unknown-intent",
                        f"intent `{intent}` is not in the taxonomy "
                        f"(e.g. {', '.join(sorted(known_intents)[:3])}…)",
                        1,
                    )
                )
    if len(article.summary) > SUMMARY_MAX_CHARS:
        out.append(
            _issue(
                doc,
                aid,
                "summary-too-long",
                f"summary has {len(article.summary)} characters; the limit is {SUMMARY_MAX_CHARS}",
                1,
            )
        )
    if article.url:
        parts = urlsplit(article.url)
        if parts.scheme != "https" or not parts.netloc:
            out.append(
                _issue(
                    doc, aid, "invalid-url", f"url `{article.url}` must be an absolute https:// address", 1
                )
            )
    if article.updated_at:
        try:
            dt.datetime.fromisoformat(article.updated_at.replace("Z", "+00:00"))
        except ValueError:
            out.append(
                _issue(doc, aid, "invalid-date", f"updated_at `{article.updated_at}` is not ISO 8601", 1)
            )
    if len(article.title) > TITLE_MAX_CHARS:
        out.append(
            _issue(
                doc,
                aid,
                "long-title",
                f"title has {len(article.title)} characters; keep it under {TITLE_MAX_CHARS}",
                1,
                Severity.warning,
            )
        )
    return out


def _link_target_ok(target: str, doc: ParsedDoc, article: Article, ctx: _Context) -> bool:
    parts = urlsplit(target)
    if parts.scheme in EXTERNAL_SCHEMES and parts.netloc:
        if ctx.help_host and parts.netloc.lower() == ctx.help_host and parts.path.strip("/"):
            return _norm_url(target) in ctx.urls
        return True
    if parts.scheme:  # mailto:, tel:, other apps
        return True
    if not parts.path:  # "#anchor" within this article
        return parts.fragment in ctx.anchors.get(article.id, set())
    target_id = None
    if parts.path.endswith(".md"):
        resolved = str((Path(doc.source).parent / parts.path).resolve())
        target_id = ctx.files.get(resolved) or Path(parts.path).stem
    else:
        target_id = parts.path.strip("/")
    if target_id not in ctx.ids:
        return False
    return not parts.fragment or parts.fragment in ctx.anchors.get(target_id, set())


def _lint_body(doc: ParsedDoc, article: Article, ctx: _Context | None) -> list[LintIssue]:
    out: list[LintIssue] = []
    aid = article.id
    if not doc.body.strip():
        return [_issue(doc, aid, "empty-body", RULES["empty-body"], doc.body_start_line)]
    tokens = markdown.parse(doc.body)

    def line_of(tok_map: list[int] | None) -> int:
        return doc.body_start_line + (tok_map[0] if tok_map else 0)

    last_map: list[int] | None = None
    for i, tok in enumerate(tokens):
        last_map = tok.map or last_map
        if tok.type == "table_open":
            out.append(_issue(doc, aid, "table", RULES["table"], line_of(tok.map)))
        elif tok.type in ("fence", "code_block"):
            widest = max((len(line) for line in tok.content.splitlines()), default=0)
            if widest > CODE_LINE_MAX_CHARS:
                out.append(
                    _issue(
                        doc,
                        aid,
                        "wide-code-block",
                        f"a code line has {widest} characters; the limit is "
                        f"{CODE_LINE_MAX_CHARS} (wrap it or use plain text)",
                        line_of(tok.map),
                    )
                )
        elif tok.type == "html_block":
            out.extend(_lint_html(doc, aid, tok.content, line_of(tok.map)))
        elif tok.type == "inline":
            if i > 0 and tokens[i - 1].type == "paragraph_open":
                text = markdown.inline_text(tok)
                if len(text) > PARAGRAPH_MAX_CHARS:
                    out.append(
                        _issue(
                            doc,
                            aid,
                            "long-paragraph",
                            f"paragraph has {len(text)} characters; split it "
                            f"(limit {PARAGRAPH_MAX_CHARS} for phone screens)",
                            line_of(tok.map),
                        )
                    )
            for child in tok.children or []:
                if child.type == "image" and not (child.content or "").strip():
                    src = child.attrs.get("src", "")
                    out.append(
                        _issue(
                            doc,
                            aid,
                            "image-alt",
                            f"image `{src}` has no alt text: write ![what it shows]({src})",
                            line_of(tok.map),
                        )
                    )
                elif child.type == "html_inline":
                    out.extend(_lint_html(doc, aid, child.content, line_of(tok.map)))
                elif child.type == "link_open" and ctx is not None:
                    href = str(child.attrs.get("href", ""))
                    if not _link_target_ok(href, doc, article, ctx):
                        out.append(
                            _issue(
                                doc,
                                aid,
                                "broken-link",
                                f"link `{href}` points to no article, article "
                                "url or heading in this knowledge base",
                                line_of(tok.map),
                            )
                        )
    return out


def _lint_links(doc: ParsedDoc, article: Article, policy: LinkPolicy) -> list[LintIssue]:
    """The link policy over everything of an article that reaches a customer: its `url`, title, summary and
    body (raw Markdown with HTML entities decoded, so a link hidden in markup, code or an image is found
    too), plus Markdown link targets (protocol-relative ones) and link texts that show another URL."""
    aid = article.id
    out: list[LintIssue] = []
    flagged_lines: set[int] = set()

    def disallowed(where: str, text: str, problem: LinkProblem | None, line: int) -> None:
        flagged_lines.add(line)
        reason = policy.reason(problem or LinkProblem.foreign_host)
        out.append(
            _issue(doc, aid, "disallowed-link", f"{where} link `{text}` is not allowed: {reason}", line)
        )

    if article.url:
        problem = policy.problem(article.url)
        if problem is not None:
            disallowed("url:", article.url, problem, 1)
    for name, value in (("title", article.title), ("summary", article.summary)):
        for found in policy.scan(html.unescape(value)):
            if not found.allowed:
                disallowed(f"{name}:", found.text, found.problem, 1)
    body = html.unescape(doc.body)
    for found in policy.scan(body):
        if not found.allowed:
            disallowed(
                "body:", found.text, found.problem, doc.body_start_line + body.count("\n", 0, found.start)
            )
    tokens = markdown.parse(doc.body)
    for tok in tokens:
        if tok.type != "inline":
            continue
        line = doc.body_start_line + (tok.map[0] if tok.map else 0)
        children = tok.children or []
        for i, child in enumerate(children):
            if child.type != "link_open":
                continue
            href = str(child.attrs.get("href", ""))
            label_parts = []
            for nxt in children[i + 1 :]:
                if nxt.type == "link_close":
                    break
                label_parts.append(nxt.content)
            label = "".join(label_parts)
            parts = urlsplit(href)
            external = bool(parts.scheme) or href.startswith("//")
            if external and parts.scheme.lower() not in CONTACT_SCHEMES:
                problem = policy.problem(href)
                if problem is not None and line not in flagged_lines:
                    disallowed("body:", href, problem, line)
            if policy.deceptive(label, href):
                out.append(
                    _issue(
                        doc,
                        aid,
                        "deceptive-link",
                        f"link text `{label}` shows another address than its target `{href}`",
                        line,
                    )
                )
    return out


def _lint_html(doc: ParsedDoc, aid: str, html: str, line: int) -> list[LintIssue]:
    out = []
    if HTML_TABLE_RE.search(html):
        out.append(_issue(doc, aid, "table", RULES["table"], line))
    for img in HTML_IMG_RE.findall(html):
        if not HTML_ALT_RE.search(img):
            out.append(_issue(doc, aid, "image-alt", f"HTML image without alt text: {img[:60]}", line))
    return out


def build_context(
    docs: Iterable[ParsedDoc], help_base_url: str | None, allowed_link_hosts: str | Collection[str] = ()
) -> _Context:
    ids: set[str] = set()
    urls: set[str] = set()
    files: dict[str, str] = {}
    anchors: dict[str, set[str]] = {}
    for doc in docs:
        article = Article.from_doc(doc)
        if not article.id:
            continue
        ids.add(article.id)
        if article.url:
            urls.add(_norm_url(article.url))
        if doc.source and not doc.source.startswith("<"):
            files[str(Path(doc.source).resolve())] = article.id
        anchors[article.id] = _anchors(doc.body)
    host = urlsplit(help_base_url).netloc.lower() if help_base_url else None
    links = LinkPolicy.from_config(help_base_url, allowed_link_hosts) if help_base_url else None
    return _Context(ids=ids, urls=urls, files=files, anchors=anchors, help_host=host, links=links)


def lint_documents(
    docs: list[ParsedDoc],
    *,
    known_intents: Collection[str] | None = None,
    help_base_url: str | None = None,
    allowed_link_hosts: str | Collection[str] = (),
    only: Collection[str] | None = None,
) -> list[LintIssue]:
    """Lint a collection. `only` restricts the report to these sources (the collection still resolves
    links). With `help_base_url`, every link must pass the link policy (`service.kb.links`): that host and
    `allowed_link_hosts` only."""
    ctx = build_context(docs, help_base_url, allowed_link_hosts)
    issues: list[LintIssue] = []
    id_counts = Counter(Article.from_doc(d).id for d in docs)
    for doc in docs:
        if only is not None and doc.source not in only:
            continue
        article = Article.from_doc(doc)
        issues.extend(_lint_front_matter(doc, known_intents))
        if doc.has_front_matter:
            issues.extend(_lint_body(doc, article, ctx))
            if ctx.links is not None:
                issues.extend(_lint_links(doc, article, ctx.links))
        if article.id and id_counts[article.id] > 1:
            others = [d.source for d in docs if d is not doc and Article.from_doc(d).id == article.id]
            issues.append(
                _issue(
                    doc,
                    article.id,
                    "duplicate-id",
                    f"id `{article.id}` is also used by {', '.join(others)}",
                    1,
                )
            )
    return issues


def lint_path(
    path: Path,
    *,
    known_intents: Collection[str] | None = None,
    help_base_url: str | None = None,
    allowed_link_hosts: str | Collection[str] = (),
    collection_root: Path | None = None,
) -> list[LintIssue]:
    """Lint a directory of articles, or one file (resolved against `collection_root` for links and ids)."""
    path = Path(path)
    root = collection_root or (path if path.is_dir() else path.parent)
    docs, parse_errors = load_documents(root)
    if path.is_file() and all(Path(d.source).resolve() != path.resolve() for d in docs):
        docs_one, errs_one = load_documents(path)
        docs += docs_one
        parse_errors += errs_one
    only = None
    if path.is_file():
        only = {d.source for d in docs if Path(d.source).resolve() == path.resolve()}
    issues = [
        LintIssue(rule="unreadable", severity=Severity.error, message=str(e), source=e.source, line=1)
        for e in parse_errors
    ]
    issues += lint_documents(
        docs,
        known_intents=known_intents,
        help_base_url=help_base_url,
        allowed_link_hosts=allowed_link_hosts,
        only=only,
    )
    return issues


def errors_of(issues: Iterable[LintIssue]) -> list[LintIssue]:
    return [i for i in issues if i.severity == Severity.error]


__all__ = [
    "LintIssue",
    "Severity",
    "RULES",
    "ArticleParseError",
    "lint_documents",
    "lint_path",
    "errors_of",
    "default_intent_names",
]
