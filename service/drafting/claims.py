"""Claim checks: every contact, identifier, amount and "it is done" claim in a draft needs its own source.

What grounds what (anything else is dropped with its sentence, and the draft carries a `SafetyFinding`):

- an e-mail address or phone number: the customer's own (the message or the conversation's earlier
  messages), an article given to the drafter (it is then cited), a context fact, or a configured brand
  contact (`REPLYDESK_BRAND_CONTACTS`);
- an order number or a payment card: the conversation or a context fact only (never an article: a number in
  an article is an example, or someone else's);
- an amount of money: a context fact, a given article (cited then) or the conversation;
- a claim that something happened or was approved ("your refund of 500 EUR has been approved and sent", "we
  have issued a credit", "le remboursement a été effectué"): a context fact that names the same things
  (refund, approval, shipment ...; in any of the template languages) with the same amounts, or an article
  sentence that itself states it happened with the same amounts. The customer saying so never grounds it.

The sentence goes rather than the value alone: "call +1 900 555 0100 to get your refund" without the number
still sends the customer somewhere. Commitments (refunds, credits, discounts a draft promises) are the
drafting `Policy`'s, which drops the whole LLM draft (`checks.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from service.drafting.models import GroundingArticle, SafetyFinding
from service.drafting.slots import SlotResolver
from service.triage.entities import extract_entities
from service.triage.language import strip_accents

PHONE_KEY_DIGITS = 9  # compare phone numbers on their last 9 digits: +34 912 345 678 == 912345678
CONTACT_TYPES = frozenset({"email", "phone"})
IDENTIFIER_TYPES = frozenset({"order_number", "card_number"})

# -- sentences
# ---------------------------------------------------------------------------------------------------

_PARAGRAPH = re.compile(r"[^\n]+(?:\n(?!\n)[^\n]+)*")
_SENTENCE = re.compile(r"\S.*?(?:[.!?…]+[\"'»”)\]]*(?=\s|$)|$)", re.DOTALL)


def sentence_spans(text: str) -> list[tuple[int, int, int]]:
    """(start, end, paragraph index) of every sentence; paragraphs are separated by a blank line."""
    out = []
    for p, para in enumerate(_PARAGRAPH.finditer(text)):
        for s in _SENTENCE.finditer(para.group()):
            out.append((para.start() + s.start(), para.start() + s.end(), p))
    return out


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e, _ in sentence_spans(text)]


# -- amounts of money and percentages
# --------------------------------------------------------------------------------------------

_NUMBER = r"(?<![\d.,])(?:\d{1,3}(?:[.,\u00a0\u202f]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?)(?![\d])"
_CURRENCY_SIGN = r"R\$|US\$|[€$£¥₹]"
_CURRENCY_WORD = (
    r"EUR|USD|GBP|CHF|MXN|BRL|ARS|COP|CLP|PEN|CAD|AUD|euros?|dollars?|d[oó]lares|pesos|reais|reales|"
    r"pounds?|libras?|francs?|francos?|franken"
)
_AMOUNT = re.compile(
    rf"(?:(?P<sign1>{_CURRENCY_SIGN})|(?<![^\W\d_])(?P<word1>EUR|USD|GBP|CHF|MXN|BRL|CAD|AUD))\s?(?P<n1>{_NUMBER})"
    rf"|(?P<n2>{_NUMBER})\s?(?:(?P<sign2>{_CURRENCY_SIGN})|(?P<word2>{_CURRENCY_WORD})(?![^\W\d_]))"
    rf"|(?P<n3>\d{{1,3}}(?:[.,]\d+)?)\s?"
    r"(?P<pct>%|percent\b|por ?ciento\b|prozent\b|pour ?cent\b|por ?cento\b)",
    re.IGNORECASE,
)
_CURRENCY = {
    "€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR",
    "£": "GBP", "gbp": "GBP", "pound": "GBP", "pounds": "GBP", "libra": "GBP", "libras": "GBP",
    "r$": "BRL", "brl": "BRL", "reais": "BRL", "reales": "BRL",
    "chf": "CHF", "franc": "CHF", "francs": "CHF", "franco": "CHF", "francos": "CHF", "franken": "CHF",
    "¥": "JPY", "₹": "INR",
}  # fmt: skip
_DOLLAR_FAMILY = "$"  # $, US$, USD, MXN, CAD, ... are told apart only when both sides name the code


def _number(raw: str) -> Decimal | None:
    """`1.234,50` / `1,234.50` / `500` / `59,9` → a Decimal (the last separator followed by 1-2 digits is the
    decimal one)."""
    m = re.search(r"[.,](\d{1,2})$", raw)
    whole, fraction = (raw[: m.start()], m.group(1)) if m else (raw, "")
    digits = re.sub(r"\D", "", whole) + (f".{fraction}" if fraction else "")
    try:
        return Decimal(digits).normalize()
    except InvalidOperation:
        return None


def _currency(token: str) -> str:
    t = token.lower()
    if t in _CURRENCY:
        return _CURRENCY[t]
    return _DOLLAR_FAMILY


def amounts(text: str) -> frozenset[tuple[Decimal, str]]:
    """Amounts of money (value, currency) and percentages (value, "%") in `text`."""
    out = set()
    for m in _AMOUNT.finditer(text):
        if m.group("pct"):
            value, unit = _number(m.group("n3")), "%"
        else:
            value = _number(m.group("n1") or m.group("n2"))
            unit = _currency(m.group("sign1") or m.group("word1") or m.group("sign2") or m.group("word2"))
        if value is not None:
            out.add((value, unit))
    return frozenset(out)


def _all_amounts(texts: Iterable[str]) -> set[tuple[Decimal, str]]:
    out: set[tuple[Decimal, str]] = set()
    for t in texts:
        out |= amounts(t)
    return out


def _amount_text(value: tuple[Decimal, str]) -> str:
    number, unit = value
    shown = format(number, "f")
    return f"{shown}{unit}" if unit == "%" else f"{shown} {unit}"


# -- claims that something happened
# ----------------------------------------------------------------------------------------------

# What a claim is about, in the template languages (accent-free, lower case). A fact grounds a claim when it
# names every group the claim names.
TOPICS: dict[str, str] = {
    "refund": r"refund|reimburs|reembols|erstatt|rembours|estorn|money back|geld zuruck",
    "credit": r"credit(?!\s*cards?)|gutschrift|gutgeschrieben|abonad|abono|acreditad|creditad|avoir",
    "voucher": r"voucher|gutschein|cupon|cupom|bon d.achat|gift card|tarjeta regalo|vale",
    "discount": r"discount|descuento|rabatt|reduction|desconto",
    "compensation": r"compensat|compensac|entschadig|dedommag|indemni",
    "cancel": r"cancel|stornier|annul|anulad",
    "ship": r"shipped|dispatched|\bsent\b|versandt|verschickt|enviad|envoye|expedi|despachad|postad",
    "deliver": r"deliver|zugestellt|geliefert|entregad|entregue|livre",
    "approve": r"approv|aprob|aprovad|genehmig|bewilligt|valid|accepted|aceptad|akzeptiert|acceite",
    "payment": r"payment|\bpaid\b|\bpago\b|pagad|pagament|zahlung|bezahlt|paiement|\bpaye|transfer|"
    r"uberwies|virement",
    "replacement": r"replacement|reemplazo|reposicion|ersatz|remplacement|substitui",
    "order": r"\border\b|pedido|bestellung|commande|encomenda",
    "parcel": r"package|parcel|paquete|paket|colis|pacote|shipment|envio\b|sendung",
    "return": r"\breturn\b|devolucion|rucksendung|retour|devolucao",
    "money": r"money|dinero|\bgeld\b|argent|dinheiro|amount|importe|betrag|montant|\bvalor\b",
}
_TOPIC_RX = {name: re.compile(rx) for name, rx in TOPICS.items()}

# Past participles / preterites of what a shop does with money and orders; a sentence states a done thing
# when one follows an auxiliary ("has been", "wurde", "a été", "foi") or is a first-person preterite.
_DONE = (
    r"approved|issued|processed|sent|refunded|reimbursed|credited|cancell?ed|shipped|dispatched|delivered|"
    r"paid|transferred|completed|released|initiated|granted|authori[sz]ed|"
    r"aprobad[oa]s?|emitid[oa]s?|procesad[oa]s?|enviad[oa]s?|reembolsad[oa]s?|abonad[oa]s?|cancelad[oa]s?|"
    r"anulad[oa]s?|entregad[oa]s?|pagad[oa]s?|transferid[oa]s?|realizad[oa]s?|efectuad[oa]s?|"
    r"completad[oa]s?|despachad[oa]s?|tramitad[oa]s?|acreditad[oa]s?|"
    r"genehmigt|erstattet|ruckerstattet|uberwiesen|storniert|versandt|verschickt|zugestellt|geliefert|"
    r"gutgeschrieben|bearbeitet|ausgezahlt|bezahlt|veranlasst|freigegeben|abgeschlossen|ausgestellt|"
    r"approuvee?s?|validee?s?|effectuee?s?|envoyee?s?|remboursee?s?|emise?s?|traitee?s?|annulee?s?|"
    r"expediee?s?|livree?s?|versee?s?|creditee?s?|payee?s?|accordee?s?|viree?s?|"
    r"aprovad[oa]s?|efetuad[oa]s?|emitid[oa]s?|processad[oa]s?|creditad[oa]s?|entregues?|estornad[oa]s?|"
    r"concluid[oa]s?"
)
_FIRST_PERSON_PRETERITE = (
    r"aprobamos|emitimos|enviamos|reembolsamos|procesamos|cancelamos|abonamos|transferimos|realizamos|"
    r"efectuamos|tramitamos|aprovamos|creditamos|estornamos|efetuamos|processamos"
)
_AUX = (
    r"has|have|had|'s|'ve|was|were|is|are|been|already|"
    r"ha|han|hemos|he|fue|fueron|esta|estan|sido|ya|"
    r"wurde|wurden|ist|sind|haben|habe|hat|bereits|schon|"
    r"a ete|ont ete|avons|ai|est|sont|deja|"
    r"foi|foram|estao|ja|temos|tem"
)
_DONE_RX = re.compile(rf"\b(?:{_DONE})\b")
_AUX_RX = re.compile(
    rf"(?:^|[\s,;:(])(?:{_AUX})\b|\w'(?:s|ve|d)\b|\b(?:we|i|wir|nous|on)\s+(?:just\s+)?$|\ba\s+$"
)
_PRETERITE_RX = re.compile(rf"\b(?:{_FIRST_PERSON_PRETERITE})\b")
# on the lower-cased text with its accents: Spanish "si" (if) is not "sí" (yes)
_CONDITION = re.compile(
    r"\b(?:once|when|if|after|as soon as|until|unless|whenever|cuando|si|una vez|en cuanto|tan pronto|"
    r"después de que|hasta que|sobald|wenn|falls|nachdem|bis|quand|lorsque|une fois|dès que|après|"
    r"quando|assim que|depois que|logo que|caso|até que)(?![\w])"
)
_FUTURE = re.compile(
    r"\b(?:will|'ll|shall|going to|would|could|can|may|might|should|must|"
    r"vamos|va|van|voy|podemos|puede|wird|werden|kann|konnen|allons|vont|pouvons|peut|vai|vao|iremos|pode)\b"
)


def _fold(text: str) -> str:
    return strip_accents(text.lower()).replace("’", "'")


@lru_cache(maxsize=8192)
def topics(text: str) -> frozenset[str]:
    folded = _fold(text)
    return frozenset(name for name, rx in _TOPIC_RX.items() if rx.search(folded))


@lru_cache(maxsize=8192)  # template and article sentences repeat across drafts and messages
def is_done_claim(sentence: str) -> bool:
    """Does the sentence state that something about money or an order has happened (not will, not if)?"""
    folded = _fold(sentence)
    if folded.rstrip().endswith("?"):
        return False
    for m in [*_DONE_RX.finditer(folded), *_PRETERITE_RX.finditer(folded)]:
        before = folded[: m.start()]
        if not (_PRETERITE_RX.fullmatch(m.group()) or _AUX_RX.search(" ".join(before.split()[-4:]) + " ")):
            continue
        if _CONDITION.search(sentence.lower()[: m.start()]) or _FUTURE.search(" ".join(before.split()[-4:])):
            continue
        if (topics(sentence) - {"ship", "deliver", "approve", "payment", "cancel"}) or amounts(sentence):
            return True
    return False


# -- contacts and identifiers
# -----------------------------------------------------------------------------------------------------


def entity_key(kind: str, value: str) -> str:
    """How two spellings of one contact or identifier compare equal."""
    if kind == "email":
        return value.strip().lower()
    digits = re.sub(r"\D", "", value)
    if kind == "phone":
        return digits[-PHONE_KEY_DIGITS:]
    if kind == "order_number":
        return digits or re.sub(r"[^0-9A-Za-z]", "", value).upper()
    return digits


# an e-mail needs an @, every other entity at least three digits: most sentences need no entity search at all
_MAY_HOLD_ENTITY = re.compile(r"@|\d(?:[\s./()-]{0,2}\d){2}")


def find_entities(text: str, locale: str | None) -> tuple[tuple[str, str], ...]:
    """(type, value) of the entities in `text`, in order."""
    if not _MAY_HOLD_ENTITY.search(text):
        return ()
    return tuple((e.type, e.value) for e in extract_entities(text, locale))


# Drafts' sentences and articles repeat (templates, summaries) and are cached; what the customer wrote is not
# (it never repeats, and customer text is kept no longer than the request needs it).
_entities_of = lru_cache(maxsize=8192)(find_entities)


@lru_cache(maxsize=2048)
def _keys_of(text: str, locale: str | None) -> frozenset[tuple[str, str]]:
    return frozenset((kind, entity_key(kind, value)) for kind, value in _entities_of(text, locale))


def keys_of(texts: Iterable[str], locale: str | None) -> frozenset[tuple[str, str]]:
    """Keys of the entities in texts of the conversation or the facts (not cached)."""
    out: set[tuple[str, str]] = set()
    for t in texts:
        if t.strip():
            out |= {(kind, entity_key(kind, value)) for kind, value in find_entities(t, locale)}
    return frozenset(out)


def brand_contact_keys(contacts: Iterable[str]) -> frozenset[tuple[str, str]]:
    out = set()
    for c in contacts:
        c = c.strip()
        if "@" in c:
            out.add(("email", entity_key("email", c)))
        elif len(re.sub(r"\D", "", c)) >= 6:
            out.add(("phone", entity_key("phone", c)))
    return frozenset(out)


def mask(kind: str, value: str) -> str:
    """What a finding shows of a value: enough to recognise it, never a whole card or someone's address."""
    if kind == "email" and "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    tail = re.sub(r"\s", "", value)[-4:]
    return f"…{tail}"


