"""The one link policy of help articles and reply drafts: where a link shown to a customer may point.

A link is allowed only when it is an `https://` URL whose host is, character for character, the host of
`REPLYDESK_KB_HELP_BASE_URL` or one of `REPLYDESK_KB_LINK_ALLOWED_HOSTS` (exact hosts: a subdomain is another
host and must be listed itself), on the default port, without user info. Everything else that a phone or a
chat client could turn into a link is found and refused: other hosts, look-alike hosts (IDN / punycode
homoglyphs such as a Greek omicron in `nοrthwind`, `northwind.example.evil.io`, `northwlnd`), user-info tricks
(`https://help.northwind.example@evil.io`), `http:`, defanged or misspelt schemes (`hxxps://`, `https[:]//`),
`javascript:` / `data:` URLs and scheme-less hosts (`evil.io/track`, `www.evil.io`, `evil[.]io`). A
scheme-less mention of an allowed host itself (`northwind.example/orders` in a sentence) stays: a chat app
that turns it into a link opens that same host.

`kb lint` (and so `PUT /v1/kb/articles/{id}`) rejects an article whose `url`, title, summary or body breaks
the policy; the drafting checks remove such links from every draft, template or LLM, before an agent sees it.
`mailto:` and `tel:` are contacts, not web links: the drafting claim checks judge those.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from rapidfuzz.distance import Levenshtein

from service.errors import InvalidInput

HTTPS_PORT = 443
TRAILING_PUNCT = ".,;:!?…"

# Top-level domains that mark a bare `name.tld` (no scheme, no `www.`, no path) as a host: the generic ones
# and the country codes in common use, without those that are also everyday file extensions (.md, .py, .sh,
# .pl, .rs, .js) or words a sentence glued to the next one produces (.it, .in, .is, .at, .to, .me, .be, .so,
# .no, .do, .am, .us); those still count with a path, a `www.` or a scheme.
BARE_HOST_TLDS = frozenset(
    """
    com net org info biz io co app dev xyz top online site shop store click link live ly gl cc tk ml ga cf gq
    ru cn su pw ws uk de fr es pt br mx nl eu ch ca au ar cl pe ve ec uy py bo cr gt hn ni pa sv pr cu ie dk
    se fi pl cz sk hu ro bg gr tr ua by kz il ae sa qa kw jp kr tw hk sg my th vn id ph nz za ng ke eg ma
    example test invalid local gov edu mil int pro name mobi tv fm gg ai sh im icu vip win bid loan work
    support help services email page zip mov tech cloud digital world today news blog
    """.split()
)

# a relative link to a file (`other.md#steps`, `img/screen.png`) is not a host, even with a path after it
FILE_EXTENSIONS = frozenset(
    "md markdown html htm pdf png jpg jpeg gif svg webp txt csv json yaml yml xml py js ts css sh rs".split()
)

_CHARS = r"[^\s<>()\[\]{}\"'`]"
_LINK = re.compile(
    # a scheme, however written: https://, hxxps://, h**ps://, https[:]//, https:\\, http:/
    rf"(?P<scheme>(?<![\w.+*-])[a-z][a-z0-9+.*-]{{0,20}}(?:\[:\]|:)[/\\]{{1,3}}{_CHARS}*)"
    # script and inline-data URLs
    r"|(?P<script>(?<![\w-])(?:java|vb|live)script\s*:\S*|(?<![\w-])data:[a-z]+/[\w.+-]+[;,]\S*)"
    # a host without a scheme: www.x.y, x.y/path, x[.]y (defanged), or a bare x.y with a known TLD
    rf"|(?P<host>(?<![\w@.\-])(?![\w.\-]*@)(?:[\w-]+(?:\.|\[\.\]|\(\.\)))+[^\W\d_]{{2,24}}(?![\w-])"
    rf"(?:[/?#]{_CHARS}*)?)",
    re.IGNORECASE,
)
_HTTPISH = re.compile(r"^h[\w*]{1,3}ps?$|^ht+ps?$|^https?s+$", re.IGNORECASE)
_DEFANGED = re.compile(r"\[\.\]|\(\.\)|\[:\]")

# Letters that render like Latin ones (Greek, Cyrillic, ...) and digit-for-letter swaps, for telling a
# look-alike host from a merely foreign one in the lint message (every non-exact host is refused either way).
_CONFUSABLE = str.maketrans(
    {
        "ο": "o", "о": "o", "0": "o", "α": "a", "а": "a", "е": "e", "ε": "e", "р": "p", "ρ": "p",
        "с": "c", "ϲ": "c", "х": "x", "χ": "x", "у": "y", "γ": "y", "і": "i", "ι": "i", "ı": "i",
        "1": "l", "|": "l", "ј": "j", "ԁ": "d", "ɡ": "g", "ν": "v", "κ": "k", "к": "k", "τ": "t",
        "т": "t", "н": "h", "η": "n", "п": "n", "м": "m", "ѕ": "s", "ԛ": "q", "ԝ": "w", "ω": "w",
        "в": "b", "β": "b", "ь": "b", "ɩ": "l", "ӏ": "l",
    }
)  # fmt: skip


class LinkProblem(StrEnum):
    not_https = "not_https"
    obfuscated = "obfuscated"
    script = "script"
    scheme_less = "scheme_less"
    user_info = "user_info"
    port = "port"
    malformed = "malformed"
    idn_host = "idn_host"
    look_alike = "look_alike"
    foreign_host = "foreign_host"


EXPLANATION = {
    LinkProblem.not_https: "only https:// links are allowed",
    LinkProblem.obfuscated: "a disguised scheme or host (hxxps://, [.], [:])",
    LinkProblem.script: "script and data URLs are never allowed",
    LinkProblem.scheme_less: "a host without https:// (chat apps turn it into a link)",
    LinkProblem.user_info: "user info before an @ hides the real host",
    LinkProblem.port: "a non-default port",
    LinkProblem.malformed: "not a well-formed https URL (backslash, escaped or empty host)",
    LinkProblem.idn_host: "an internationalised (punycode) host that can imitate an allowed one",
    LinkProblem.look_alike: "a host that imitates an allowed host",
    LinkProblem.foreign_host: "a host that is not allowed",
}


@dataclass(frozen=True)
class FoundLink:
    """A link-like piece of text and the policy's verdict (`problem` None: allowed)."""

    start: int
    end: int
    text: str
    problem: LinkProblem | None

    @property
    def allowed(self) -> bool:
        return self.problem is None


