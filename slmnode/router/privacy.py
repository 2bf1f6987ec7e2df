"""Privacy guard: find PII and secrets in chat messages before anything may leave the box.

The router calls :func:`scan_messages` on every request; any finding keeps the request local
(or, if configured, :func:`redact_messages` rewrites it before it goes to a cloud upstream).
Detectors validate what a pattern finds (Luhn, ISO 13616 mod-97, ``ipaddress``, national-ID
check digits) so numbers that merely look alike (order numbers, hashes, versions) pass.
Findings carry kinds and offsets only: never log the matched text. Stdlib only; docs/privacy-guard.md.
"""

from __future__ import annotations

import copy
import ipaddress
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["email", "phone", "iban", "payment_card", "national_id", "secret", "private_key",
               "ip_address", "street_address"]
Span = tuple[int, int]

# Highest first: a finding inside a higher-priority one of another kind is dropped.
KINDS: tuple[Kind, ...] = ("private_key", "secret", "iban", "payment_card", "national_id", "email",
                           "ip_address", "phone", "street_address")
_RANK = {k: i for i, k in enumerate(KINDS)}
PLACEHOLDERS: dict[Kind, str] = {
    "email": "[EMAIL]", "phone": "[PHONE]", "iban": "[IBAN]", "payment_card": "[CARD]",
    "national_id": "[NATIONAL_ID]", "secret": "[SECRET]", "private_key": "[PRIVATE_KEY]",
    "ip_address": "[IP]", "street_address": "[ADDRESS]",
}


@dataclass(frozen=True)
class Finding:
    kind: Kind
    start: int  # offsets into the scanned string
    end: int
    where: str  # e.g. "messages[2].content"


# ---------------------------------------------------------------- validators (public: tests use them)
def luhn_ok(digits: str) -> bool:
    """Luhn (mod 10) check over a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_prefix_ok(digits: str) -> bool:
    """Issuer prefix and length of the major schemes (Visa, Mastercard, Amex, Discover, JCB,
    Diners, UnionPay, Maestro, Mir)."""
    n, p2, p3, p4 = len(digits), int(digits[:2]), int(digits[:3]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 in (34, 37):
        return n == 15
    if 2200 <= p4 <= 2204 or p2 in (62, 65) or p4 == 6011 or 644 <= p3 <= 649 or 3528 <= p4 <= 3589:
        return 16 <= n <= 19  # Mir, UnionPay, Discover, JCB
    if p2 in (36, 38, 39) or 300 <= p3 <= 305 or p4 == 3095:
        return 14 <= n <= 19  # Diners
    return (p2 == 50 or 56 <= p2 <= 69) and 13 <= n <= 19  # Maestro


IBAN_LENGTHS: dict[str, int] = {
    cc: int(n) for cc, n in re.findall(r"([A-Z]{2}):(\d+)", (
        "AD:24 AE:23 AL:28 AT:20 AZ:28 BA:20 BE:16 BG:22 BH:22 BR:29 BY:28 CH:21 CR:22 CY:28 CZ:24 "
        "DE:22 DK:18 DO:28 EE:20 EG:29 ES:24 FI:18 FO:18 FR:27 GB:22 GE:22 GI:23 GL:18 GR:27 GT:28 "
        "HR:21 HU:28 IE:22 IL:23 IQ:23 IS:26 IT:27 JO:30 KW:30 KZ:20 LB:28 LC:32 LI:21 LT:20 LU:20 "
        "LV:21 LY:25 MC:27 MD:24 ME:22 MK:19 MR:27 MT:31 MU:30 NL:18 NO:15 PK:24 PL:28 PS:29 PT:25 "
        "QA:29 RO:24 RS:22 SA:24 SC:31 SD:18 SE:24 SI:19 SK:24 SM:27 ST:25 SV:28 TL:23 TN:24 TR:26 "
        "UA:29 VA:22 VG:24 XK:20"))
}


def iban_ok(iban: str) -> bool:
    """ISO 13616: known country, its exact length, and mod-97 == 1 (spaces ignored)."""
    s = iban.replace(" ", "").upper()
    if IBAN_LENGTHS.get(s[:2]) != len(s) or not s[2:4].isdigit() or not s.isalnum():
        return False
    return int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """US SSN allocation rules: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def dni_letter(number: int) -> str:
    """Spanish DNI/NIE control letter."""
    return "TRWAGMYFPDXBNJZSQVHLCKE"[number % 23]


