"""Secrets out of everything a report shows: passwords, private keys, tokens, credentials in URLs.

Console tails and properties come from targets, and a target's console may echo what
was typed into it (a root password, an SSH key pasted into a shell). Every string from a
result file passes through :class:`Redactor` before it reaches a template, and before it
is trimmed: a key whose BEGIN line a tail cut off is still recognised by its body (runs
of base64 as long as a key's lines). The report's own escaping (HTML, Markdown) happens
after, in the templates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[REDACTED]"

_PEM = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY|[A-Z0-9 ]*KEY BLOCK)-----.*?(?:-----END \1-----|\Z)", re.DOTALL
)
_ASSIGN = re.compile(
    r"(?i)\b([a-z0-9_.-]*?(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|access[_-]?key|"
    r"private[_-]?key|credentials?)(?![a-z])[a-z0-9_.-]*|pass)\b"
    r"(\s*[:=]\s*)"
    r"(\"[^\"\n]*\"|'[^'\n]*'|[^\s,;&\"']+)"
)
_URL_CREDS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+):([^@\s/]+)@")
_AUTH_HEADER = re.compile(r"(?i)\b(authorization:\s*(?:bearer|basic|token)\s+)\S+")
#: A run of base64 as long as a line of a PEM or OpenSSH key body (64 or 70 characters;
#: 60 allows for a cut): a key whose armour lines a tail cut off is still a key.
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{60,}={0,2}(?![A-Za-z0-9+/=])")
_AWS_KEY = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
_SSH_PUBKEY_PRIVATE = re.compile(r"\b(?:sk-[A-Za-z0-9]{20,}|ghp_[A-Za-z0-9]{30,}|xox[bp]-[A-Za-z0-9-]{10,})\b")
#: property names whose values are secrets themselves
SECRET_NAMES = re.compile(r"(?i)(password|passwd|passphrase|secret|token|api[_-]?key|private[_-]?key|credential)")
#: words that look like a secret's name but whose value is harmless in our results
_HARMLESS_VALUES = {"", "none", "null", "-", "yes", "no", "true", "false", "required", "prompt", "*", MASK.lower()}


class Redactor:
    """Replaces secrets in text; ``literals`` are exact values to hide wherever they appear."""

    def __init__(self, literals: Iterable[str] = ()) -> None:
        words = sorted({s for s in literals if len(s) >= 4}, key=len, reverse=True)
        self._literals = re.compile("|".join(re.escape(w) for w in words)) if words else None

    def add_from_properties(self, props: dict[str, str]) -> None:
        """Values of properties named like secrets become literals to hide everywhere."""
        found = [v for k, v in props.items() if SECRET_NAMES.search(k) and v.strip().lower() not in _HARMLESS_VALUES]
        if not found:
            return
        old = self._literals.pattern.split("|") if self._literals else []
        words = sorted({*old, *(re.escape(v) for v in found if len(v) >= 4)}, key=len, reverse=True)
        self._literals = re.compile("|".join(words)) if words else None

    def __call__(self, text: str) -> str:
        if not text:
            return text
        text = _PEM.sub(f"{MASK} (private key)", text)
        text = _BASE64_RUN.sub(_key_body, text)
        if self._literals is not None:
            text = self._literals.sub(MASK, text)
        text = _URL_CREDS.sub(rf"\1:{MASK}@", text)
        text = _AUTH_HEADER.sub(rf"\1{MASK}", text)
        text = _AWS_KEY.sub(MASK, text)
        text = _SSH_PUBKEY_PRIVATE.sub(MASK, text)
        return _ASSIGN.sub(_assignment, text)

    def properties(self, props: dict[str, str]) -> dict[str, str]:
        return {k: (MASK if SECRET_NAMES.search(k) and v else self(v)) for k, v in props.items()}


def _key_body(m: re.Match[str]) -> str:
    """Key material mixes upper and lower case and digits; hex dumps (lower case and digits)
    and runs of one letter do not, and stay."""
    run = m.group()
    if any(c.isupper() for c in run) and any(c.islower() for c in run) and any(c.isdigit() for c in run):
        return f"{MASK} (key material)"
    return run


def _assignment(m: re.Match[str]) -> str:
    name, sep, value = m.group(1), m.group(2), m.group(3)
    if value.strip("\"'").lower() in _HARMLESS_VALUES or value == MASK:
        return m.group(0)
    return f"{name}{sep}{MASK}"
