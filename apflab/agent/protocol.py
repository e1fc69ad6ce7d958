"""The apflab agent protocol, version 1: lines to values and back.

One line per request and per reply, ASCII, tokens separated by spaces, numbers in
hex without ``0x`` (64-bit two's complement for negative values). It is small enough
to parse in freestanding C; docs/agent-protocol.md is the normative text. What the
requests and handler steps are is said once, in :mod:`apflab.agent.grammar`; this
module turns lines into :class:`~apflab.agent.grammar.Request` values and replies into
the values a Guest method returns, in both directions.

Replies: ``HELLO 1 key=value..``, ``EV key=value..`` (zero or more, before the final
line of a request that may cause handler entries), ``BLOB <hex>`` (before the final
line of ``HOST SAVE``), ``REGS <pc> <pstate> <x0> .. <x17>``, ``OK [values]``,
``ERR <reason>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apflab.abi.smccc import to_s64
from apflab.agent.grammar import (
    BLOB_CHUNK,
    MAX_CALL_ARGS,
    MAX_LINE,
    MAX_STEPS,
    VERSION,
    ProtocolError,
    Reply,
    Request,
    hexs,
    match,
    num,
)
from apflab.guest import CallResult, Delivery, GuestFacts, Landing, Regs

__all__ = [
    "BLOB_CHUNK",
    "MAX_CALL_ARGS",
    "MAX_LINE",
    "MAX_STEPS",
    "VERSION",
    "ProtocolError",
    "Request",
    "facts_of_hello",
    "format_err",
    "format_ev",
    "format_hello",
    "format_ok",
    "format_regs",
    "format_reply",
    "format_request",
    "hello_fields",
    "hexs",
    "is_blank",
    "num",
    "parse_ev",
    "parse_hello",
    "parse_regs",
    "parse_reply",
    "parse_request",
]

#: The first word of every line that ends a request's reply.
FINAL_WORDS = frozenset({"OK", "ERR", "HELLO", "REGS"})
#: Lines a reply may carry before its final line.
LEADING_WORDS = frozenset({"EV", "BLOB"})


def _check_line(line: str) -> list[str]:
    if len(line) > MAX_LINE:
        raise ProtocolError(f"line too long ({len(line)} > {MAX_LINE} characters)")
    if any(ord(c) < 0x20 or ord(c) > 0x7E for c in line):
        raise ProtocolError("line has non-printable or non-ASCII characters")
    words = line.split()
    if not words:
        raise ProtocolError("empty line")
    return words


def is_blank(line: str) -> bool:
    """A line of nothing but spaces (carriage returns dropped, as consoles add them) is not a
    request: it gets no reply (docs/agent-protocol.md, Framing; the C agent does the same)."""
    return not line.replace("\r", "").strip(" ")


def parse_request(line: str) -> Request:
    spec, rest = match(_check_line(line.strip()))
    return spec.parse(rest)


def format_request(req: Request) -> str:
    return req.spec.format(req)


# ----------------------------------------------------------------- replies


def format_ok(*values: int) -> str:
    return " ".join(["OK", *(hexs(v) for v in values)])


def format_err(reason: str) -> str:
    clean = " ".join(reason.split())
    clean = "".join(c if 0x20 <= ord(c) <= 0x7E else "?" for c in clean)
    return f"ERR {clean[: MAX_LINE - 4]}"


def format_ev(d: Delivery) -> str:
    results = ",".join(hexs(r) for r in d.results) or "-"
    parts = [
        "EV",
        f"seq={d.seq:x}",
        f"pe={d.pe:x}",
        f"depth={d.depth:x}",
        *(f"x{i}={hexs(v)}" for i, v in enumerate(d.x)),
        f"pstate={hexs(d.pstate)}",
        f"results={results}",
    ]
    if d.fin is not None:
        parts.append(f"fin={hexs(d.fin)}")
    if d.landed is not None:
        lnd = d.landed
        parts += [f"landed={hexs(lnd.pc)}", f"elr={hexs(lnd.elr)}", f"spsr={hexs(lnd.spsr)}"]
        parts.append(f"lpstate={hexs(lnd.pstate)}")
    return " ".join(parts)


def format_regs(regs: Regs) -> str:
    values = (regs.pc, regs.pstate, *regs.x, regs.elr, regs.spsr)
    return " ".join(["REGS", *(hexs(v) for v in values)])


def format_hello(fields: dict[str, str]) -> str:
    return " ".join(["HELLO", str(VERSION), *(f"{k}={v}" for k, v in fields.items())])


def _kv(words: list[str]) -> dict[str, str]:
    out = {}
    for w in words:
        key, sep, value = w.partition("=")
        if not sep or not key:
            raise ProtocolError(f"expected key=value, got {w[:30]!r}")
        out[key] = value
    return out


def parse_ev(line: str) -> Delivery:
    kv = _kv(line.split()[1:])
    try:
        results: tuple[int, ...] = ()
        if kv["results"] != "-":
            results = tuple(to_s64(num(r)) for r in kv["results"].split(","))
        landed = None
        if "landed" in kv:
            landed = Landing(num(kv["landed"]), num(kv["elr"]), num(kv["spsr"]), num(kv["lpstate"]))
        x = (num(kv["x0"]), num(kv["x1"]), num(kv["x2"]), num(kv["x3"]))
        fin = to_s64(num(kv["fin"])) if "fin" in kv else None
        return Delivery(num(kv["seq"]), num(kv["pe"]), num(kv["depth"]), x, num(kv["pstate"]), results, landed, fin)
    except KeyError as missing:
        raise ProtocolError(f"EV line lacks {missing}") from None


def parse_regs(line: str) -> Regs:
    words = line.split()
    if len(words) != 23:
        raise ProtocolError(f"REGS has 22 values (pc, pstate, x0..x17, elr, spsr), got {len(words) - 1}")
    values = [num(w) for w in words[1:]]
    return Regs(tuple(values[2:20]), values[0], values[1], values[20], values[21])


def parse_hello(line: str) -> tuple[int, dict[str, str]]:
    words = line.split()
    if len(words) < 2 or words[0] != "HELLO":
        raise ProtocolError(f"not a HELLO reply: {line[:60]!r}")
    try:
        version = int(words[1])
    except ValueError:
        raise ProtocolError(f"HELLO version is not a number: {words[1][:20]!r}") from None
    return version, _kv(words[2:])


def hello_fields(facts: GuestFacts) -> dict[str, str]:
    """HELLO's key=value fields for what a guest says of itself (``profile=-``: unknown)."""
    return {
        "agent": facts.agent,
        "conduit": facts.conduit,
        "el": str(facts.el),
        "pes": str(facts.pes),
        "mpidr": ",".join(hexs(m) for m in facts.mpidrs),
        "profile": facts.profile or "-",
        "ep": hexs(facts.entry_point),
        "resume": hexs(facts.resume_point),
        "vbar": hexs(facts.vbar),
        "caps": ",".join(sorted(facts.capabilities)),
    }