def bsn_ok(digits: str) -> bool:
    """Dutch BSN 11-test (9 digits)."""
    if len(digits) != 9 or digits == "000000000":
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
    return (total - int(digits[8])) % 11 == 0


def steuer_id_ok(digits: str) -> bool:
    """German Steuer-ID: 11 digits, no leading 0, ISO 7064 MOD 11,10 check digit."""
    if len(digits) != 11 or digits[0] == "0":
        return False
    product = 10
    for d in digits[:10]:
        s = (int(d) + product) % 10 or 10
        product = (s * 2) % 11
    return (11 - product) % 10 == int(digits[10])


def nir_ok(nir: str) -> bool:
    """French NIR (social security number): 13 chars + 2-digit key = 97 - n mod 97 (2A/2B: Corsica)."""
    s = nir.replace(" ", "").upper()
    body = s[:5] + {"2A": "19", "2B": "18"}.get(s[5:7], s[5:7]) + s[7:13]
    return len(s) == 15 and body.isdigit() and s[13:].isdigit() and 97 - int(body) % 97 == int(s[13:])


# ---------------------------------------------------------------- detectors
def _gated(rx: re.Pattern[str], text: str, hay: str, words: tuple[str, ...]) -> Iterator[re.Match[str]]:
    return rx.finditer(text) if any(w in hay for w in words) else iter(())  # skip without a trigger word


def _before(text: str, start: int, n: int = 32) -> str:
    """Up to ``n`` characters before ``start``, lower-cased, without a cut-off first word."""
    window = text[max(0, start - n):start].lower()
    return re.sub(r"^\w+", "", window) if start > n else window


_PEM = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
                  r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[\sA-Za-z0-9+/=:,\\-]*)",
                  re.DOTALL)
_PUTTY = re.compile(r"PuTTY-User-Key-File-\d: [^\n]*(?:\n[^\n]+){0,40}?\nPrivate-MAC: \S+")


def _private_keys(text: str) -> Iterator[Span]:
    yield from (m.span() for m in _gated(_PEM, text, text, ("PRIVATE KEY",)))
    yield from (m.span() for m in _gated(_PUTTY, text, text, ("PuTTY-User-Key-File",)))


_TOKEN = re.compile(
    r"(?=[sSrpgAxhneE])(?<![A-Za-z0-9_-])(?:"
    r"sk-(?:proj-|ant-(?:api\d\d-)?|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}"
    r"|(?:AKIA|ASIA)[A-Z0-9]{16}"
    r"|xox[bpars]-[A-Za-z0-9-]{10,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|glpat-[A-Za-z0-9_-]{20,}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|npm_[A-Za-z0-9]{36}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    r")(?![A-Za-z0-9_-])")
_AUTH_HEADER = re.compile(r"\b(?=[BT])(?:Bearer|Basic|Token)\s+([A-Za-z0-9._~+/-]{16,}=*)")
_URL_CREDS = re.compile(r"\b[a-z][a-z0-9+.-]*://([^\s:/@\"'<>]+:([^\s/@\"'<>]+)@[A-Za-z0-9.-]+)")
_SECRET_KEYS = (r"password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key"
                r"|private[_-]?key|client[_-]?secret|credentials?|auth[_-]?key")
_ASSIGN = re.compile(
    rf"(?i)(?=[pstac])({_SECRET_KEYS})(?:[\"']\]?|\])?[ \t]*(:=|=>|=|:|\s+is\s+)[ \t]*"
    r"(?:([\"'`])([^\"'`\n]{1,300}?)\3|([^\s\"'`,;})\]]+))")
