"""The agent protocol's vocabulary, said once: every request and every handler step.

A request is described by a :class:`RequestSpec`: its keyword, its fields and their
kinds, the shape of its reply, the Guest operation it carries and the capability that
operation needs. A handler step is a :class:`StepSpec` in the same terms. Everything
else follows from these two tables: parsing and formatting
(:mod:`apflab.agent.protocol`), the client's Guest methods (:mod:`apflab.agent.client`)
and the server's dispatch (:mod:`apflab.agent.server`); tests hold
docs/agent-protocol.md and the C agent's parser against them. To add a request or a
step, add one line to :data:`REQUESTS` or :data:`STEPS` (and, for a new Guest
operation, the method to the contract in :mod:`apflab.guest`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any

from apflab.abi.smccc import MASK64
from apflab.guest import Call, Fault, Handler, HandlerStep, Inject, Irq, Read32, Snapshot, Tick, Vevent, Write32

VERSION = 1
MAX_LINE = 512
MAX_STEPS = 24
MAX_CALL_ARGS = 17
#: Bytes of migration image per BLOB / HOST LOAD line (hex doubles it; stays under MAX_LINE).
BLOB_CHUNK = 240
HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class ProtocolError(ValueError):
    """A line that does not follow the grammar; the message is the ERR reason."""


def num(token: str) -> int:
    """Parse a hex number of at most 64 bits."""
    if token and set(token) <= HEX_DIGITS:
        if len(token) > 16:
            raise ProtocolError(f"number over 64 bits: {token[:20]}")
        return int(token, 16)
    raise ProtocolError(f"not a hex number: {token[:20]!r}")


def hexs(value: int) -> str:
    return format(value & MASK64, "x")


# ------------------------------------------------------------ field kinds


@dataclass(frozen=True)
class Field:
    """One hex number, the default kind. ``optional`` fields may only come last."""

    name: str
    optional: bool = False
    default: Any = None

    @property
    def synopsis(self) -> str:
        return f"[<{self.name}>]" if self.optional else f"<{self.name}>"

    def parse(self, word: str) -> Any:
        return num(word)

    def format(self, value: Any) -> str:
        return hexs(value)


@dataclass(frozen=True)
class Flag(Field):
    """0 or 1 on the wire (any non-zero hex number reads as true)."""

    def parse(self, word: str) -> Any:
        return bool(num(word))

    def format(self, value: Any) -> str:
        return str(int(bool(value)))


@dataclass(frozen=True)
class PeOrVm(Field):
    """A vCPU index, or ``vm`` for the VM file descriptor (None)."""

    @property
    def synopsis(self) -> str:
        return "<pe|vm>"

    def parse(self, word: str) -> Any:
        return None if word.lower() == "vm" else num(word)

    def format(self, value: Any) -> str:
        return "vm" if value is None else hexs(value)


@dataclass(frozen=True)
class BytesOrDash(Field):
    """Hex bytes, or ``-`` (None)."""

    @property
    def synopsis(self) -> str:
        return "<hex|->"

    def parse(self, word: str) -> Any:
        if word == "-":
            return None
        try:
            return bytes.fromhex(word)
        except ValueError:
            raise ProtocolError(f"<{self.name}> takes hex bytes (an even number of hex digits) or -") from None

    def format(self, value: Any) -> str:
        return "-" if value is None else value.hex()


@dataclass(frozen=True)
class Rest:
    """All the remaining words: the variadic tail of a call, or a handler script.

    A ``star`` rest is the Guest method's ``*args`` (CALL's x1..x17).
    """

    name: str
    synopsis: str
    parse_words: Callable[[list[str]], Any]
    format_value: Callable[[Any], str]
    star: bool = False


def _parse_args(words: list[str]) -> tuple[int, ...]:
    if len(words) > MAX_CALL_ARGS:
        raise ProtocolError(f"a call takes at most {MAX_CALL_ARGS} arguments (x1..x17)")
    return tuple(num(w) for w in words)


def _format_args(args: tuple[int, ...]) -> str:
    return " ".join(hexs(a) for a in args)


CALL_ARGS = Rest("args", "[<a1> .. <a17>]", _parse_args, _format_args, star=True)


# ------------------------------------------------------------ handler steps


@dataclass(frozen=True)
class StepSpec:
    """One kind of handler step on the wire: its keyword (None: a bare ``<fid> [<args>]``
    call) and its class, whose fields are the step's fields in order (a ``bool`` is a
    0/1 flag, anything else a hex number) and whose ``operation`` says which Guest
    operation the step is. The C agent parses the steps marked ``baremetal``.
    """

    keyword: str | None
    cls: type
    baremetal: bool = False
    meaning: str = ""

    @property
    def fields(self) -> tuple[Field, ...]:
        if self.keyword is None:
            return ()
        return tuple(Flag(f.name) if f.type in ("bool", bool) else Field(f.name) for f in dataclass_fields(self.cls))

    @property
    def synopsis(self) -> str:
        if self.keyword is None:
            return f"<fid> {CALL_ARGS.synopsis}"
        return " ".join([self.keyword, *(f.synopsis for f in self.fields)])

    def parse(self, words: list[str]) -> HandlerStep:
        if self.keyword is None:
            return Call(num(words[0]), *_parse_args(words[1:]))
        values = _parse_fields(self.keyword, self.fields, words[1:], self.synopsis)
        return self.cls(**values)

    def format(self, step: HandlerStep) -> str:
        if isinstance(step, Call):
            return " ".join(hexs(v) for v in (step.fid, *step.args))
        return " ".join([self.keyword or "", *(f.format(getattr(step, f.name)) for f in self.fields)])


STEPS: tuple[StepSpec, ...] = (
    StepSpec(None, Call, baremetal=True, meaning="an SMCCC call; the result is its x0"),
    StepSpec("INJECT", Inject, baremetal=True, meaning="a host-side injection; the result is the host's status"),
    StepSpec("IRQ", Irq, baremetal=True, meaning="a host-side interrupt; the result is the host's status"),
    StepSpec("VEVENT", Vevent, meaning="the VMM queues an event on a vCPU (SET_VEVENT); the result is its status"),
    StepSpec("R32", Read32, meaning="read a word of guest memory; the result is the word"),
    StepSpec("W32", Write32, meaning="write a word of guest memory"),
    StepSpec("FAULT", Fault, meaning="a stage-2 fault needing I/O; the result is 0 sync, 1 async, 2 in flight"),
    StepSpec("TICK", Tick, meaning="advance the host's clock; the result is how many faults finished"),
    StepSpec("SNAP", Snapshot, meaning="save a migration image at this point (a mid-handler migration)"),
)

STEP_BY_KEYWORD: dict[str, StepSpec] = {s.keyword: s for s in STEPS if s.keyword}
STEP_BY_CLASS: dict[type, StepSpec] = {s.cls: s for s in STEPS}


def step_spec(step: HandlerStep) -> StepSpec:
    return STEP_BY_CLASS[type(step)]


def parse_step(words: list[str]) -> HandlerStep:
    if not words:
        raise ProtocolError("empty handler step")
    spec = STEP_BY_KEYWORD.get(words[0].upper(), STEPS[0])
    return spec.parse(words)


def _parse_handler(words: list[str]) -> Handler:
    parts = [p.split() for p in " ".join(words).split(";")]
    head = parts[0]
    once = len(head) == 3 and head[2].upper() == "ONCE"
    if len(head) != 2 and not once:
        raise ProtocolError("HANDLER <arg> COMPLETE <status> [ONCE] | HANDLER <arg> RESUME <address|-> [ONCE]")
    steps = tuple(parse_step(p) for p in parts[1:])
    if len(steps) > MAX_STEPS:
        raise ProtocolError(f"a handler makes at most {MAX_STEPS} calls")
    kind = head[0].upper()
    if kind == "COMPLETE":
        return Handler(steps, "complete", status=num(head[1]), once=once)
    if kind == "RESUME":
        return Handler(steps, "resume", resume_at=None if head[1] == "-" else num(head[1]), once=once)
    raise ProtocolError(f"a handler finishes with COMPLETE or RESUME, not {head[0][:20]!r}")


def _format_handler(h: Handler) -> str:
    head = (
        f"COMPLETE {hexs(h.status)}"
        if h.finish == "complete"
        else (f"RESUME {'-' if h.resume_at is None else hexs(h.resume_at)}")
    )
    if h.once:
        head += " ONCE"
    return "".join([head, *(f" ; {step_spec(s).format(s)}" for s in h.calls)])


HANDLER_SCRIPT = Rest(
    "handler", "COMPLETE <status>|RESUME <address|-> [ONCE] [; <step>]...", _parse_handler, _format_handler
)


# ------------------------------------------------------------------ requests


class Reply(enum.Enum):
    """The shapes of the final reply (and the lines before it) a request gets."""

    DONE = "OK"
    VALUE = "OK <value>"
    STATUS_VALUE = "OK <errno> <value>"
    EVENTS = "EV* OK <x0> <x1> <x2> <x3>"
    REGS = "REGS <pc> <pstate> <x0> .. <x17> <elr> <spsr>"
    HELLO = "HELLO 1 <key>=<value> .."
    BLOBS = "BLOB <hex>* OK <bytes>"


@dataclass(frozen=True)
class RequestSpec:
    """One request: keyword words, fields, reply shape and the Guest operation it carries.

    ``guest_method`` names the :class:`~apflab.guest.Guest` method this request is on the
    wire (fields and parameters share their names); None for a request that exists only
    on the wire (HELLO, the pieces of a migration image). ``capability`` is what the
    target must have for it. The C agent parses the requests marked ``baremetal``.
    """

    keyword: str
    fields: tuple[Field, ...]
    reply: Reply
    guest_method: str | None
    capability: str | None = None
    rest: Rest | None = None
    baremetal: bool = False
    meaning: str = ""

    @property
    def synopsis(self) -> str:
        words = [self.keyword, *(f.synopsis for f in self.fields)]
        if self.rest is not None:
            words.append(self.rest.synopsis)
        return " ".join(words)

    @property
    def names(self) -> tuple[str, ...]:
        return (*(f.name for f in self.fields), *((self.rest.name,) if self.rest else ()))

    def __call__(self, **values: Any) -> Request:
        """Build a request; missing optional fields take their defaults."""
        missing = [f.name for f in self.fields if f.name not in values and not f.optional]
        if self.rest is not None and self.rest.name not in values:
            missing.append(self.rest.name)
        unknown = set(values) - set(self.names)
        if missing or unknown:
            raise TypeError(f"{self.keyword}: missing {missing}, unknown {sorted(unknown)}")
        ordered = tuple(values.get(f.name, f.default) for f in self.fields)
        if self.rest is not None:
            ordered += (values[self.rest.name],)
        return Request(self, ordered)

    def parse(self, words: list[str]) -> Request:
        """``words`` are those after the keyword."""
        if self.rest is not None:
            fixed, tail = words[: len(self.fields)], words[len(self.fields) :]
            if len(fixed) < len(self.fields):
                raise ProtocolError(f"{self.keyword} takes {self.synopsis.removeprefix(self.keyword).strip()}")
            values = _parse_fields(self.keyword, self.fields, fixed, self.synopsis)
            values[self.rest.name] = self.rest.parse_words(tail)
            return self(**values)
        return self(**_parse_fields(self.keyword, self.fields, words, self.synopsis))

    def format(self, req: Request) -> str:
        words = [self.keyword]
        for f, value in zip(self.fields, req.values, strict=False):
            if not (f.optional and value is None):
                words.append(f.format(value))
        if self.rest is not None:
            tail = self.rest.format_value(req.values[-1])
            if tail:
                words.append(tail)
        return " ".join(words)


@dataclass(frozen=True)
class Request:
    """A request as data: its spec and one value per field (then the rest, if any)."""

    spec: RequestSpec
    values: tuple[Any, ...]

    def __getitem__(self, name: str) -> Any:
        return self.values[self.spec.names.index(name)]

    def arguments(self) -> dict[str, Any]:
        return dict(zip(self.spec.names, self.values, strict=True))

    def invoke(self, target: Any) -> Any:
        """Call ``target.<guest_method>`` with this request's values (fields by name)."""
        method = getattr(target, str(self.spec.guest_method))
        rest = self.spec.rest
        if rest is not None and rest.star:
            return method(*self.values[:-1], *self.values[-1])
        return method(**self.arguments())


