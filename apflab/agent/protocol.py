"""The apflab agent protocol, version 1: grammar, parsing and formatting.

One line per request and per reply, ASCII, tokens separated by spaces, numbers in
hex without ``0x`` (64-bit two's complement for negative values). It is small enough
to parse in freestanding C; docs/agent-protocol.md is the normative text and this
module follows it line by line.

Requests::

    HELLO
    PE <n>
    HANDLER <arg> COMPLETE <status> [ONCE] [; <step>]...
    HANDLER <arg> RESUME <address|-> [ONCE] [; <step>]...
        <step> = <fid> [<a1> ..] | INJECT <pe> <event> | IRQ <pe> <intid>
    CALL <fid> [<a1> .. <a17>]
    REGS
    INJECT <pe> <event>
    IRQ <pe> <intid>
    RESET
    MEM R32 <gpa> | MEM W32 <gpa> <value>
    HOST FAULT <pe> <gfn> <privileged> [<latency_us>] | HOST TICK <us>
    HOST APF <pe|vm> <cmd> [<value>] | HOST IRQLEVEL <pe> <intid>
    HOST SAVE | HOST LOAD <hex|-> | HOST RESTORE [SNAP]
        (handler steps may also be R32 <gpa>, W32 <gpa> <value>, FAULT <pe> <gfn> <priv>, SNAP)

Replies: ``HELLO 1 key=value..``, ``EV key=value..`` (zero or more, before the final
line of a CALL/INJECT/IRQ), ``REGS <pc> <pstate> <x0> .. <x17>``, ``OK [values]``,
``ERR <reason>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from apflab.abi.smccc import MASK64, to_s64
from apflab.guest import (
    Call,
    Delivery,
    Fault,
    Handler,
    HandlerStep,
    Inject,
    Irq,
    Landing,
    Read32,
    Regs,
    Snapshot,
    Write32,
)

VERSION = 1
MAX_LINE = 512
MAX_STEPS = 24
MAX_CALL_ARGS = 17


class ProtocolError(ValueError):
    """A line that does not follow the grammar; the message is the ERR reason."""


# ---------------------------------------------------------------- numbers


def num(token: str) -> int:
    """Parse a hex number of at most 64 bits."""
    if not token or len(token) > 16 or any(c not in "0123456789abcdefABCDEF" for c in token):
        if token and all(c in "0123456789abcdefABCDEF" for c in token):
            raise ProtocolError(f"number over 64 bits: {token[:20]}")
        raise ProtocolError(f"not a hex number: {token[:20]!r}")
    return int(token, 16)


def hexs(value: int) -> str:
    return format(value & MASK64, "x")


# --------------------------------------------------------------- requests


@dataclass(frozen=True)
class Hello:
    pass


@dataclass(frozen=True)
class SelectPe:
    pe: int


@dataclass(frozen=True)
class SetHandler:
    arg: int
    handler: Handler


@dataclass(frozen=True)
class CallRequest:
    fid: int
    args: tuple[int, ...]


@dataclass(frozen=True)
class RegsRequest:
    pass


@dataclass(frozen=True)
class InjectRequest:
    pe: int
    event: int


@dataclass(frozen=True)
class IrqRequest:
    pe: int
    intid: int


@dataclass(frozen=True)
class Reset:
    pass


@dataclass(frozen=True)
class MemRead32:
    gpa: int


@dataclass(frozen=True)
class MemWrite32:
    gpa: int
    value: int


@dataclass(frozen=True)
class HostFault:
    pe: int
    gfn: int
    privileged: bool
    latency_us: int | None = None


@dataclass(frozen=True)
class HostTick:
    us: int


@dataclass(frozen=True)
class HostApf:
    pe: int | None  # None: the VM file descriptor
    cmd: int
    value: int = 0


@dataclass(frozen=True)
class HostIrqLevel:
    pe: int
    intid: int


@dataclass(frozen=True)
class HostSave:
    pass


@dataclass(frozen=True)
class HostLoad:
    data: bytes | None  # None: forget what was loaded


@dataclass(frozen=True)
class HostRestore:
    snapshot: bool = False


#: Bytes of migration image per BLOB / HOST LOAD line (hex doubles it; stays under MAX_LINE).
BLOB_CHUNK = 240

Request = (
    Hello | SelectPe | SetHandler | CallRequest | RegsRequest | InjectRequest | IrqRequest | Reset
    | MemRead32 | MemWrite32 | HostFault | HostTick | HostApf | HostIrqLevel | HostSave | HostLoad | HostRestore
)  # fmt: skip


def _check_line(line: str) -> list[str]:
    if len(line) > MAX_LINE:
        raise ProtocolError(f"line too long ({len(line)} > {MAX_LINE} characters)")
    if any(ord(c) < 0x20 or ord(c) > 0x7E for c in line):
        raise ProtocolError("line has non-printable or non-ASCII characters")
    words = line.split()
    if not words:
        raise ProtocolError("empty line")
    return words


def _arity(words: list[str], n: int) -> None:
    if len(words) != n + 1:
        raise ProtocolError(f"{words[0]} takes {n} argument(s), got {len(words) - 1}")


def _parse_step(words: list[str]) -> HandlerStep:
    if not words:
        raise ProtocolError("empty handler step")
    head = words[0].upper()
    if head in ("INJECT", "IRQ"):
        _arity(words, 2)
        a, b = num(words[1]), num(words[2])
        return Inject(a, b) if head == "INJECT" else Irq(a, b)
    if head == "R32":
        _arity(words, 1)
        return Read32(num(words[1]))
    if head == "W32":
        _arity(words, 2)
        return Write32(num(words[1]), num(words[2]))
    if head == "FAULT":
        _arity(words, 3)
        return Fault(num(words[1]), num(words[2]), bool(num(words[3])))
    if head == "SNAP":
        _arity(words, 0)
        return Snapshot()
    values = [num(w) for w in words]
    if len(values) - 1 > MAX_CALL_ARGS:
        raise ProtocolError(f"a call takes at most {MAX_CALL_ARGS} arguments")
    return Call(values[0], *values[1:])


def _parse_handler(words: list[str]) -> SetHandler:
    line = " ".join(words[1:])
    parts = [p.split() for p in line.split(";")]
    head = parts[0]
    once = len(head) == 4 and head[3].upper() == "ONCE"
    if len(head) != 3 and not once:
        raise ProtocolError("HANDLER <arg> COMPLETE <status> [ONCE] | HANDLER <arg> RESUME <address|-> [ONCE]")
    arg = num(head[0])
    kind = head[1].upper()
    steps = tuple(_parse_step(p) for p in parts[1:])
    if len(steps) > MAX_STEPS:
        raise ProtocolError(f"a handler makes at most {MAX_STEPS} calls")
    if kind == "COMPLETE":
        return SetHandler(arg, Handler(steps, "complete", status=num(head[2]), once=once))
    if kind == "RESUME":
        where = None if head[2] == "-" else num(head[2])
        return SetHandler(arg, Handler(steps, "resume", resume_at=where, once=once))
    raise ProtocolError(f"a handler finishes with COMPLETE or RESUME, not {head[1]!r}")


def parse_request(line: str) -> Request:
    words = _check_line(line.strip())
    cmd = words[0].upper()
    if cmd == "HELLO":
        _arity(words, 0)
        return Hello()
    if cmd == "PE":
        _arity(words, 1)
        return SelectPe(num(words[1]))
    if cmd == "HANDLER":
        return _parse_handler(words)
    if cmd == "CALL":
        if len(words) < 2:
            raise ProtocolError("CALL needs a function ID")
        if len(words) - 2 > MAX_CALL_ARGS:
            raise ProtocolError(f"CALL takes at most {MAX_CALL_ARGS} arguments (x1..x17)")
        values = [num(w) for w in words[1:]]
        return CallRequest(values[0], tuple(values[1:]))
    if cmd == "REGS":
        _arity(words, 0)
        return RegsRequest()
    if cmd == "INJECT":
        _arity(words, 2)
        return InjectRequest(num(words[1]), num(words[2]))
    if cmd == "IRQ":
        _arity(words, 2)
        return IrqRequest(num(words[1]), num(words[2]))
    if cmd == "RESET":
        _arity(words, 0)
        return Reset()
    if cmd == "MEM" and len(words) >= 2:
        sub = words[1].upper()
        if sub == "R32" and len(words) == 3:
            return MemRead32(num(words[2]))
        if sub == "W32" and len(words) == 4:
            return MemWrite32(num(words[2]), num(words[3]))
        raise ProtocolError("MEM R32 <gpa> | MEM W32 <gpa> <value>")
    if cmd == "HOST" and len(words) >= 2:
        return _parse_host(words[1].upper(), words[2:])
    raise ProtocolError(f"unknown command {words[0][:20]!r}")


def _parse_host(sub: str, args: list[str]) -> Request:
    n = len(args)
    if sub == "FAULT" and n in (3, 4):
        return HostFault(num(args[0]), num(args[1]), bool(num(args[2])), num(args[3]) if n == 4 else None)
    if sub == "TICK" and n == 1:
        return HostTick(num(args[0]))
    if sub == "APF" and n in (2, 3):
        pe = None if args[0].lower() == "vm" else num(args[0])
        return HostApf(pe, num(args[1]), num(args[2]) if n == 3 else 0)
    if sub == "IRQLEVEL" and n == 2:
        return HostIrqLevel(num(args[0]), num(args[1]))
    if sub == "SAVE" and n == 0:
        return HostSave()
    if sub == "LOAD" and n == 1:
        if args[0] == "-":
            return HostLoad(None)
        try:
            return HostLoad(bytes.fromhex(args[0]))
        except ValueError:
            raise ProtocolError("HOST LOAD takes hex bytes (an even number of hex digits)") from None
    if sub == "RESTORE" and n <= 1:
        if n == 1 and args[0].upper() != "SNAP":
            raise ProtocolError("HOST RESTORE [SNAP]")
        return HostRestore(n == 1)
    raise ProtocolError(f"bad HOST request {sub[:12]!r}: see docs/agent-protocol.md")


def _format_step(step: HandlerStep) -> str:
    if isinstance(step, Inject):
        return f"INJECT {hexs(step.pe)} {hexs(step.event)}"
    if isinstance(step, Irq):
        return f"IRQ {hexs(step.pe)} {hexs(step.intid)}"
    if isinstance(step, Read32):
        return f"R32 {hexs(step.gpa)}"
    if isinstance(step, Write32):
        return f"W32 {hexs(step.gpa)} {hexs(step.value)}"
    if isinstance(step, Fault):
        return f"FAULT {hexs(step.pe)} {hexs(step.gfn)} {int(step.privileged)}"
    if isinstance(step, Snapshot):
        return "SNAP"
    return " ".join(hexs(v) for v in (step.fid, *step.args))


def format_request(req: Request) -> str:
    if isinstance(req, Hello):
        return "HELLO"
    if isinstance(req, SelectPe):
        return f"PE {hexs(req.pe)}"
    if isinstance(req, SetHandler):
        h = req.handler
        if h.finish == "complete":
            head = f"HANDLER {hexs(req.arg)} COMPLETE {hexs(h.status)}"
        else:
            where = "-" if h.resume_at is None else hexs(h.resume_at)
            head = f"HANDLER {hexs(req.arg)} RESUME {where}"
        if h.once:
            head += " ONCE"
        return "".join([head, *(f" ; {_format_step(s)}" for s in h.calls)])
    if isinstance(req, CallRequest):
        return " ".join(["CALL", *(hexs(v) for v in (req.fid, *req.args))])
    if isinstance(req, RegsRequest):
        return "REGS"
    if isinstance(req, InjectRequest):
        return f"INJECT {hexs(req.pe)} {hexs(req.event)}"
    if isinstance(req, IrqRequest):
        return f"IRQ {hexs(req.pe)} {hexs(req.intid)}"
    if isinstance(req, MemRead32):
        return f"MEM R32 {hexs(req.gpa)}"
    if isinstance(req, MemWrite32):
        return f"MEM W32 {hexs(req.gpa)} {hexs(req.value)}"
    if isinstance(req, HostFault):
        tail = "" if req.latency_us is None else f" {hexs(req.latency_us)}"
        return f"HOST FAULT {hexs(req.pe)} {hexs(req.gfn)} {int(req.privileged)}{tail}"
    if isinstance(req, HostTick):
        return f"HOST TICK {hexs(req.us)}"
    if isinstance(req, HostApf):
        return f"HOST APF {'vm' if req.pe is None else hexs(req.pe)} {hexs(req.cmd)} {hexs(req.value)}"
    if isinstance(req, HostIrqLevel):
        return f"HOST IRQLEVEL {hexs(req.pe)} {hexs(req.intid)}"
    if isinstance(req, HostSave):
        return "HOST SAVE"
    if isinstance(req, HostLoad):
        return "HOST LOAD " + ("-" if req.data is None else req.data.hex())
    if isinstance(req, HostRestore):
        return "HOST RESTORE SNAP" if req.snapshot else "HOST RESTORE"
    return "RESET"


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
    return " ".join(["REGS", hexs(regs.pc), hexs(regs.pstate), *(hexs(v) for v in regs.x)])


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
            results = tuple(num(r) for r in kv["results"].split(","))
        landed = None
        if "landed" in kv:
            landed = Landing(num(kv["landed"]), num(kv["elr"]), num(kv["spsr"]), num(kv["lpstate"]))
        x = (num(kv["x0"]), num(kv["x1"]), num(kv["x2"]), num(kv["x3"]))
        fin = to_s64(num(kv["fin"])) if "fin" in kv else None
        results = tuple(to_s64(r) for r in results)
        return Delivery(
            num(kv["seq"]), num(kv["pe"]), num(kv["depth"]), x, num(kv["pstate"]), results, landed, fin
        )
    except KeyError as missing:
        raise ProtocolError(f"EV line lacks {missing}") from None


def parse_regs(line: str) -> Regs:
    words = line.split()
    if len(words) != 21:
        raise ProtocolError(f"REGS has 20 values (pc, pstate, x0..x17), got {len(words) - 1}")
    values = [num(w) for w in words[1:]]
    return Regs(tuple(values[2:]), values[0], values[1])


def parse_hello(line: str) -> tuple[int, dict[str, str]]:
    words = line.split()
    if len(words) < 2 or words[0] != "HELLO":
        raise ProtocolError(f"not a HELLO reply: {line[:60]!r}")
    try:
        version = int(words[1])
    except ValueError:
        raise ProtocolError(f"HELLO version is not a number: {words[1][:20]!r}") from None
    return version, _kv(words[2:])