_PLACEHOLDER = re.compile(
    r"(?i)^(?:\$.*|\{.*|<.*|%.*|\[[A-Z_]+\]|\*+|x+|\.+|-+|_+|none|null|nil|true|false|undefined"
    r"|str|string|int|bool|bytes|secretstr|optional.*|any|required|optional|redacted|hidden"
    r"|changeme|example|dummy|test|placeholder|your[_-].*|my[_-]?(?:password|secret|token|key).*"
    r"|.*[(\[].*|env\b.*|process\.env.*|os\.environ.*)$")
_CODE_REF = re.compile(r"^[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+$|^[a-z_]+$")


def _secret_value_ok(value: str, sep: str, line_rest: str) -> bool:
    if len(value) < 4 or _PLACEHOLDER.match(value) or value.isdigit() and len(value) < 9:
        return False
    low = value.lower()
    if _CODE_REF.match(value) and ("." in value or "_" in value or any(
            k in low for k in ("pass", "key", "token", "secret", "pwd", "cred"))):
        return False  # a variable or attribute: password=self.password, api_key=api_key
    secretish = bool(re.search(r"\d", value) and re.search(r"[A-Za-z]", value)) or bool(
        re.search(r"[^A-Za-z0-9]", value)) or (value != low and value != value.upper())
    if sep.strip() in ("", "is") or sep == ":":
        # prose ("your password: click the link", "the token is expired"): the value must look
        # like a secret, or be the only thing left on a "key: value" line
        return secretish and len(value) >= 6 or (sep == ":" and not line_rest.strip())
    return True


def _secrets(text: str) -> Iterator[Span]:
    yield from (m.span() for m in _TOKEN.finditer(text))
    for m in _gated(_AUTH_HEADER, text, text, ("Bearer", "Basic", "Token")):
        if not _PLACEHOLDER.match(m.group(1)) and re.search(r"\d", m.group(1)):
            yield m.span(1)
    for m in _gated(_URL_CREDS, text, text, ("://",)):
        if not _PLACEHOLDER.match(m.group(2)) and len(m.group(2)) >= 3:
            yield m.span(1)
    for m in _ASSIGN.finditer(text):
        group = 4 if m.group(4) is not None else 5  # quoted, else bare
        rest = text[m.end():m.end() + 300].split("\n", 1)[0]
        if _secret_value_ok(m.group(group).strip(), m.group(2) if group == 5 else "=", rest):
            yield m.span(group)


_IBAN = re.compile(r"([A-Za-z](?<![A-Za-z0-9].)[A-Za-z]\d{2}(?: ?[A-Za-z0-9]){8,32})")


def _ibans(text: str) -> Iterator[Span]:
    for m in _IBAN.finditer(text):
        want = IBAN_LENGTHS.get(m.group(1)[:2].upper(), 99)
        chars = [i for i, c in enumerate(m.group(1)) if c != " "]  # cut at the country's length
        end = m.start() + chars[want - 1] + 1 if len(chars) >= want else 0
        if end and not text[end:end + 1].isalnum() and iban_ok(text[m.start():end]):
            yield m.start(), end


_CARD = re.compile(r"\d(?<![\w.-].)(?<![A-Z]{2}\d\d .)(?<!\d[ -].)\d{3}(?:[ -]?\d{2,7}){2,5}(?![\w]|[.-]\d)")
_REF_WORDS = re.compile(r"\b(?:order|invoice|inv|ticket|ref|reference|tracking|case|account|acct"
                        r"|isbn|sku|part|serial|po|id|no|nr|batch|lot|txn|transaction|booking)\b|#")


def _cards(text: str) -> Iterator[Span]:
    for m in _CARD.finditer(text):
        raw = m.group()
        groups = re.split(r"[ -]", raw)
        if len(groups) == 1 and _REF_WORDS.search(_before(text, m.start(), 16)):
            continue
        # longest run of whole groups that is a valid card (trailing numbers may follow one)
        for k in range(len(groups), 0, -1):
            digits = "".join(groups[:k])
            if len("".join(groups[k:])) > 4:
                break  # more than a CVC/expiry follows: part of a longer number
            if 13 <= len(digits) <= 19 and card_prefix_ok(digits) and luhn_ok(digits):
                yield m.start(), m.start() + len(" ".join(groups[:k]))
                break