def _parse_fields(keyword: str, fields: tuple[Field, ...], words: list[str], synopsis: str) -> dict[str, Any]:
    required = sum(not f.optional for f in fields)
    if not required <= len(words) <= len(fields):
        wanted = synopsis.removeprefix(keyword).strip() or "no arguments"
        raise ProtocolError(f"{keyword} takes {wanted}, got {len(words)} argument(s)")
    values = {f.name: f.parse(w) for f, w in zip(fields, words, strict=False)}
    for f in fields[len(words) :]:
        values[f.name] = f.default
    return values


REQUESTS: tuple[RequestSpec, ...] = (
    RequestSpec("HELLO", (), Reply.HELLO, None, baremetal=True, meaning="protocol version and facts (below)"),
    RequestSpec(
        "PE",
        (Field("pe"),),
        Reply.DONE,
        "select_pe",
        baremetal=True,
        meaning="make following `CALL`/`REGS` run on PE *pe*",
    ),
    RequestSpec(
        "HANDLER",
        (Field("arg"),),
        Reply.DONE,
        "set_handler",
        rest=HANDLER_SCRIPT,
        baremetal=True,
        meaning="the handler registered with argument *arg* makes the steps, then `EVENT_COMPLETE(status)` "
        "or `EVENT_COMPLETE_AND_RESUME(address)` (`-`: the agent's own landing pad)",
    ),
    RequestSpec(
        "CALL",
        (Field("fid"),),
        Reply.EVENTS,
        "call",
        rest=CALL_ARGS,
        baremetal=True,
        meaning="SMCCC call with x0 = fid, x1..x17 = args (missing ones 0)",
    ),
    RequestSpec(
        "REGS",
        (),
        Reply.REGS,
        "regs",
        baremetal=True,
        meaning="registers right after the last call on this PE returned",
    ),
    RequestSpec(
        "INJECT",
        (Field("pe"), Field("event")),
        Reply.EVENTS,
        "inject",
        "inject",
        baremetal=True,
        meaning="host-side injection; x0 is the host's status",
    ),
    RequestSpec(
        "IRQ",
        (Field("pe"), Field("intid")),
        Reply.EVENTS,
        "raise_irq",
        "irq",
        baremetal=True,
        meaning="raise an interrupt line from the host; x0 is the host's status",
    ),
    RequestSpec(
        "CTX",
        (Field("pstate_bits"), Field("elr"), Field("spsr")),
        Reply.DONE,
        "set_context",
        "context",
        baremetal=True,
        meaning="the main context runs from now on with these PSTATE bits (PAN, UAO, DIT, SSBS) set "
        "and ELR_ELc/SPSR_ELc holding *elr*/*spsr*",
    ),
    RequestSpec(
        "PSCI CYCLE",
        (Field("pe"),),
        Reply.DONE,
        "power_cycle_pe",
        "pe-power",
        baremetal=True,
        meaning="PE *pe* calls CPU_OFF, PE 0 turns it on again with CPU_ON; it comes back to the agent's loop",
    ),
    RequestSpec(
        "PSCI RESET",
        (),
        Reply.DONE,
        "system_reset",
        "system-reset",
        meaning="PSCI SYSTEM_RESET; the agent answers once it runs again on the reset machine",
    ),
    RequestSpec(
        "RESET",
        (),
        Reply.DONE,
        "reset",
        baremetal=True,
        meaning="back to the power-on SDEI state: nothing registered, PEs masked, handlers cleared",
    ),
    RequestSpec(
        "HOST VEVENT",
        (Field("pe"), Field("event")),
        Reply.EVENTS,
        "set_vevent",
        "sdei-vmm",
        meaning="the VMM queues *event* on vCPU *pe* with KVM_SDEI_CMD_SET_VEVENT, as a migration "
        "restore does; x0 is the host's status",
    ),
    RequestSpec(
        "MEM R32",
        (Field("gpa"),),
        Reply.VALUE,
        "mem_read32",
        "mem",
        meaning="read a 32-bit word of guest memory (the APF shared block)",
    ),
    RequestSpec(
        "MEM W32",
        (Field("gpa"), Field("value")),
        Reply.DONE,
        "mem_write32",
        "mem",
        meaning="write a 32-bit word of guest memory",
    ),
    RequestSpec(
        "HOST FAULT",
        (Field("pe"), Field("gfn"), Flag("privileged"), Field("latency_us", optional=True)),
        Reply.EVENTS,
        "fault",
        "apf-host",
        meaning="a stage-2 fault needing I/O; x0 = 0 synchronous, 1 asynchronous page fault started "
        "(x1 = its token), 2 already in flight; the vCPU then runs on, so the not-present "
        "event is delivered",
    ),
    RequestSpec(
        "HOST TICK",
        (Field("us"),),
        Reply.EVENTS,
        "tick",
        "apf-host",
        meaning="advance the host's clock; finished I/O posts page-ready at the next vCPU entry; "
        "x0 = how many finished",
    ),
    RequestSpec(
        "HOST APF",
        (PeOrVm("pe"), Field("cmd"), Field("value", optional=True, default=0)),
        Reply.STATUS_VALUE,
        "apf_command",
        "apf-host",
        meaning="KVM_ARM_ASYNC_PF_COMMAND on a vCPU fd or the VM fd (docs/reference)",
    ),
    RequestSpec(
        "HOST IRQLEVEL",
        (Field("pe"), Field("intid")),
        Reply.VALUE,
        "irq_level",
        "apf-host",
        meaning="the level (0 or 1) of an interrupt line (the page-ready PPI)",
    ),
    RequestSpec(
        "HOST SAVE",
        (),
        Reply.BLOBS,
        "save_state",
        "migration",
        meaning="the migration image (apflab/model/migration.py), 240 bytes per BLOB line",
    ),
    RequestSpec(
        "HOST LOAD",
        (BytesOrDash("data"),),
        Reply.VALUE,
        None,
        "migration",
        meaning="send a migration image in pieces / `-` forgets what was sent; x0 = bytes so far",
    ),
    RequestSpec(
        "HOST RESTORE",
        (),
        Reply.DONE,
        None,
        "migration",
        meaning="continue on a fresh target restored from the image sent (`ERR restore refused: ...`)",
    ),
    RequestSpec(
        "HOST RESTORE SNAP",
        (),
        Reply.DONE,
        "restore_snapshot",
        "migration",
        meaning="continue on a fresh target restored from the last `SNAP` step",
    ),
)