def facts_of_hello(fields: dict[str, str]) -> GuestFacts:
    """What a guest said of itself in HELLO; a missing or malformed key is a ProtocolError."""
    try:
        return GuestFacts(
            agent=fields.get("agent", "?"),
            conduit=fields["conduit"],
            el=int(fields["el"]),
            pes=int(fields["pes"]),
            mpidrs=tuple(num(m) for m in fields["mpidr"].split(",")),
            entry_point=num(fields["ep"]),
            resume_point=num(fields["resume"]),
            vbar=num(fields["vbar"]),
            capabilities=frozenset(c for c in fields.get("caps", "").split(",") if c),
            profile=None if fields.get("profile", "-") == "-" else fields["profile"],
        )
    except (KeyError, ValueError) as exc:
        raise ProtocolError(f"HELLO reply is incomplete ({type(exc).__name__}: {exc})") from None


def _ok_values(line: str) -> tuple[int, ...]:
    return tuple(num(w) for w in line.split()[1:])


# ------------------------------------------------ reply shapes, both directions


def _format_events(result: CallResult) -> list[str]:
    return [*(format_ev(d) for d in result.deliveries), format_ok(*result.x)]


def _format_blobs(image: bytes) -> list[str]:
    chunks = [image[i : i + BLOB_CHUNK] for i in range(0, len(image), BLOB_CHUNK)]
    return [*(f"BLOB {c.hex()}" for c in chunks), format_ok(len(image))]


_FORMAT: dict[Reply, Callable[[Any], list[str]]] = {
    Reply.DONE: lambda _: [format_ok()],
    Reply.VALUE: lambda value: [format_ok(value)],
    Reply.STATUS_VALUE: lambda pair: [format_ok(*pair)],
    Reply.EVENTS: _format_events,
    Reply.REGS: lambda regs: [format_regs(regs)],
    Reply.HELLO: lambda fields: [format_hello(fields)],
    Reply.BLOBS: _format_blobs,
}


def format_reply(shape: Reply, value: Any) -> list[str]:
    """The reply lines (the final one last) that carry ``value``, a Guest method's result."""
    return _FORMAT[shape](value)


def _parse_events(lines: list[str]) -> CallResult:
    deliveries = tuple(parse_ev(x) for x in lines[:-1] if x.startswith("EV"))
    x = (*_ok_values(lines[-1]), 0, 0, 0, 0)
    return CallResult((x[0], x[1], x[2], x[3]), deliveries)


def _parse_value(lines: list[str]) -> int:
    values = _ok_values(lines[-1])
    if len(values) != 1:
        raise ProtocolError(f"expected OK <value>, got {lines[-1][:60]!r}")
    return values[0]


def _parse_status_value(lines: list[str]) -> tuple[int, int]:
    values = _ok_values(lines[-1])
    if len(values) != 2:
        raise ProtocolError(f"expected OK <errno> <value>, got {lines[-1][:60]!r}")
    return to_s64(values[0]), values[1]


def _parse_blobs(lines: list[str]) -> bytes:
    return b"".join(bytes.fromhex(line.split()[1]) for line in lines if line.startswith("BLOB "))


_PARSE: dict[Reply, Callable[[list[str]], Any]] = {
    Reply.DONE: lambda _: None,
    Reply.VALUE: _parse_value,
    Reply.STATUS_VALUE: _parse_status_value,
    Reply.EVENTS: _parse_events,
    Reply.REGS: lambda lines: parse_regs(lines[-1]),
    Reply.HELLO: lambda lines: parse_hello(lines[-1]),
    Reply.BLOBS: _parse_blobs,
}


def parse_reply(shape: Reply, lines: list[str]) -> Any:
    """The value a Guest method returns, from a request's reply lines (the final one last)."""
    return _PARSE[shape](lines)
