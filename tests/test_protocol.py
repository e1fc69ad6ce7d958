"""The agent protocol: every request and step round-trips, bad input is one ERR, and the
description in apflab.agent.grammar agrees with the Guest contract, the C agent and
docs/agent-protocol.md."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apflab.agent import grammar as g
from apflab.agent import protocol as p
from apflab.agent.server import AgentServer
from apflab.guest import (
    Call,
    Delivery,
    Fault,
    Guest,
    Handler,
    Inject,
    Irq,
    Landing,
    Read32,
    Regs,
    Snapshot,
    Tick,
    Vevent,
    Write32,
)
from apflab.model.guest import ModelGuest
from apflab.profiles import SPEC

ROOT = Path(__file__).resolve().parents[1]
u64 = st.integers(0, (1 << 64) - 1)


@pytest.fixture
def server() -> AgentServer:
    return AgentServer(ModelGuest("model", SPEC))


# ------------------------------------------------------------ round trips

steps = st.one_of(
    st.builds(lambda f, a: Call(f, *a), u64, st.lists(u64, max_size=4)),
    st.builds(Inject, st.integers(0, 63), u64),
    st.builds(Irq, st.integers(0, 63), st.integers(0, 1019)),
    st.builds(Vevent, st.integers(0, 63), u64),
    st.builds(Read32, u64),
    st.builds(Write32, u64, st.integers(0, 0xFFFFFFFF)),
    st.builds(Fault, st.integers(0, 63), u64, st.booleans()),
    st.builds(Tick, u64),
    st.just(Snapshot()),
)

handlers = st.one_of(
    st.builds(lambda c, s, o: Handler(c, status=s, once=o), st.lists(steps, max_size=8), u64, st.booleans()),
    st.builds(
        lambda c, w, o: Handler(c, "resume", resume_at=w, once=o),
        st.lists(steps, max_size=8),
        st.one_of(st.none(), u64),
        st.booleans(),
    ),
)


def _values_for(field: Any) -> st.SearchStrategy:
    """Values of one field kind (the kinds of apflab.agent.grammar)."""
    if isinstance(field, g.Flag):
        return st.booleans()
    if isinstance(field, g.PeOrVm):
        return st.one_of(st.none(), st.integers(0, 63))
    if isinstance(field, g.BytesOrDash):
        return st.one_of(st.none(), st.binary(min_size=1, max_size=p.BLOB_CHUNK))
    if field is g.CALL_ARGS:
        return st.lists(u64, max_size=p.MAX_CALL_ARGS).map(tuple)
    if field is g.HANDLER_SCRIPT:
        return handlers
    values = u64
    return st.one_of(st.none(), values) if field.optional and field.default is None else values


@pytest.mark.parametrize("spec", g.REQUESTS, ids=[r.keyword for r in g.REQUESTS])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_request_round_trips(spec: g.RequestSpec, data: st.DataObject) -> None:
    kinds = [*spec.fields, *((spec.rest,) if spec.rest else ())]
    values = {k.name: data.draw(_values_for(k), label=k.name) for k in kinds}
    req = spec(**values)
    line = p.format_request(req)
    assert len(line) <= p.MAX_LINE or spec.keyword == "HANDLER"
    assert p.parse_request(line) == req


@given(u64, handlers)
def test_handler_round_trip(arg: int, handler: Handler) -> None:
    req = g.request("HANDLER", arg=arg, handler=handler)
    assert p.parse_request(p.format_request(req)) == req


def test_regs_round_trip() -> None:
    regs = Regs(tuple(range(18)), 0x40080104, 0x3C5, 0x4008_0F00, 0xA0000000)
    assert p.parse_regs(p.format_regs(regs)) == regs


def test_ev_round_trip() -> None:
    d = Delivery(3, 1, 2, (0x40400000, 7, 0x40080104, 0x3C5), 0x3C5, (0, -3, 7), Landing(1, 2, 3, 4), -2)
    assert p.parse_ev(p.format_ev(d)) == d


def test_keywords_are_case_insensitive() -> None:
    assert p.parse_request("host restore snap") == g.request("HOST RESTORE SNAP")
    assert p.parse_request("Host Apf VM 0") == g.request("HOST APF", pe=None, cmd=0)


# ------------------------------------------------------------- bad input

BAD_LINES = {
    "unknown command": "FROB 1 2",
    "unknown HOST request": "HOST FROB 1",
    "not hex": "CALL c4000020 xyz",
    "over 64 bits": "CALL 1" + "0" * 16,
    "too many args": "CALL c4000020 " + " ".join(["1"] * 18),
    "arity": "PE",
    "arity over": "HOST TICK 1 2",
    "handler finish": "HANDLER 1 EXPLODE 0",
    "handler step arity": "HANDLER 1 COMPLETE 0 ; INJECT 1",
    "non-ascii": "CALL c4000020 \u00e9",
    "control char": "CALL c40000\x0720",
    "empty call": "CALL",
    "bad pe": "PE 40",
    "unknown event injected": "INJECT 0 12345",
    "odd hex bytes": "HOST LOAD abc",
    "overlong": "CALL " + "1 " * 300,
}


@pytest.mark.parametrize("line", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_bad_line_is_one_err(server: AgentServer, line: str) -> None:
    replies = server.handle_line(line)
    assert len(replies) == 1 and replies[0].startswith("ERR "), replies
    assert "\n" not in replies[0] and len(replies[0]) <= p.MAX_LINE


def test_arity_error_names_the_synopsis(server: AgentServer) -> None:
    assert server.handle_line("HOST FAULT 1") == [
        "ERR HOST FAULT takes <pe> <gfn> <privileged> [<latency_us>], got 1 argument(s)"
    ]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_random_text_never_raises(line: str) -> None:
    server = AgentServer(ModelGuest("model", SPEC, pes=2))
    for reply in [] if p.is_blank(line) else server.handle_line(line):
        assert reply.split()[0] in ("OK", "ERR", "EV", "HELLO", "REGS", "BLOB")
        assert "internal error" not in reply


def test_session_goes_on_after_errors(server: AgentServer) -> None:
    stream = b"garbage\n\xff\xfe\nCALL " + b"f" * 2000 + b"\nCALL c4000020\n"
    out = io.BytesIO()
    server.serve(io.BytesIO(stream), out)
    lines = out.getvalue().decode().splitlines()
    assert [line.split()[0] for line in lines] == ["ERR", "ERR", "ERR", "OK"]
    assert "too long" in lines[2]
    assert lines[3] == "OK 1000100000000 0 0 0"


def test_blank_lines_get_no_reply(server: AgentServer) -> None:
    """A line of only spaces (CRs dropped) is not a request; a tab is not a space: ERR."""
    stream = b"\n   \n\r\n \r \nCALL c4000020\r\n\t\nREGS\n"
    out = io.BytesIO()
    server.serve(io.BytesIO(stream), out)
    lines = out.getvalue().decode().splitlines()
    assert [line.split()[0] for line in lines] == ["OK", "ERR", "REGS"], lines


def test_hello_fields(server: AgentServer) -> None:
    version, fields = p.parse_hello(server.handle_line("HELLO")[0])
    assert version == p.VERSION
    assert fields["profile"] == "spec" and fields["conduit"] == "smc" and fields["pes"] == "4"


# ------------------------------------------- the description against the rest


def test_every_target_operation_is_on_the_wire() -> None:
    """Each Guest operation is one request, except restore_state (HOST LOAD pieces + HOST RESTORE)."""
    carried = {r.guest_method for r in g.REQUESTS if r.guest_method}
    assert carried == set(Guest.OPERATIONS) - {"restore_state"}
    assert {"HOST LOAD", "HOST RESTORE"} <= set(g.BY_KEYWORD)


def test_request_fields_are_the_operations_parameters() -> None:
    """Field names are the Guest method's parameter names: the client binds them by name."""
    import inspect

    for spec in g.REQUESTS:
        if spec.guest_method:
            params = [n for n in inspect.signature(getattr(Guest, spec.guest_method)).parameters if n != "self"]
            assert sorted(spec.names) == sorted(params), spec.keyword


