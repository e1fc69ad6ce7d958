"""The target boundary: wrappers pass every operation through, capabilities come from one list.

A pipe to ``apflab agent`` stands in for a console target here: it is the same AgentGuest
over a real byte stream to a real process, only without a QEMU under it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from apflab.agent.client import AgentGuest, ProcessStream, model_agent_argv
from apflab.capabilities import CAPABILITIES, UnknownCapability
from apflab.guest import Guest
from apflab.lab.agentdriver import RecoveringGuest
from apflab.lab.targetinfo import describe
from apflab.model.platform import PLATFORMS
from apflab.profiles import KVM_V4

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def wrapped() -> RecoveringGuest:
    boots: list[AgentGuest] = []

    def boot() -> AgentGuest:
        boots.append(AgentGuest(ProcessStream(model_agent_argv("kvm-v4", 2, 1)), "pipe-v4", timeout=10))
        return boots[-1]

    guest = RecoveringGuest(boot, lambda: "a pipe")
    guest.info = describe("pipe-v4", guest, profile=KVM_V4, events=PLATFORMS["kvm-v4"].events)
    yield guest
    guest.close()


def test_every_operation_is_passed_through() -> None:
    for name in Guest.OPERATIONS:
        assert getattr(RecoveringGuest, name) is not getattr(Guest, name), name


def test_host_side_operations_reach_a_pipe_target(wrapped: RecoveringGuest) -> None:
    assert wrapped.info.has("mem") and wrapped.info.has("apf-host")
    wrapped.mem_write32(0x4100_0000, 0xA5A5_1234)
    assert wrapped.mem_read32(0x4100_0000) == 0xA5A5_1234
    # KVM_ARM_ASYNC_PF_CMD_GET_VERSION (0) on the VM fd answers version 0x010000 (APF v4 07/15).
    assert wrapped.apf_command(None, 0) == (0, 0x010000)


def test_info_survives_a_restart(wrapped: RecoveringGuest) -> None:
    before = wrapped.info
    wrapped.restart()
    assert wrapped.info is before and wrapped.restarts == 1
    assert wrapped.mem_read32(0x4100_0000) == 0  # a fresh target, and still reachable


def test_unknown_capability_is_an_error_not_a_skip(wrapped: RecoveringGuest) -> None:
    with pytest.raises(UnknownCapability, match="more-ppis"):
        wrapped.require("more-ppis")


def _literal_capabilities() -> set[tuple[str, str]]:
    found = set()
    for path in [*ROOT.joinpath("apflab").rglob("*.py"), *ROOT.joinpath("testcases").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("require", "has")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add((str(path.relative_to(ROOT)), node.args[0].value))
    return found


def test_every_capability_asked_for_is_known() -> None:
    asked = _literal_capabilities()
    assert len(asked) > 10
    unknown = sorted((where, name) for where, name in asked if name not in CAPABILITIES)
    assert not unknown


def test_no_getattr_for_optional_powers() -> None:
    """Optional powers are bound (labgrid optional bindings) or in the contract, never looked up by name."""
    powers = "alive|status|crash_tail|use_kvm|host_capabilities|restart|discard"
    for path in ROOT.joinpath("apflab").rglob("*.py"):
        assert not re.search(rf"getattr\([^)]*[\"']({powers})[\"']", path.read_text()), path.name


def test_an_event_is_triggerable_where_its_line_can_be_raised() -> None:
    """A target whose agent raises only some interrupts (HELLO irqs=) triggers only the events
    bound to those; a host that raises any line triggers every event with an interrupt."""
    from apflab.abi.sdei import EventType, Priority
    from apflab.guest import EventInfo, TargetInfo
    from apflab.profiles import SPEC

    on_23, on_40 = (EventInfo(n, EventType.PRIVATE, Priority.CRITICAL, intid=i) for n, i in ((8, 23), (9, 40)))
    some = TargetInfo("t", SPEC, "smc", 1, 1, (0,), 0, 0, 0, frozenset({"irq"}), (on_23, on_40), frozenset({23}))
    assert [some.can_trigger(e) for e in (on_23, on_40)] == [True, False]
    assert [e.number for e in some.find_events(injectable=True)] == [8]
    anyline = TargetInfo("t", SPEC, "smc", 1, 1, (0,), 0, 0, 0, frozenset({"irq"}), (on_23, on_40))
    assert [anyline.can_trigger(e) for e in (on_23, on_40)] == [True, True]
    none = TargetInfo("t", SPEC, "smc", 1, 1, (0,), 0, 0, 0, frozenset(), (on_23, on_40), frozenset({23}))
    assert not none.can_trigger(on_23)


class ScriptedConsole:
    """A console that answers HELLO, then prints a firmware's last words and nothing more."""

    def __init__(self, after_hello: bytes) -> None:
        self.after_hello = after_hello
        self.out = b""

    def write(self, data: bytes) -> None:
        hello = b"HELLO 1 agent=baremetal conduit=smc el=1 pes=1 mpidr=80000000 profile=- ep=1 resume=2 vbar=3\n"
        self.out += hello if data.startswith(b"HELLO") else self.after_hello

    def read(self, timeout: float) -> bytes:
        data, self.out = self.out, b""
        return data

    def alive(self) -> bool:
        return True

    def close(self) -> None:
        pass


def test_last_words_end_the_wait_at_once() -> None:
    """A console line the target's configuration names as last words (TF-A's backtrace) ends
    the wait for a reply there, with the line, instead of at the reply timeout."""
    import time

    from apflab.guest import TargetError

    console = ScriptedConsole(b"BACKTRACE: START: assert\n0: EL3: 0xe092288\nBACKTRACE: END: assert\n")
    guest = AgentGuest(console, "tfa", timeout=30, last_words=["BACKTRACE: END:"])  # type: ignore[arg-type]
    t = time.monotonic()
    with pytest.raises(TargetError, match="BACKTRACE: END: assert"):
        guest.call(0xC4000020)
    assert time.monotonic() - t < 5
    quiet = AgentGuest(ScriptedConsole(b"NOTICE: just a banner\n"), "tfa", timeout=0.3, last_words=["BACKTRACE: END:"])  # type: ignore[arg-type]
    with pytest.raises(TargetError, match="no reply within"):
        quiet.call(0xC4000020)
