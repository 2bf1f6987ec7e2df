"""Privacy guard: the labelled corpus (recall 100 %, bounded false positives), redaction,
message shapes and the checksum validators. Fast: pure functions over tests/data/privacy."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any, get_args

import pytest

from slmnode.router.privacy import (
    PLACEHOLDERS,
    Finding,
    Kind,
    bsn_ok,
    card_prefix_ok,
    dni_letter,
    iban_ok,
    luhn_ok,
    nir_ok,
    redact_messages,
    redact_text,
    scan_messages,
    scan_text,
    ssn_ok,
    steuer_id_ok,
    summary,
)

CORPUS_PATH = Path(__file__).resolve().parents[2] / "data" / "privacy" / "corpus.jsonl"
CORPUS: list[dict[str, Any]] = [json.loads(line) for line in CORPUS_PATH.read_text("utf-8").splitlines()]
POSITIVES = [row for row in CORPUS if row["pii"]]
NEGATIVES = [row for row in CORPUS if not row["pii"]]
# Measured: 1 of 274 non-PII snippets flagged (0.4 %); two held-out batches written blind measured
# 3 of 79 (3.8 %) before the fixes they prompted (docs/privacy-guard.md). The bound leaves room
# for a few new hard negatives without hiding a regression that flags ordinary text.
MAX_FALSE_POSITIVE_RATE = 0.02


# ---------------------------------------------------------------- the corpus itself

def test_corpus_is_valid() -> None:
    kinds = set(get_args(Kind))
    ids = [row["id"] for row in CORPUS]
    assert len(CORPUS) >= 300
    assert len(set(ids)) == len(ids), "ids must be unique"
    for row in CORPUS:
        assert set(row) == {"id", "text", "pii", "kinds"}, row["id"]
        assert isinstance(row["text"], str) and row["text"], row["id"]
        assert row["pii"] == bool(row["kinds"]), row["id"]
        assert set(row["kinds"]) <= kinds, row["id"]
    per_kind = Counter(kind for row in CORPUS for kind in row["kinds"])
    assert {k: per_kind[k] for k in kinds if per_kind[k] < 15} == {}, "every kind needs >= 15 positives"
    assert 0.40 <= len(POSITIVES) / len(CORPUS) <= 0.60


# ---------------------------------------------------------------- detection over the corpus

@pytest.mark.parametrize("row", POSITIVES, ids=[row["id"] for row in POSITIVES])
def test_every_pii_snippet_is_caught_with_its_kinds(row: dict[str, Any]) -> None:
    found = scan_text(row["text"])
    assert sorted({f.kind for f in found}) == row["kinds"]
    assert scan_messages([{"role": "user", "content": row["text"]}]), "the message path must agree"


def test_false_positive_rate_on_non_pii_snippets_is_bounded() -> None:
    flagged = [row["id"] for row in NEGATIVES if scan_text(row["text"])]
    assert len(flagged) / len(NEGATIVES) <= MAX_FALSE_POSITIVE_RATE, flagged


@pytest.mark.parametrize("row", POSITIVES, ids=[row["id"] for row in POSITIVES])
def test_redaction_removes_every_finding(row: dict[str, Any]) -> None:
    text = row["text"]
    redacted = redact_text(text)
    assert scan_text(redacted) == []
    for f in scan_text(text):
        assert text[f.start:f.end] not in redacted
    assert any(PLACEHOLDERS[k] in redacted for k in row["kinds"])


def test_redaction_leaves_clean_text_alone() -> None:
    for row in NEGATIVES:
        if not scan_text(row["text"]):
            assert redact_text(row["text"]) == row["text"]


# ---------------------------------------------------------------- per-kind spans and validators

@pytest.mark.parametrize(("text", "kind", "match"), [
    ("mail jane.doe@example.com now", "email", "jane.doe@example.com"),
    ("call (212) 555-0123 today", "phone", "(212) 555-0123"),
    ("tel +44 20 7946 0958.", "phone", "+44 20 7946 0958"),
    ("IBAN DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX", "iban", "DE89 3704 0044 0532 0130 00"),
    ("pay with 4111 1111 1111 1111 exp 12/27", "payment_card", "4111 1111 1111 1111"),
    ("SSN 078-05-1120.", "national_id", "078-05-1120"),
    ("NI AB 12 34 56 C", "national_id", "AB 12 34 56 C"),
    ("DNI 12345678Z", "national_id", "12345678Z"),
    ("BSN: 111222333", "national_id", "111222333"),
    ("export GITHUB_TOKEN=ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", "secret",
     "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"),
    ("password: hunter2", "secret", "hunter2"),
    ("Authorization: Bearer abcdef0123456789abcdef", "secret", "abcdef0123456789abcdef"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA==\n-----END OPENSSH PRIVATE KEY-----", "private_key",
     "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA==\n-----END OPENSSH PRIVATE KEY-----"),
    ("from 203.0.113.7 port 22", "ip_address", "203.0.113.7"),
    ("peer 2001:db8::17 up", "ip_address", "2001:db8::17"),
    ("blocked 2001:db8::1.", "ip_address", "2001:db8::1"),
    ("mapped ::ffff:198.51.100.7 up", "ip_address", "::ffff:198.51.100.7"),
    ("portable 06.12.34.56.78", "phone", "06.12.34.56.78"),
    ("db:\n  password: letmein\n", "secret", "letmein"),
    ("ship to 221B Baker Street, London", "street_address", "221B Baker Street"),
    ("Hauptstraße 12, Berlin", "street_address", "Hauptstraße 12"),
    ("au 12 rue de la Paix", "street_address", "12 rue de la Paix"),
])
def test_spans_per_kind(text: str, kind: str, match: str) -> None:
    found = scan_text(text, where="w")
    assert [(f.kind, text[f.start:f.end], f.where) for f in found] == [(kind, match, "w")]


@pytest.mark.parametrize("text", [
    "Python 3.11.4", "v10.0.0.1", "123e4567-e89b-12d3-a456-426614174000", "2026-03-02 10:30:00",
    "$1,299.00", "Order #4411-2093-7781", "4111 1111 1111 1112", "DE00 3704 0044 0532 0130 00",
    "Main Street", "password", "password: <your password here>", "127.0.0.1:8080", "netmask 255.255.255.0",
    "ISBN 978-0-306-40615-7", "git@github.com:org/repo.git", "token = os.environ['GITHUB_TOKEN']",
    "reset your password: click the link", "am 01.02.2024 um 10:30", "api_key = getenv('API_KEY')",
])
def test_hard_negatives(text: str) -> None:
    assert scan_text(text) == []


@pytest.mark.parametrize(("check", "good", "bad"), [
    (luhn_ok, ["4111111111111111", "378282246310005", "79927398713"], ["4111111111111112", "79927398710"]),
    (card_prefix_ok, ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"],
     ["1234567812345670", "378282246310005000", "9111111111111111"]),
    (iban_ok, ["DE89370400440532013000", "GB82 WEST 1234 5698 7654 32", "NL91ABNA0417164300"],
     ["DE88370400440532013000", "GB82WEST123456987654", "XX89370400440532013000"]),
    (bsn_ok, ["111222333", "123456782"], ["111222334", "000000000", "12345678"]),
    (steuer_id_ok, ["12345678995", "86095742719"], ["12345678990", "02345678995", "1234567899"]),
    (nir_ok, ["2 55 08 2A 123 456 46", "1 84 12 76 451 089 46"], ["1 84 12 76 451 089 47", "2 55 08 2B 123 456 46", "1 84 12 76 451"]),
])
def test_validators(check: Any, good: list[str], bad: list[str]) -> None:
    assert [check(v) for v in good] == [True] * len(good)
    assert [check(v) for v in bad] == [False] * len(bad)


def test_national_id_rules() -> None:
    assert ssn_ok("078", "05", "1120")
    assert not any(ssn_ok(*parts) for parts in [("000", "12", "3456"), ("666", "12", "3456"),
                                                ("900", "12", "3456"), ("123", "00", "4567"),
                                                ("123", "45", "0000")])
    assert dni_letter(12345678) == "Z"
    assert dni_letter(int("1" + "1234567")) == "X"  # NIE Y1234567X: Y counts as 1


# ---------------------------------------------------------------- messages

def _messages() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "Support agent. Escalations go to boss@example.com."},
        {"role": "user", "content": [{"type": "text", "text": "My card is 4111 1111 1111 1111"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,"
                                                                         "QUtJQUlPU0ZPRE5ON0VYQU1QTEU="}}]},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "send_mail",
                         "arguments": json.dumps({"to": "jane@example.org", "address": "Hauptstraße 12",
                                                  "cc": ["x@example.net"]})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"sent_from": "203.0.113.7"}'},
        {"role": "user", "name": "omar@example.com", "content": "thanks"},
        {"role": "assistant", "content": "ok", "tool_calls": [{
            "id": "call_2", "type": "function",
            "function": {"name": "lookup", "arguments": "not json: IBAN DE89 3704 0044 0532 0130 00"}}]},
    ]


def test_scan_messages_covers_every_shape() -> None:
    found = {(f.where, f.kind) for f in scan_messages(_messages())}
    assert found == {
        ("messages[0].content", "email"),
        ("messages[1].content[0].text", "payment_card"),
        ("messages[2].tool_calls[0].function.arguments.to", "email"),
        ("messages[2].tool_calls[0].function.arguments.address", "street_address"),
        ("messages[2].tool_calls[0].function.arguments.cc[0]", "email"),
        ("messages[3].content", "ip_address"),
        ("messages[4].name", "email"),
        ("messages[5].tool_calls[0].function.arguments", "iban"),
    }


def test_arguments_are_decoded_before_scanning() -> None:
    raw = '{"address": "Hauptstra\\u00dfe 12", "note": "ok"}'  # \u00df = ß, invisible in the raw JSON
    msgs = [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": raw}}]}]
    assert [f.kind for f in scan_messages(msgs)] == ["street_address"]


def test_numbers_in_arguments_are_scanned_and_redacted() -> None:
    msgs = [{"role": "assistant", "tool_calls": [{"function": {
        "name": "pay", "arguments": '{"card": 4111111111111111, "qty": 2, "gift": true}'}}]}]
    assert [(f.kind, f.where) for f in scan_messages(msgs)] == [
        ("payment_card", "messages[0].tool_calls[0].function.arguments.card")]
    args = json.loads(redact_messages(msgs)[0]["tool_calls"][0]["function"]["arguments"])
    assert args == {"card": "[CARD]", "qty": 2, "gift": True}


def test_where_never_contains_the_matched_text() -> None:
    msgs = [{"role": "assistant", "tool_calls": [{"function": {
        "name": "f", "arguments": json.dumps({"jane@example.org": {"note": "x@example.net"}})}}]}]
    found = scan_messages(msgs)
    assert {f.kind for f in found} == {"email"} and len(found) == 2
    assert all("@" not in f.where for f in found)


def test_redact_messages_is_a_deep_copy_of_the_same_shape() -> None:
    original = _messages()
    before = copy.deepcopy(original)
    redacted = redact_messages(original)
    assert original == before
    assert scan_messages(redacted) == []
    assert [sorted(m) for m in redacted] == [sorted(m) for m in original]
    args = json.loads(redacted[2]["tool_calls"][0]["function"]["arguments"])
    assert args == {"to": "[EMAIL]", "address": "[ADDRESS]", "cc": ["[EMAIL]"]}
    assert redacted[1]["content"][1] == original[1]["content"][1]  # image bytes untouched
    assert redacted[2]["tool_calls"][0]["id"] == "call_1"
    assert redacted[4]["name"] == "[EMAIL]"
    assert redacted[5]["tool_calls"][0]["function"]["arguments"] == "not json: IBAN [IBAN]"


def test_summary_counts_kinds_and_never_shows_text() -> None:
    text = "a@example.com, b@example.org, IBAN DE89 3704 0044 0532 0130 00"
    found = scan_text(text)
    assert summary(found) == "iban, email×2"
    assert summary([]) == ""
    assert all(text[f.start:f.end] not in summary(found) for f in found)
    with pytest.raises(AttributeError):
        found[0].kind = "phone"  # type: ignore[misc]
    assert isinstance(found[0], Finding)