def split_list(value: str | Iterable[str] | None, *, separators: str = r"[,\s]+") -> list[str]:
    """`a.example, b.example` (a setting) or an iterable of entries → the non-empty, stripped entries."""
    if value is None:
        return []
    items = re.split(separators, value) if isinstance(value, str) else list(value)
    return [i.strip() for i in items if i and i.strip()]


def _host_of_entry(entry: str) -> str:
    host = urlsplit(entry).hostname if "://" in entry else entry.split("/", 1)[0]
    host = (host or "").strip().lower()
    if not host or not re.fullmatch(r"[\w.-]+", host) or ".." in host or host.startswith("."):
        raise InvalidInput(f"`{entry}` is not an exact host name for the link allow-list (no wildcards)")
    return host


def _skeleton(text: str) -> str:
    """Lower case, accents and compatibility forms folded, look-alike letters mapped to Latin ones."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).translate(_CONFUSABLE)
    return text.replace("rn", "m").replace("vv", "w").replace("i", "l")


def _decode_label(label: str) -> str:
    if label.startswith("xn--"):
        try:
            return label.encode("ascii").decode("idna")
        except UnicodeError:
            return label
    return label


class LinkPolicy:
    """Allowed hosts, and the checks of one URL (`problem`) and of free text (`scan`, `scrub`)."""

    def __init__(self, hosts: Iterable[str]) -> None:
        forms: set[str] = set()
        for entry in hosts:
            host = _host_of_entry(entry)
            forms.add(host)
            try:  # an IDN help host may be written either way; both forms are the same exact host
                forms.add(host.encode("idna").decode("ascii"))
            except UnicodeError:
                pass
        self.hosts = frozenset(forms)
        self._brands = sorted(
            {
                _skeleton(_decode_label(label))
                for h in self.hosts
                for label in (h.split(".")[1:-1] if h.count(".") >= 2 else h.split(".")[:-1])
                if len(label) >= 4
            }
        )
        self._host_skeletons = frozenset(_skeleton(h) for h in self.hosts)

    @classmethod
    def from_config(
        cls, help_base_url: str | None, allowed_hosts: str | Iterable[str] | None = None
    ) -> LinkPolicy:
        entries = split_list(allowed_hosts)
        if help_base_url:
            entries.insert(0, help_base_url)
        return cls(entries)

    @property
    def allowed_text(self) -> str:
        return ", ".join(f"https://{h}" for h in sorted(self.hosts) if h.isascii()) or "no host"

    def reason(self, problem: LinkProblem) -> str:
        return f"{EXPLANATION[problem]}; links may point only to {self.allowed_text}"

    # -- one URL (an article's `url`, a Markdown link target) ------------------------------------------------

    def problem(self, url: str) -> LinkProblem | None:
        url = url.strip()
        m = re.match(r"^([a-z][a-z0-9+.*-]*)(\[:\]|:)", url, re.IGNORECASE)
        if m is None:
            return LinkProblem.malformed if url.startswith("//") else LinkProblem.scheme_less
        scheme = m.group(1).lower()
        if m.group(2) == "[:]" or (scheme not in ("http", "https") and _HTTPISH.match(scheme)):
            return LinkProblem.obfuscated
        if scheme in ("javascript", "vbscript", "livescript", "data"):
            return LinkProblem.script
        if scheme != "https":
            return LinkProblem.not_https
        if not url[:8].lower() == "https://" or url[8:9] in ("/", "\\"):
            return LinkProblem.malformed
        if "\\" in url or any(unicodedata.category(ch)[0] in "CZ" for ch in url):
            return LinkProblem.malformed
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return LinkProblem.malformed
        netloc = parts.netloc
        if "@" in netloc:
            return LinkProblem.user_info
        if "%" in netloc or not parts.hostname:
            return LinkProblem.malformed
        if port not in (None, HTTPS_PORT):
            return LinkProblem.port
        written = netloc.rsplit(":", 1)[0] if port is not None else netloc
        return self.host_problem(written)

    def host_problem(self, host: str) -> LinkProblem | None:
        """None when `host` (as written, case-insensitive) is exactly an allowed host."""
        host = host.lower()
        if host in self.hosts:
            return None
        labels = host.split(".")
        if _DEFANGED.search(host):
            return LinkProblem.obfuscated
        if not host.isascii() or any(label.startswith("xn--") for label in labels):
            return LinkProblem.idn_host
        if self._looks_like(host):
            return LinkProblem.look_alike
        return LinkProblem.foreign_host

    def _looks_like(self, host: str) -> bool:
        if _skeleton(host) in self._host_skeletons:
            return True
        for label in host.split("."):
            s = _skeleton(_decode_label(label))
            if len(s) >= 4 and any(Levenshtein.distance(s, b) <= 1 for b in self._brands):
                return True
        return False

    # -- free text (summaries, bodies, drafts) -------------------------------------------------------------

    def scan(self, text: str) -> list[FoundLink]:
        """Every link-like span of `text`, in order, with its verdict."""
        found: list[FoundLink] = []
        for m in _LINK.finditer(text):
            raw = m.group(0)
            value = raw.rstrip(TRAILING_PUNCT)
            if not value:
                continue
            if m.group("script") is not None:
                problem: LinkProblem | None = LinkProblem.script
            elif m.group("scheme") is not None:
                problem = self.problem(value)
            else:
                kind = self._bare_host(value)
                if kind is None:
                    continue  # a word with a dot, not a host
                problem = (
                    kind if kind is LinkProblem.obfuscated or _host_part(value) not in self.hosts else None
                )
            found.append(FoundLink(m.start(), m.start() + len(value), value, problem))
        return found

    @staticmethod
    def _bare_host(value: str) -> LinkProblem | None:
        """How a scheme-less `value` counts: None when it is no host at all (`e.g`, `file.md`)."""
        host = _host_part(value)
        if _DEFANGED.search(host):
            return LinkProblem.obfuscated
        tld = host.rsplit(".", 1)[-1].lower()
        with_path = len(host) < len(value) and tld not in FILE_EXTENSIONS
        if host.startswith("www.") or with_path or tld in BARE_HOST_TLDS:
            return LinkProblem.scheme_less
        if not tld.isascii():  # a look-alike TLD is never an everyday word
            return LinkProblem.scheme_less
        return None

    def scrub(self, text: str) -> tuple[str, list[FoundLink]]:
        """`text` without its disallowed links, and those links."""
        removed = [f for f in self.scan(text) if not f.allowed]
        if not removed:
            return text, []
        out, pos = [], 0
        for f in removed:
            out.append(text[pos : f.start])
            pos = f.end
        out.append(text[pos:])
        return "".join(out), removed

    def deceptive(self, label: str, target: str) -> bool:
        """A Markdown link whose text shows a URL or host other than the one it opens."""
        shown = [f.text for f in self.scan(label)]
        if not shown:
            return False
        return any(normalise(s) != normalise(target) for s in shown)


def _host_part(value: str) -> str:
    return re.split(r"[/?#]", value, maxsplit=1)[0].lower()


def normalise(url: str) -> str:
    """Compare URLs as a reader would: no scheme, no `www.`, lower-case host, no trailing slash."""
    url = url.strip().rstrip(TRAILING_PUNCT)
    url = re.sub(r"^[a-z][a-z0-9+.*-]*(?:\[:\]|:)[/\\]*", "", url, flags=re.IGNORECASE)
    host, slash, path = url.partition("/")
    host = host.lower().removeprefix("www.")
    return f"{host}{slash}{path}".rstrip("/")