def test_every_step_is_a_guest_operation() -> None:
    for step in g.STEPS:
        assert step.cls.operation in Guest.OPERATIONS, step.cls


def _agent_c() -> str:
    return (ROOT / "guest_payloads" / "agent" / "agent.c").read_text()


def test_c_agent_parses_exactly_the_baremetal_requests() -> None:
    source = _agent_c()
    dispatch = source[source.index("static void dispatch_line") :]
    commands = set(re.findall(r'streq_ci\(c, "([A-Z]+)"\)', dispatch))
    baremetal = [r.keyword.split() for r in g.REQUESTS if r.baremetal]
    assert commands == {k[0] for k in baremetal}
    for words in baremetal:  # a request of two words: the second is matched in tokens[1]
        assert len(words) == 1 or f'streq_ci(tokens[1], "{words[1]}")' in source, words


def test_c_agent_parses_exactly_the_baremetal_steps() -> None:
    source = _agent_c()
    handler = source[source.index("static void cmd_handler") : source.index("static void cmd_reset")]
    steps = set(re.findall(r'streq_ci\(tokens\[start\], "([A-Z0-9]+)"\)', handler))
    assert steps == {s.keyword for s in g.STEPS if s.baremetal and s.keyword}
    assert "APFLAB-AGENT READY protocol=1" in source


def _doc() -> str:
    """The page with table-escaped pipes read as pipes."""
    return (ROOT / "docs" / "agent-protocol.md").read_text().replace("\\|", "|")


def test_doc_lists_every_request_and_step_as_described() -> None:
    doc = _doc()
    for spec in g.REQUESTS:
        assert f"`{spec.synopsis}`" in doc, f"docs/agent-protocol.md lacks `{spec.synopsis}`"
    for step in g.STEPS:
        assert f"`{step.synopsis}`" in doc, f"docs/agent-protocol.md lacks step `{step.synopsis}`"


def test_doc_lists_nothing_else() -> None:
    rows = re.findall(r"^\| `([^`]+)` \|", _doc(), re.M)
    described = {r.synopsis for r in g.REQUESTS} | {s.synopsis for s in g.STEPS}
    assert set(rows) <= described, set(rows) - described


def test_tick_step_runs_inside_a_handler() -> None:
    """The TICK step (added by one line of apflab.agent.grammar) reaches the model's clock."""
    from apflab.profiles import KVM_V4

    server = AgentServer(ModelGuest("model", KVM_V4, pes=1))
    event, ep = 0x40400000, int(p.parse_hello(server.handle_line("HELLO")[0])[1]["ep"], 16)
    assert server.handle_line("HANDLER 7 COMPLETE 0 ; TICK 40 ; c4000020") == ["OK"]
    for line in (f"CALL c4000021 {event:x} {ep:x} 7 0 0", f"CALL c4000022 {event:x}", "CALL c400002c"):
        assert server.handle_line(line)[-1].startswith("OK 0"), line
    replies = server.handle_line(f"HOST VEVENT 0 {event:x}")
    entries = [p.parse_ev(r) for r in replies if r.startswith("EV")]
    # No fault is outstanding: the tick finishes none (0); then VERSION (v4: 1.0, vendor 0).
    assert [d.results for d in entries] == [(0, 1 << 48)]
