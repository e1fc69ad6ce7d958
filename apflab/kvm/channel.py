"""The VMM channel, version 2: grammar, parsing and formatting (docs/vmm-channel.md).

One ASCII line per message, tokens separated by single spaces, numbers in hex without
``0x`` except vCPU indexes and statuses (decimal). apflab-vmm (guest_payloads/vmm)
speaks the other end; docs/vmm-channel.md is the normative text and this module
follows it.

VMM to host::

    HELLO 2 vcpus=<n> sdei=<kernel|forward|none> kernel=<release>
    CALL <vcpu> <hvc|smc> <vbar> <image>         a forwarded SDEI call (PC already past it)
    STOP <vcpu> <on|off> <vbar> <image>          the vCPU left KVM_RUN after a KICK
    POWER <vcpu> on                              PSCI CPU_ON powered the vCPU on (mode forward)
    RES <vm|vcpu> <status> <hex|->               result of an SDEI or APF host command
    BYE <reason>                                 the VMM is exiting

Host to VMM::

    HELLO 2 | ERR <reason>                       the handshake's answer
    RET <vcpu> <x0> <x1> <x2> <x3>               write x0..x3 (a plain result)
    REGS <vcpu> <image>                          write the register image (dispatch, COMPLETE)
    KEEP <vcpu>                                  write nothing
    KICK <vcpu>                                  leave KVM_RUN and send STOP
    SDEI <vm|vcpu> <cmd> [<payload hex>]         KVM_ARM_SDEI_COMMAND (kernel mode)
    APF <vm|vcpu> <cmd> [<value>]                KVM_ARM_ASYNC_PF_COMMAND

``<image>`` is 22 numbers: PC, PSTATE, ELR_EL1, SPSR_EL1, x0..x17.
"""

from __future__ import annotations

from dataclasses import dataclass

from apflab.abi.smccc import MASK64

VERSION = 2
MAX_LINE = 17408  # an SDEI command's payload (8344 bytes) in hex, and the rest
SAVED_GPRS = 18
IMAGE_LEN = 4 + SAVED_GPRS
MODES = ("kernel", "forward", "none")


class ChannelError(ValueError):
    """A line that does not follow the grammar (the message says what and where)."""


@dataclass(frozen=True)
class RegImage:
    """A vCPU's registers as a dispatcher sees and sets them."""

    pc: int
    pstate: int
    elr: int
    spsr: int
    x: tuple[int, ...]

    def fields(self) -> list[int]:
        return [self.pc, self.pstate, self.elr, self.spsr, *self.x]

    @classmethod
    def from_fields(cls, values: list[int]) -> RegImage:
        if len(values) != IMAGE_LEN:
            raise ChannelError(f"a register image has {IMAGE_LEN} numbers, got {len(values)}")
        return cls(values[0], values[1], values[2], values[3], tuple(values[4:]))


@dataclass(frozen=True)
class VmmHello:
    version: int
    vcpus: int
    sdei: str
    kernel: str


@dataclass(frozen=True)
class Call:
    vcpu: int
    conduit: str
    vbar: int
    image: RegImage


@dataclass(frozen=True)
class Stop:
    vcpu: int
    running: bool
    vbar: int
    image: RegImage


@dataclass(frozen=True)
class Res:
    target: str
    status: int
    data: str  # hex, "" when the VMM sent "-"


@dataclass(frozen=True)
class Bye:
    reason: str


@dataclass(frozen=True)
class Power:
    vcpu: int
    on: bool


@dataclass(frozen=True)
class Ret:
    vcpu: int
    x: tuple[int, int, int, int]


@dataclass(frozen=True)
class Regs:
    vcpu: int
    image: RegImage


@dataclass(frozen=True)
class Keep:
    vcpu: int


Answer = Ret | Regs | Keep
VmmMessage = VmmHello | Call | Stop | Res | Bye | Power


def _hex(token: str, line: str) -> int:
    if not token or len(token) > 16:
        raise ChannelError(f"{token!r} is not a 64-bit hex number in {line[:80]!r}")
    try:
        return int(token, 16)
    except ValueError:
        raise ChannelError(f"{token!r} is not a hex number in {line[:80]!r}") from None


