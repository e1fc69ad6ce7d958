"""The agent protocol: grammar round trips, and every kind of bad input answered with ERR."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apflab.agent import protocol as p
from apflab.agent.server import AgentServer
from apflab.guest import Call, Delivery, Fault, Handler, Inject, Irq, Landing, Read32, Snapshot, Write32
from apflab.model.guest import ModelGuest
from apflab.profiles import SPEC

u64 = st.integers(0, (1 << 64) - 1)


@pytest.fixture
def server() -> AgentServer:
    return AgentServer(ModelGuest("model", SPEC))


@given(u64, st.lists(u64, max_size=17))
def test_call_round_trip(fid: int, args: list[int]) -> None:
    req = p.CallRequest(fid, tuple(args))
    assert p.parse_request(p.format_request(req)) == req


steps = st.one_of(
    st.builds(lambda f, a: Call(f, *a), u64, st.lists(u64, max_size=4)),
    st.builds(Inject, st.integers(0, 63), u64),
    st.builds(Irq, st.integers(0, 63), st.integers(0, 1019)),
    st.builds(Read32, u64),
    st.builds(Write32, u64, st.integers(0, 0xFFFFFFFF)),
    st.builds(Fault, st.integers(0, 63), u64, st.booleans()),
    st.just(Snapshot()),
)

host_requests = st.one_of(
    st.builds(p.MemRead32, u64),
    st.builds(p.MemWrite32, u64, u64),
    st.builds(p.HostFault, st.integers(0, 63), u64, st.booleans(), st.one_of(st.none(), st.integers(0, 10**9))),
    st.builds(p.HostTick, st.integers(0, 10**9)),
    st.builds(p.HostApf, st.one_of(st.none(), st.integers(0, 63)), st.integers(0, 9), u64),
    st.builds(p.HostIrqLevel, st.integers(0, 63), st.integers(0, 1019)),
    st.just(p.HostSave()),
    st.builds(p.HostLoad, st.one_of(st.none(), st.binary(min_size=1, max_size=p.BLOB_CHUNK))),
    st.builds(p.HostRestore, st.booleans()),
)


@given(host_requests)
def test_host_request_round_trip(req: p.Request) -> None:
    line = p.format_request(req)
    assert len(line) <= p.MAX_LINE
    assert p.parse_request(line) == req


@given(u64, st.lists(steps, max_size=8), st.booleans(), u64, st.one_of(st.none(), u64), st.booleans())
def test_handler_round_trip(arg, calls, resume, status, where, once) -> None:
    h = Handler(calls, "resume", resume_at=where, once=once) if resume else Handler(calls, status=status, once=once)
    req = p.SetHandler(arg, h)
    assert p.parse_request(p.format_request(req)) == req


def test_ev_round_trip() -> None:
    d = Delivery(3, 1, 2, (0x40400000, 7, 0x40080104, 0x3C5), 0x3C5, (0, -3, 7), Landing(1, 2, 3, 4), -2)
    assert p.parse_ev(p.format_ev(d)) == d


BAD_LINES = {
    "unknown command": "FROB 1 2",
    "not hex": "CALL c4000020 xyz",
    "over 64 bits": "CALL 1" + "0" * 16,
    "too many args": "CALL c4000020 " + " ".join(["1"] * 18),
    "arity": "PE",
    "handler finish": "HANDLER 1 EXPLODE 0",
    "non-ascii": "CALL c4000020 \u00e9",
    "control char": "CALL c40000\x0720",
    "empty call": "CALL",
    "bad pe": "PE 40",
    "unknown event injected": "INJECT 0 12345",
    "overlong": "CALL " + "1 " * 300,
}


@pytest.mark.parametrize("line", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_bad_line_is_one_err(server: AgentServer, line: str) -> None:
    replies = server.handle_line(line)
    assert len(replies) == 1 and replies[0].startswith("ERR "), replies
    assert "\n" not in replies[0] and len(replies[0]) <= p.MAX_LINE


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_random_text_never_raises(line: str) -> None:
    server = AgentServer(ModelGuest("model", SPEC, pes=2))
    for reply in server.handle_line(line) if line.strip() else []:
        assert reply.split()[0] in ("OK", "ERR", "EV", "HELLO", "REGS")


def test_session_goes_on_after_errors(server: AgentServer) -> None:
    stream = b"garbage\n\xff\xfe\nCALL " + b"f" * 2000 + b"\nCALL c4000020\n"
    out = io.BytesIO()
    server.serve(io.BytesIO(stream), out)
    lines = out.getvalue().decode().splitlines()
    assert [line.split()[0] for line in lines] == ["ERR", "ERR", "ERR", "OK"]
    assert "too long" in lines[2]
    assert lines[3] == "OK 1000100000000 0 0 0"


def test_hello_fields(server: AgentServer) -> None:
    version, fields = p.parse_hello(server.handle_line("HELLO")[0])
    assert version == p.VERSION
    assert fields["profile"] == "spec" and fields["conduit"] == "smc" and fields["pes"] == "4"
