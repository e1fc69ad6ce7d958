"""Secrets never reach a report: the redactor on the shapes secrets take in consoles and properties."""

from __future__ import annotations

import pytest

from apflab.report.redact import MASK, Redactor

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAsecretbits\nmoresecret\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("login: root\nPassword: hunter2\n", "hunter2"),
        ("sshpass -p x ssh root@10.0.0.2 password=opensesame", "opensesame"),
        ("export API_KEY=abcd1234efgh", "abcd1234efgh"),
        ("db_password: 'two words'", "two words"),
        ("GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
        ("fetch https://user:pa55w0rd@example.org/repo.git", "pa55w0rd"),
        ("Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi.payload.sig"),
        (f"key follows\n{PEM}\nafter", "MIIEpAIBAAKCAQEAsecretbits"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA (console cut here", "b3BlbnNzaC1rZXktdjEAAAA"),
        ("aws AKIAABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP"),
    ],
)
def test_secrets_are_masked(text: str, secret: str) -> None:
    out = Redactor()(text)
    assert secret not in out
    assert MASK in out


@pytest.mark.parametrize(
    "text",
    ["pass 3 of 50 done", "passes=50", "auth failed for root", "secret: none", "postcopy_requests: 5", "bypass=1"],
)
def test_ordinary_words_stay(text: str) -> None:
    assert Redactor()(text) == text


def test_a_secret_property_is_hidden_everywhere_it_is_echoed() -> None:
    r = Redactor()
    r.add_from_properties({"ssh_password": "correct-horse", "target": "board"})
    assert r("the console echoed correct-horse by mistake") == f"the console echoed {MASK} by mistake"
    assert r.properties({"ssh_password": "correct-horse", "target": "board"}) == {
        "ssh_password": MASK,
        "target": "board",
    }