def _index(token: str, line: str) -> int:
    if not token.isdigit():
        raise ChannelError(f"{token!r} is not a vCPU index in {line[:80]!r}")
    return int(token)


def _image(tokens: list[str], line: str) -> RegImage:
    return RegImage.from_fields([_hex(t, line) for t in tokens])


def parse_vmm_line(line: str) -> VmmMessage:
    """One line from the VMM as a message; ChannelError if it is not one."""
    tokens = line.rstrip("\r\n").split(" ")
    kind = tokens[0]
    if kind == "HELLO":
        fields = dict(t.split("=", 1) for t in tokens[2:] if "=" in t)
        if len(tokens) < 2 or not tokens[1].isdigit():
            raise ChannelError(f"HELLO without a version: {line[:80]!r}")
        try:
            vcpus = int(fields["vcpus"])
            sdei = fields["sdei"]
        except (KeyError, ValueError):
            raise ChannelError(f"HELLO lacks vcpus= or sdei=: {line[:80]!r}") from None
        if sdei not in MODES:
            raise ChannelError(f"HELLO: unknown sdei mode {sdei!r}")
        return VmmHello(int(tokens[1]), vcpus, sdei, fields.get("kernel", ""))
    if kind in ("CALL", "STOP"):
        if len(tokens) != 4 + IMAGE_LEN:
            raise ChannelError(f"{kind} has {len(tokens)} tokens, not {4 + IMAGE_LEN}: {line[:80]!r}")
        vcpu, vbar, image = _index(tokens[1], line), _hex(tokens[3], line), _image(tokens[4:], line)
        if kind == "CALL":
            if tokens[2] not in ("hvc", "smc"):
                raise ChannelError(f"CALL conduit {tokens[2]!r} is not hvc or smc")
            return Call(vcpu, tokens[2], vbar, image)
        if tokens[2] not in ("on", "off"):
            raise ChannelError(f"STOP state {tokens[2]!r} is not on or off")
        return Stop(vcpu, tokens[2] == "on", vbar, image)
    if kind == "RES":
        if len(tokens) not in (3, 4):
            raise ChannelError(f"RES takes a target, a status and data: {line[:80]!r}")
        try:
            status = int(tokens[2])
        except ValueError:
            raise ChannelError(f"RES status {tokens[2]!r} is not a number") from None
        data = tokens[3] if len(tokens) == 4 and tokens[3] != "-" else ""
        return Res(tokens[1], status, data)
    if kind == "POWER":
        if len(tokens) != 3 or tokens[2] not in ("on", "off"):
            raise ChannelError(f"POWER takes a vCPU and on or off: {line[:80]!r}")
        return Power(_index(tokens[1], line), tokens[2] == "on")
    if kind == "BYE":
        return Bye(" ".join(tokens[1:]))
    raise ChannelError(f"unknown message from the VMM: {line[:80]!r}")


def format_answer(answer: Answer) -> str:
    if isinstance(answer, Ret):
        return f"RET {answer.vcpu} " + " ".join(f"{v & MASK64:x}" for v in answer.x)
    if isinstance(answer, Regs):
        return f"REGS {answer.vcpu} " + " ".join(f"{v & MASK64:x}" for v in answer.image.fields())
    return f"KEEP {answer.vcpu}"


def format_kick(vcpu: int) -> str:
    return f"KICK {vcpu}"


def format_sdei(target: str, cmd: int, payload: bytes = b"") -> str:
    return f"SDEI {target} {cmd}" + (f" {payload.hex()}" if payload else "")


def format_apf(target: str, cmd: int, value: int | None = None) -> str:
    return f"APF {target} {cmd}" + ("" if value is None else f" {value & MASK64:x}")


def format_hello() -> str:
    return f"HELLO {VERSION}"


def format_refusal(reason: str) -> str:
    return f"ERR {reason}"


def answer_for(vcpu: int, before: RegImage, after: RegImage) -> Answer:
    """The smallest answer that turns ``before`` into ``after``."""
    if after == before:
        return Keep(vcpu)
    if after.fields()[:4] == before.fields()[:4] and after.x[4:] == before.x[4:]:
        return Ret(vcpu, (after.x[0], after.x[1], after.x[2], after.x[3]))
    return Regs(vcpu, after)
