"""A hostile target's repertoire, and the checks that what it says stays harmless.

The byte sequences a broken or malicious target may print (NUL, terminal escapes,
invalid UTF-8, XML's own syntax, megabyte lines, a private key), the places it may print
them (an ERR reply, console noise before a hang, stderr as it dies, the crash UART, the
console before its ready line, a HELLO), and what every result file and every line
shown to a user must then be: valid XML, bounded, free of control characters, and
still carrying the payload's marker (nothing lost). tests/hostile_agent.py prints them;
the tests in tests/test_hostile_*.py check them.
"""

from __future__ import annotations

import base64
import json
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

#: Each payload starts with a marker, so a result can be traced back to the fault.
MARKER = "HOSTILE:"


def _fake_key() -> bytes:
    """Private-key armour around random bytes (not a key: material shaped like one), with
    more lines after it than a console tail keeps, so the tail cuts the BEGIN line off."""
    rng = random.Random(13)
    body = base64.b64encode(bytes(rng.randrange(256) for _ in range(1200))).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join(
        ["-----BEGIN OPENSSH PRIVATE KEY-----", *lines, "-----END OPENSSH PRIVATE KEY-----", "$ "]
    ).encode()


FAKE_KEY = _fake_key()
#: The key's body lines: none may reach a report.
KEY_LINES = [ln for ln in FAKE_KEY.decode().splitlines() if len(ln) == 64]

PAYLOADS: dict[str, bytes] = {
    "nul": b"A\x00B\x00\x00C",
    "esc-csi": b"\x1b[2J\x1b[H\x1b[31mred\x1b[0m\x1b[?1049h",
    "esc-osc": b"\x1b]0;pwned title\x07\x1b]52;c;ZWNobyBwd25lZA==\x07\x1bP+q\x1b\\",
    "c1": "\u009b31m C1 CSI \u0085 NEL \u009d OSC".encode(),
    "bad-utf8": b"\xff\xfe\xc3\x28\xa0\xa1\xed\xa0\x80\xf4\x90\x80\x80",
    "nonchars": "\ufffe\uffff \U0010ffff".encode(),
    "xml-syntax": b"]]><![CDATA[x]]></failure><script>alert(1)</script>&#0;&#27;<!--",
    "cr-bs": b"really failed\rPASSED      \x08\x08\x08\x07\x0b\x0c",
    "key": FAKE_KEY,
    "megaline": b"M" * (1 << 20),
}

#: Where the target says it. ``flood`` is bytes with no newline at all, until it is killed.
CHANNELS = ("err", "noise", "stderr", "crash", "ready", "hello", "flood")


def faults(channel: str) -> list[str]:
    """The payloads served on ``channel``, one per boot after the first (a flood is one)."""
    return ["megaline"] if channel == "flood" else list(PAYLOADS)


def payload(name: str) -> bytes:
    """The payload between markers (a tail keeps the last lines of one of several lines)."""
    end = f" {MARKER}{name}".encode() if b"\n" in PAYLOADS[name] else b""
    return f"{MARKER}{name} ".encode() + PAYLOADS[name] + end


# ------------------------------------------------------------- the hostile lab

AGENT = Path(__file__).resolve().parent / "hostile_agent.py"


def hostile_lab(folder: Path, channels: tuple[str, ...] = CHANNELS) -> Path:
    """lab.yaml with a target ``hostile-<channel>`` per channel: the fake agent in QEMU's place."""
    state = folder / "state"
    state.mkdir(parents=True, exist_ok=True)
    targets = {}
    for ch in channels:
        targets[f"hostile-{ch}"] = {
            "drivers": {
                "QEMUProcessDriver": {
                    "qemu_bin": str(AGENT),
                    "machine": "virt,secure=on",
                    "accel": "tcg",
                    "extra_args": f"--hostile {ch} --state {state}",
                },
                "AgentDriver": {"profile": "spec", "reply_timeout": 1.0, "ready_timeout": 5.0, "events": []},
            }
        }
    path = folder / "lab.yaml"
    path.write_text(json.dumps({"targets": targets, "imports": ["apflab.lab"]}, indent=1))
    return path


CASES = """\
import pytest
from apflab.testing import spec


@spec("hostile", "a call to a hostile target fails with one clean, bounded message")
@pytest.mark.parametrize("fault", range({n}))
def test_call(guest, fault):
    guest.sdei.version()
"""


def hostile_cases(folder: Path) -> None:
    """testcases/ of one parametrized case per fault; run with --fresh-target-each."""
    cases = folder / "testcases"
    cases.mkdir(parents=True, exist_ok=True)
    n = max(len(faults(ch)) for ch in CHANNELS)
    (cases / "test_hostile.py").write_text(CASES.format(n=n))


def served(folder: Path) -> list[tuple[str, str]]:
    """(channel, payload) of every fault the fake agents served."""
    log = folder / "state" / "served"
    return [tuple(line.split()) for line in log.read_text().splitlines()] if log.exists() else []


# ------------------------------------------------------------------ checks

#: Characters XML 1.0 does not allow at all (even as character references).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
#: What must not reach a terminal or a result's text: C0 (but tab and newline), DEL, C1.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def xml_problems(path: Path, max_case_bytes: int) -> list[str]:
    """What is wrong with a JUnit file: not XML, control characters in a field, an
    oversized case. Empty when the file is fine."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [f"{path}: not UTF-8 ({exc})"]
    if _NOT_XML.search(text):
        return [f"{path}: characters XML does not allow"]
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        return [f"{path}: not XML ({exc})"]
    problems = []
    for case in root.iter("testcase"):
        size = len(ET.tostring(case))
        if size > max_case_bytes:
            problems.append(f"{path}: case {case.get('name')} is {size} bytes")
        for el in case.iter():
            for value in [el.text or "", *el.attrib.values()]:
                if _CONTROL.search(value.replace("\r", "")):
                    problems.append(f"{path}: control characters in <{el.tag}> of {case.get('name')}")
    return problems


def unclean(text: str) -> list[str]:
    """Control characters (ESC, NUL, C1, CR ...) in text meant for a terminal or a report."""
    return sorted({f"U+{ord(c):04X}" for c in _CONTROL.findall(text)} | ({"U+000D"} if "\r" in text else set()))
