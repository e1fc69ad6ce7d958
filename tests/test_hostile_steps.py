"""Handler steps with arguments the model cannot honour: one clear error, and the target goes on.

Every step kind, every argument, the values at and beyond the model's limits (a PE it
does not have, addresses outside RAM, 64-bit extremes), on both profiles and with one
and four PEs, in process (ModelGuest) and over the agent protocol (AgentServer, and a
real ``apflab agent`` process for the case the issue met: FAULT on PE 9 under kvm-v4).
The outcome may be a result or an error; an error must be the model's own one-line
refusal naming the handler step (and the PE, if that was wrong), never an IndexError
that ends the session, and the target must answer after it.
"""

from __future__ import annotations

import itertools
from dataclasses import fields

import pytest

from apflab.abi import sdei
from apflab.agent import grammar as g
from apflab.agent.server import AgentServer
from apflab.guest import Handler, HandlerStep, TargetError, Unsupported
from apflab.model.agent import HANDLER_ENTRY
from apflab.model.guest import ModelGuest
from apflab.model.machine import ModelError
from apflab.model.memory import MemoryError_
from apflab.model.platform import PLATFORMS
from apflab.profiles import get_profile
from tests.conftest import run_apflab

WIRE_VALUES = (0, 1, 3, 4, 9, 64, 0x4000_0000, 0xFFFF_FFFF, 1 << 63, (1 << 64) - 1)
#: In process nothing stops a testcase from passing these.
PYTHON_VALUES = (-1, 1 << 64, 1 << 70)
SETUPS = [(profile, pes) for profile in ("spec", "kvm-v4") for pes in (1, 4)]


def _event(profile: str) -> int:
    return next(ev.number for ev in PLATFORMS[profile].events if not ev.dynamic)


def _trigger_line(profile: str, event: int) -> str:
    """v4's INJECT_EVENT deadlocks once the event is armed (a modelled wedge); its VMM queues
    events with SET_VEVENT, which works: trigger the handler the way each profile can."""
    return (
        f"HOST VEVENT 0 {event:x}" if get_profile(profile).predicts("inject_event_deadlocks") else f"INJECT 0 {event:x}"
    )


def steps_of(spec: g.StepSpec, values: tuple[int, ...], profile: str) -> list[tuple[str, int, HandlerStep]]:
    """(argument, value, step): one argument at ``value``, the others at a value that works."""
    if spec.keyword is None:  # a call: fid, then an argument
        return [("fid", v, spec.cls(v)) for v in values] + [("x1", v, spec.cls(0xC4000020, v)) for v in values]
    good = {"pe": 0, "event": _event(profile), "gpa": 0x4100_0000, "gfn": 0x41000, "privileged": False}
    names = [f.name for f in fields(spec.cls)]
    if not names:
        return [("-", 0, spec.cls())]
    return [
        (name, v, spec.cls(**{n: (v if n == name else good.get(n, 0)) for n in names}))
        for name in names
        for v in values
        if not (name == "privileged" and v not in (0, 1))
    ]


def cases(values: tuple[int, ...]) -> list[tuple[str, int, str, str, int, HandlerStep]]:
    return [
        (profile, pes, spec.keyword or "CALL", arg, v, step)
        for (profile, pes), spec in itertools.product(SETUPS, g.STEPS)
        for arg, v, step in steps_of(spec, values, profile)
    ]


def _clear(text: str, arg: str, value: int, pes: int) -> None:
    """A refusal the user can act on: one line naming the handler step (and the PE if that
    was it), or the model's bound on a handler that keeps re-entering itself."""
    assert "\n" not in text and "internal error" not in text, text
    wedged = "target wedged" in text  # a v4 deviation the model plays as a dead target (e.g. INJECT_EVENT)
    assert "handler step" in text or "handler entries in one command" in text or wedged, text
    if arg == "pe" and not 0 <= value < pes:
        assert f"no PE {value}" in text, text


@pytest.mark.parametrize(("profile", "pes", "kind", "arg", "value", "step"), cases(WIRE_VALUES + PYTHON_VALUES))
def test_in_process(profile: str, pes: int, kind: str, arg: str, value: int, step: HandlerStep) -> None:
    guest = ModelGuest("model", get_profile(profile), pes)
    event = _event(profile)
    try:
        guest.set_handler(1, Handler([step]))
        for fn, *args in ((sdei.Fn.EVENT_REGISTER, event, HANDLER_ENTRY, 1, 0, 0), (sdei.Fn.EVENT_ENABLE, event)):
            assert guest.call(fn, *args).ret == 0
        guest.call(sdei.Fn.PE_UNMASK)
        if get_profile(profile).predicts("inject_event_deadlocks"):
            guest.set_vevent(0, event)
        else:
            guest.inject(event, 0)
    except (ModelError, MemoryError_, TargetError, Unsupported) as exc:
        _clear(str(exc), arg, value, pes)
    guest.reset()
    assert guest.call(sdei.Fn.VERSION).ret > 0


@pytest.mark.parametrize(("profile", "pes", "kind", "arg", "value", "step"), cases(WIRE_VALUES))
def test_over_the_protocol(profile: str, pes: int, kind: str, arg: str, value: int, step: HandlerStep) -> None:
    server = AgentServer(ModelGuest("model", get_profile(profile), pes))
    event = _event(profile)
    script = g.request("HANDLER", arg=1, handler=Handler([step]))
    lines = [
        g.BY_KEYWORD["HANDLER"].format(script),
        f"CALL c4000021 {event:x} {HANDLER_ENTRY:x} 1 0 0",
        f"CALL c4000022 {event:x}",
        "CALL c400002c",
        _trigger_line(profile, event),
    ]
    for line in lines:
        reply = server.handle_line(line)[-1]
        assert reply.startswith("OK") or reply.startswith("ERR "), (line, reply)
        if reply.startswith("ERR "):
            _clear(reply, arg, value, pes)
    assert server.handle_line("RESET") == ["OK"]
    assert server.handle_line("CALL c4000020")[-1].startswith("OK 1")


def test_the_issue_example_over_a_pipe() -> None:
    """`HANDLER 1 COMPLETE 0 ; FAULT 9 40000 0`, then the event, on `apflab agent --profile kvm-v4`.

    The issue injected the event with INJECT; v4's INJECT_EVENT of an armed event is now a
    modelled wedge, so the event comes the way v4's VMM can queue one (SET_VEVENT)."""
    script = "\n".join(
        [
            "HANDLER 1 COMPLETE 0 ; FAULT 9 40000 0",
            f"CALL c4000021 40400000 {HANDLER_ENTRY:x} 1 0 0",
            "CALL c4000022 40400000",
            "CALL c400002c",
            "HOST VEVENT 0 40400000",
            "CALL c4000020",
            "",
        ]
    )
    r = run_apflab("agent", "--profile", "kvm-v4", input=script)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    replies = [line for line in r.stdout.splitlines() if not line.startswith("EV ")]
    assert len(replies) == 6, replies
    assert any(line.startswith("ERR ") and "no PE 9" in line for line in replies), replies
    assert replies[-1].startswith("OK 1")  # the session went on