_SSN = re.compile(r"(\d(?<![\w-].)\d{2})([- ])(\d{2})\2(\d{4})(?![\w]|-\d)")
_SSN_KW = re.compile(r"(?i)\b(?:ssn|social security|soc\.? sec)\b")
_NINO = re.compile(r"[A-CEGHJ-PR-TW-Z](?<![A-Za-z0-9].)[A-CEGHJ-NPR-TW-Z](?<!BG|GB|NK|KN|TN|NT|ZZ)"
                   r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])")
_DNI = re.compile(r"\d(?<![A-Za-z0-9].)\d{7}[ -]?[A-Z](?![A-Za-z0-9])")
_NIE = re.compile(r"[XYZ](?<![A-Za-z0-9].)[ -]?\d{7}[ -]?[A-Z](?![A-Za-z0-9])")
_KW_NUMBER = re.compile(r"(?i)\b(?=[bsit])(bsn|burgerservicenummer|sofinummer|sofi-nummer|steuer-?id"
                        r"|steuer-?idnr|steuerliche identifikationsnummer|identifikationsnummer|idnr|tin)\b"
                        r"[^\d\n]{0,24}(\d[\d ]{7,14}\d)")
_NIR = re.compile(r"([1-478])(?<!\w.) ?(\d{2}) ?(0[1-9]|1[0-2]|[2-9]\d) ?(\d{2}|2[AB]) ?(\d{3})"
                  r" ?(\d{3}) ?(\d{2})(?![\w])")


def _national_ids(text: str) -> Iterator[Span]:
    for m in _SSN.finditer(text):
        if ssn_ok(m.group(1), m.group(3), m.group(4)) and (
                m.group(2) == "-" or _SSN_KW.search(_before(text, m.start(), 40))):
            yield m.span()
    yield from (m.span() for m in _NINO.finditer(text))  # shape only: NINO has no check digit
    for m in itertools.chain(_DNI.finditer(text), _NIE.finditer(text)):
        raw = m.group().replace(" ", "").replace("-", "")
        number = str("XYZ".find(raw[0])) + raw[1:-1] if raw[0] in "XYZ" else raw[:-1]
        if dni_letter(int(number)) == raw[-1]:
            yield m.span()
    words = ("bsn", "burger", "sofi", "steuer", "idnr", "identifikation", " tin ", "tin:", "tin-")
    for m in _gated(_KW_NUMBER, text, text.lower(), words):
        digits = m.group(2).replace(" ", "")
        if (m.group(1).lower().startswith(("bsn", "burger", "sofi")) and bsn_ok(digits.zfill(9))) \
                or steuer_id_ok(digits):
            yield m.span(2)
    yield from (m.span() for m in _NIR.finditer(text) if nir_ok(m.group()))


_EMAIL_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_EMAIL = re.compile(r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]"
                    r"{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])")