BY_KEYWORD: dict[str, RequestSpec] = {r.keyword: r for r in REQUESTS}
#: Longest keywords first, so ``HOST RESTORE SNAP`` wins over ``HOST RESTORE``.
_MATCH_ORDER = sorted(REQUESTS, key=lambda r: -len(r.keyword.split()))
GROUPS = frozenset(r.keyword.split()[0] for r in REQUESTS if " " in r.keyword)


def request(keyword: str, **values: Any) -> Request:
    """``request("CALL", fid=0xC4000020, args=())``."""
    return BY_KEYWORD[keyword](**values)


def match(words: list[str]) -> tuple[RequestSpec, list[str]]:
    """The spec whose keyword starts ``words``, and the words after it."""
    upper = [w.upper() for w in words]
    for spec in _MATCH_ORDER:
        n = len(spec.keyword.split())
        if upper[:n] == spec.keyword.split():
            return spec, words[n:]
    if upper[0] in GROUPS:
        subs = ", ".join(r.keyword.split(maxsplit=1)[1] for r in REQUESTS if r.keyword.startswith(upper[0] + " "))
        raise ProtocolError(f"unknown {upper[0]} request {' '.join(words[1:2])[:20]!r}; known: {subs}")
    raise ProtocolError(f"unknown command {words[0][:20]!r}")