# -- the check
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimSources:
    """What a draft may draw on besides the articles: the conversation and the shop's own facts."""

    thread: tuple[str, ...] = ()  # the customer's message and the earlier messages of the conversation
    facts: tuple[str, ...] = ()  # context-provider facts (order status ...)
    locale: str | None = None


@dataclass
class ClaimOutcome:
    text: str
    cited: list[str]
    findings: list[SafetyFinding] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)


class ClaimChecker:
    def __init__(self, brand_contacts: Iterable[str] = (), ours: Iterable[str] | None = None) -> None:
        """`ours`: texts we wrote whose values are examples, not claims (default: the slot questions, "your
        order number (for example NW-12345)")."""
        self.brand = brand_contact_keys(brand_contacts)
        if ours is None:
            ours = [a for spec in SlotResolver.load().book.slots.values() for a in spec.ask.values()]
        self.ours = keys_of(ours, None)

    def check(
        self,
        text: str,
        cited: Sequence[str],
        articles: Sequence[GroundingArticle],
        sources: ClaimSources,
    ) -> ClaimOutcome:
        """Drop every sentence with a claim that has no source of its own; cite the articles that ground."""
        cited = list(cited)
        locale = sources.locale
        article_text = {a.article_id: f"{a.title}\n{a.summary}\n{a.snippet}" for a in articles}
        known: list[frozenset[tuple[str, str]]] = []  # the conversation's and the facts' keys, found lazily

        def given(key: tuple[str, str]) -> bool:
            if not known:
                known.append(keys_of([*sources.thread, *sources.facts], locale))
            return key in known[0]

        fact_amounts = _all_amounts(sources.facts)
        thread_amounts = _all_amounts(sources.thread)
        findings: list[SafetyFinding] = []
        repairs: list[str] = []
        spans = sentence_spans(text)
        kept: dict[int, list[str]] = {}

        def cite(article_id: str) -> None:
            if article_id not in cited:
                cited.append(article_id)
                repairs.append("citation_added")

        for start, end, para in spans:
            sentence = text[start:end]
            problems: list[tuple[str, str]] = []  # (rule, reason)
            masked_sentence = sentence
            for ent_type, ent_value in _entities_of(sentence, locale):
                key = (ent_type, entity_key(ent_type, ent_value))
                if key in self.ours or given(key):
                    continue
                if ent_type in CONTACT_TYPES:
                    if key in self.brand:
                        continue
                    source = next(
                        (aid for aid, t in article_text.items() if key in _keys_of(t, locale)), None
                    )
                    if source is not None:
                        cite(source)
                        continue
                    rule = "ungrounded_contact"
                    reason = (
                        f"the {ent_type.replace('_', ' ')} is neither the customer's, nor in an article, "
                        "nor a configured brand contact"
                    )
                else:
                    rule = "foreign_identifier"
                    kind = ent_type.replace("_", " ")
                    reason = f"the {kind} is not one the customer gave or the shop's facts name"
                masked_sentence = masked_sentence.replace(ent_value, mask(ent_type, ent_value))
                problems.append((rule, reason))
            said = amounts(sentence)
            claim = is_done_claim(sentence)
            if claim:
                source = self._claim_source(sentence, said, sources.facts, article_text)
                if source is None:
                    problems.append(
                        (
                            "ungrounded_claim",
                            "it says something happened that no fact of the shop and no article sentence "
                            "states",
                        )
                    )
                elif source:
                    cite(source)
            money = {a for a in said if a[1] != "%"}
            if money and not claim:
                missing = money - fact_amounts - thread_amounts
                for amount in sorted(missing):
                    source = next((aid for aid, t in article_text.items() if amount in amounts(t)), None)
                    if source is not None:
                        cite(source)
                        continue
                    problems.append(
                        (
                            "ungrounded_amount",
                            f"{_amount_text(amount)} is in no fact of the shop, no article and nothing the "
                            "customer wrote",
                        )
                    )
            if not problems:
                kept.setdefault(para, []).append(sentence)
                continue
            for rule in dict.fromkeys(p[0] for p in problems):
                reason = "; ".join(dict.fromkeys(p[1] for p in problems if p[0] == rule))
                findings.append(
                    SafetyFinding(rule=rule, action="sentence_dropped", text=masked_sentence, reason=reason)
                )
        if not findings:
            return ClaimOutcome(text, cited, [], repairs)
        paragraphs = [" ".join(kept[p]) for p in sorted(kept)]
        return ClaimOutcome(
            "\n\n".join(paragraphs), cited, findings, [*repairs, "unsupported_sentence_removed"]
        )

    @staticmethod
    def _claim_source(
        sentence: str,
        said: frozenset[tuple[Decimal, str]],
        facts: Sequence[str],
        article_text: dict[str, str],
    ) -> str | None:
        """The empty string when a fact grounds the claim, the article id when an article sentence does,
        else None."""
        wanted = topics(sentence)
        for fact in facts:
            if wanted <= topics(fact) and said <= amounts(fact):
                return ""
        for aid, text in article_text.items():
            for other in sentences(text):
                if is_done_claim(other) and wanted <= topics(other) and said <= amounts(other):
                    return aid
        return None