def _emails(text: str) -> Iterator[Span]:
    for m in _gated(_EMAIL, text, text, ("@",)):  # the domain; then walk back over the local part
        start = m.start()
        while start > 0 and m.start() - start < 64 and text[start - 1] in _EMAIL_LOCAL:
            start -= 1
        while start < m.start() and not text[start].isalnum():
            start += 1
        # not "git@host:org/repo" (an scp path), not a 65+ character run
        if start < m.start() and not re.match(r"[\w~/:]{2}", text[m.end():m.end() + 2]) and not (
                start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_")):
            yield start, m.end()


_IPV4 = re.compile(r"\d(?<![\w.-].)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?:/\d{1,2})?(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?=[0-9A-Fa-f:])(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}"
                   r"(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?:/\d{1,3})?(?![\w:]|\.\d)")
_VERSION_CTX = re.compile(r"\b(?:version|ver|release|build|firmware|fw|v|rev|oid|snmp)\W{0,3}$")
_MASK_OCTETS = {"0", "128", "192", "224", "240", "248", "252", "254", "255"}


def _ip_host(candidate: str) -> bool:
    """A single host worth protecting: not loopback/unspecified/multicast/link-local, not a
    netmask, not a network (``10.0.0.0/8``, bare ``x.y.z.0``) nor a broadcast address."""
    host, octets = candidate.split("/")[0], candidate.split("/")[0].split(".")
    try:
        addr, network = ipaddress.ip_address(host), ipaddress.ip_network(candidate, strict=False)
    except ValueError:
        return False
    if "/" in candidate and addr == network.network_address or addr.version == 4 and (
            octets[0] == "255" and set(octets) <= _MASK_OCTETS or octets[3] in ("0", "255")):
        return False
    return not (addr.is_loopback or addr.is_unspecified or addr.is_multicast or addr.is_link_local)


def _ips(text: str) -> Iterator[Span]:
    yield from (m.span() for m in _IPV4.finditer(text)
                if not _VERSION_CTX.search(_before(text, m.start(), 12)) and _ip_host(m.group()))
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6.finditer(text):
            if any(c.isdigit() for c in m.group()) and _ip_host(m.group()):
                yield m.span()


_PHONE_KW = re.compile(r"(?i)\b(?:phone|tel|mobile|cell|fax|call|ring|text me|whatsapp|sms|contact"
                       r"|telefon|handy|mobil|téléphone|tél|portable|teléfono|móvil|telefoon)")
_PHONE_INTL = re.compile(r"(?=[+0])(?<![\w+])(?:\+|00(?=[1-9]\d{0,2}[ .-]))[1-9]\d{0,2}"
                         r"(?:[ .-]?\(?\d{1,5}+\)?){1,6}+(?!\w)")  # possessive: no backtracking
_PHONE_NANP = re.compile(r"(?=[(\d])(?<![\w+.-])(?<!\d[ -])(?:1[ .-])?(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[ .-])"
                         r"\d{3}[ .-]\d{4}(?![\w]|[.-]\d)")
_PHONE_NATIONAL = re.compile(r"0(?<![\w+./-].)(?<!\d[ -].)(?:\d{1,4}[ /-][1-9]\d{1,7}(?:[ /-]\d{2,8}){0,3}"
                             r"|[1-9](?:\.\d{2}){4})(?![\w]|[ ./-]\d)")
_PHONE_BARE = re.compile(r"(?=[+\d])(?<![\w+.-])(?:\+?\d{7,15}|\d{3}-\d{4})(?![\w]|[.-]\d)")
_PHONE_BARE_WORDS = ("phone", "tel", "mobile", "cell", "fax", "call", "handy", "sms", "whatsapp")
_PHONE_BARE_KW = re.compile(rf"(?:{'|'.join(_PHONE_BARE_WORDS)})\w*\W{{0,12}}$")
_DATE = re.compile(r"\b(?:\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\d{4}[/.-]\d{1,2}[/.-]\d{1,2})\b")


def _phones(text: str) -> Iterator[Span]:
    for rx, lo, hi in ((_PHONE_INTL, 8, 15), (_PHONE_NANP, 10, 11), (_PHONE_NATIONAL, 9, 12)):
        for m in rx.finditer(text):
            if not lo <= sum(c.isdigit() for c in m.group()) <= hi or _DATE.search(m.group()) and (
                    m.group()[2:3] != "." or len(m.group()) != 14):  # 06.12.34.56.78 is no date
                continue
            before = _before(text, m.start())
            if not _PHONE_KW.search(before) and (
                    _REF_WORDS.search(before) or m.group().startswith("00")):
                continue
            yield m.span()
    yield from (m.span() for m in _gated(_PHONE_BARE, text, text.lower(), _PHONE_BARE_WORDS)
                if _PHONE_BARE_KW.search(_before(text, m.start(), 24)))  # right after a phone word


_STREET_SUFFIX = (r"Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Court|Ct|Place|Pl"
                  r"|Terrace|Way|Highway|Hwy|Parkway|Pkwy|Square|Sq|Circle|Cir|Close|Crescent|Row|Alley"
                  r"|Gardens|Grove|Mews|Approach|Walk")
_STREET_EN = re.compile(rf"\d(?<![\w.,-].)\d{{0,4}}[A-Za-z]?(?:-\d{{1,5}})?,? (?:[NSEW]\.? )?"
                        rf"(?:[A-Z][a-z'’.-]+ ){{1,4}}(?:{_STREET_SUFFIX})\b\.?")
_STREET_DE = re.compile(r"\b[A-ZÄÖÜ][a-zäöüß]+(?:-[A-ZÄÖÜa-zäöüß][a-zäöüß]+)*"
                        r"(?:straße|strasse|str\.|weg|gasse|platz|allee|damm|ufer|straat|laan|gracht|plein"
                        r"|kade|steig|chaussee) ?\d{1,4}(?: ?[a-z])?(?![\w]|[.,]\d)"
                        r"|\b[A-ZÄÖÜ][a-zäöüß]+(?:er|es|e) (?:Straße|Strasse|Weg|Platz|Allee|Ring"
                        r"|Gasse) \d{1,4}[a-z]?\b")
_STREET_FR = re.compile(r"(?i:\b\d{1,4}(?: ?(?:bis|ter))?,? (?:rue|avenue|av\.|boulevard|bd|place|allée"
                        r"|impasse|chemin|quai|route|cours) )(?:(?:de la|de l'|du|des|de|d'|la|le|l')"
                        r" ?)?[A-ZÉÈ][\w'’-]+")
_STREET_SOUTH = re.compile(r"\b(?=[CVPRT])(?:Calle|Avenida|Via|Viale|Piazza|Corso|Rua|Carrer|Plaza|Paseo"
                           r"|Travessa) (?:(?:de la|de|del|la|di|della|dei|do|da|dos) )?[A-Z][\w'’-]+"
                           r"(?: [A-Z][\w'’-]+)?,? (?:n[º°.]? ?)?\d{1,4}\b")


def _streets(text: str) -> Iterator[Span]:
    low = text.lower()
    for m in itertools.chain(
            _STREET_EN.finditer(text),
            _gated(_STREET_DE, text, low, ("straße", "strasse", "str.", "weg", "gasse", "platz", "allee",
                                           "damm", "ufer", "straat", "laan", "gracht", "plein", "kade",
                                           "steig", "chaussee", "er ring ")),
            _gated(_STREET_FR, text, low, (" rue ", " av", " bd ", " place ", " allée ", " impasse ",
                                           " chemin ", " quai ", " route ", " cours ")),
            _gated(_STREET_SOUTH, text, text, ("Calle", "Avenida", "Via", "Piazza", "Corso", "Rua", "Carrer",
                                               "Plaza", "Paseo", "Travessa"))):
        year = re.match(r"(1[89]|20)\d\d ", m.group())
        if not (year and re.search(r"\b(?:in|since|until|by|from|of|circa|year)\s*$",
                                   _before(text, m.start(), 12))):
            yield m.span()  # "in 1999 Park Lane opened": a year, not a house number


DETECTORS: dict[Kind, Callable[[str], Iterator[Span]]] = {
    "private_key": _private_keys, "secret": _secrets, "iban": _ibans, "payment_card": _cards,
    "national_id": _national_ids, "email": _emails, "ip_address": _ips, "phone": _phones,
    "street_address": _streets,
}

# ---------------------------------------------------------------- public API
def scan_text(text: str, where: str = "") -> list[Finding]:
    """All findings in ``text``, sorted by offset. A finding that lies wholly inside another of
    higher priority (or a longer one of its own kind) is dropped; partial overlaps are kept."""
    candidates = [Finding(kind, start, end, where) for kind in KINDS if text
                  for start, end in DETECTORS[kind](text) if end > start]
    # sweep by start; a container always sorts before what it contains
    candidates.sort(key=lambda f: (f.start, -f.end, _RANK[f.kind]))
    kept: list[Finding] = []
    active: list[Finding] = []
    for f in candidates:
        active = [g for g in active if g.end > f.start]
        if not any(g.end >= f.end and (_RANK[g.kind] < _RANK[f.kind] or g.kind == f.kind)
                   for g in active):
            kept.append(f)
        active.append(f)
    return kept


_SKIP_KEYS = frozenset({"role", "type", "tool_call_id", "id", "index"})  # protocol, not user data
_SAFE_KEY = re.compile(r"[A-Za-z_][\w-]{0,40}")


def _walk(value: Any, where: str, on_str: Callable[[str, str], str], in_json: bool = False) -> Any:
    """Rebuild a message (``in_json``: parsed tool-call arguments, keys too) from ``on_str(text, where)``
    over its user-data strings. ``where`` never holds scanned text: an odd key shows as ``#n``."""
    if isinstance(value, str):
        if value.startswith("data:") and ";base64," in value[:80]:
            return value  # inline image/audio bytes: nothing to read as text
        return on_str(value, where)
    if in_json and isinstance(value, int) and not isinstance(value, bool):  # {"card": 4111111111111111}
        return value if (text := on_str(str(value), where)) == str(value) else text
    if isinstance(value, list):
        return [_walk(v, f"{where}[{i}]", on_str, in_json) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for n, (key, v) in enumerate(value.items()):
        path = f"{where}.{key}" if isinstance(key, str) and _SAFE_KEY.fullmatch(key) else f"{where}.#{n}"
        if in_json:
            out[on_str(key, f"{path}(key)")] = _walk(v, path, on_str, True)
        elif key in _SKIP_KEYS and not isinstance(v, (dict, list)) or key == "images":
            out[key] = v  # protocol fields; Ollama's base64 images
        elif key == "arguments" and isinstance(v, str):
            try:
                parsed, is_json = json.loads(v), True
            except ValueError:  # not JSON: scan the raw string
                parsed, is_json = v, False
            rebuilt = _walk(parsed, path, on_str, True)
            out[key] = v if rebuilt == parsed else (
                json.dumps(rebuilt, ensure_ascii=False) if is_json else rebuilt)
        else:
            out[key] = _walk(v, path, on_str)
    return out


def scan_messages(messages: list[dict[str, Any]]) -> list[Finding]:
    """Findings in every message of any role: content (string or parts), name, tool_calls
    (function name and the JSON ``arguments``, parsed), tool results and any other string field.
    ``tools`` definitions are not part of ``messages`` and are not scanned."""
    findings: list[Finding] = []

    def collect(text: str, where: str) -> str:
        findings.extend(scan_text(text, where))
        return text
    for i, message in enumerate(messages):
        _walk(message, f"messages[{i}]", collect)
    return findings


def _redact_once(text: str) -> str:
    spans = sorted(((f.start, f.end, f.kind) for f in scan_text(text)), key=lambda s: (s[0], -s[1]))
    merged: list[list[Any]] = []
    for start, end, kind in spans:
        if merged and start < merged[-1][1]:  # overlap: one placeholder, the higher-priority kind
            last = merged[-1]
            last[1], last[2] = max(last[1], end), min(last[2], kind, key=_RANK.__getitem__)
        else:
            merged.append([start, end, kind])
    out, pos = [], 0
    for start, end, kind in merged:
        out += [text[pos:start], PLACEHOLDERS[kind]]
        pos = end
    return "".join(out) + text[pos:]


def redact_text(text: str) -> str:
    """``text`` with each finding replaced by its placeholder ("[EMAIL]", "[CARD]", …);
    repeated until a re-scan finds nothing (at most 3 passes)."""
    for _ in range(3):
        if not scan_text(text):
            break
        text = _redact_once(text)
    return text


def redact_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A deep copy of ``messages`` of the same shape, every scanned string redacted."""
    return [_walk(copy.deepcopy(m), f"messages[{i}]", lambda s, _w: redact_text(s))
            for i, m in enumerate(messages)]


def summary(findings: list[Finding]) -> str:
    """Kinds and counts in priority order, e.g. "secret, email×2"; never the matched text."""
    counts = Counter(f.kind for f in findings)
    return ", ".join(k if counts[k] == 1 else f"{k}×{counts[k]}" for k in KINDS if counts[k])
