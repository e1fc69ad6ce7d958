"""``apflab agent``: the model speaking the agent protocol on a byte stream.

Every request gets an answer; anything that is not a valid request is ``ERR <reason>``
and the session goes on. Lines longer than the protocol's limit are read in bounded
chunks and refused, so no input can make the server hang or grow without bound.
"""

from __future__ import annotations

from typing import BinaryIO

from apflab.agent import protocol as p
from apflab.guest import CallResult, TargetError, Unsupported
from apflab.model.guest import ModelGuest
from apflab.model.machine import ModelError
from apflab.model.memory import MemoryError_
from apflab.model.migration import MigrationError


class AgentServer:
    #: Bound on a migration image sent with HOST LOAD.
    MAX_LOAD = 64 << 20

    def __init__(self, guest: ModelGuest, agent_name: str = "model") -> None:
        self.guest = guest
        self.agent_name = agent_name
        self._load = bytearray()

    def hello_fields(self) -> dict[str, str]:
        info = self.guest.info
        return {
            "agent": self.agent_name,
            "conduit": info.conduit,
            "el": str(info.el),
            "pes": str(info.pes),
            "mpidr": ",".join(p.hexs(m) for m in info.mpidrs),
            "profile": info.profile.name,
            "ep": p.hexs(info.entry_point),
            "resume": p.hexs(info.resume_point),
            "vbar": p.hexs(info.vbar),
            "caps": ",".join(sorted(info.capabilities)),
        }

    def handle_line(self, line: str) -> list[str]:
        """Answer one request line with the reply lines (the last is OK/ERR/HELLO/REGS)."""
        try:
            req = p.parse_request(line)
            return self._handle(req)
        except MigrationError as exc:
            return [p.format_err(f"restore refused: {exc}")]
        except p.ProtocolError as exc:
            return [p.format_err(str(exc))]
        except (ModelError, TargetError, ValueError, Unsupported, MemoryError_) as exc:
            return [p.format_err(str(exc))]

    def _result(self, result: CallResult) -> list[str]:
        return [*(p.format_ev(d) for d in result.deliveries), p.format_ok(*result.x)]

    def _handle(self, req: p.Request) -> list[str]:
        g = self.guest
        if isinstance(req, p.Hello):
            return [p.format_hello(self.hello_fields())]
        if isinstance(req, p.SelectPe):
            g.select_pe(req.pe)
            return [p.format_ok()]
        if isinstance(req, p.SetHandler):
            g.set_handler(req.arg, req.handler)
            return [p.format_ok()]
        if isinstance(req, p.CallRequest):
            return self._result(g.call(req.fid, *req.args))
        if isinstance(req, p.RegsRequest):
            return [p.format_regs(g.regs())]
        if isinstance(req, p.InjectRequest):
            return self._result(g.inject(req.event, req.pe))
        if isinstance(req, p.IrqRequest):
            return self._result(g.raise_irq(req.intid, req.pe))
        if isinstance(req, p.Reset):
            g.reset()
            self._load.clear()
            return [p.format_ok()]
        return self._handle_host(req)

    def _handle_host(self, req: p.Request) -> list[str]:
        g = self.guest
        if isinstance(req, p.MemRead32):
            return [p.format_ok(g.mem_read32(req.gpa))]
        if isinstance(req, p.MemWrite32):
            g.mem_write32(req.gpa, req.value)
            return [p.format_ok()]
        if isinstance(req, p.HostFault):
            return self._result(g.fault(req.pe, req.gfn, req.privileged, req.latency_us))
        if isinstance(req, p.HostTick):
            return self._result(g.tick(req.us))
        if isinstance(req, p.HostApf):
            err, value = g.apf_command(req.pe, req.cmd, req.value)
            return [p.format_ok(err, value)]
        if isinstance(req, p.HostIrqLevel):
            return [p.format_ok(g.irq_level(req.pe, req.intid))]
        if isinstance(req, p.HostSave):
            image = g.save_state()
            chunks = [image[i : i + p.BLOB_CHUNK] for i in range(0, len(image), p.BLOB_CHUNK)]
            return [*(f"BLOB {c.hex()}" for c in chunks), p.format_ok(len(image))]
        if isinstance(req, p.HostLoad):
            if req.data is None:
                self._load.clear()
            elif len(self._load) + len(req.data) > self.MAX_LOAD:
                self._load.clear()
                return [p.format_err(f"migration image over {self.MAX_LOAD} bytes; HOST LOAD - starts again")]
            else:
                self._load += req.data
            return [p.format_ok(len(self._load))]
        if isinstance(req, p.HostRestore):
            if req.snapshot:
                g.restore_snapshot()
            else:
                image, self._load = bytes(self._load), bytearray()
                g.restore_state(image)
            return [p.format_ok()]
        raise p.ProtocolError(f"unhandled request {req!r}")

    def serve(self, infile: BinaryIO, outfile: BinaryIO) -> None:
        """Serve requests until end of input."""
        while True:
            raw, overlong = _read_bounded_line(infile, p.MAX_LINE)
            if raw is None:
                return
            if overlong:
                replies = [p.format_err(f"line too long (more than {p.MAX_LINE} characters)")]
            else:
                line = raw.decode("ascii", errors="replace").rstrip("\r\n")
                if not line.strip():
                    continue
                replies = self.handle_line(line)
            outfile.write(("\n".join(replies) + "\n").encode("ascii"))
            outfile.flush()


def _read_bounded_line(infile: BinaryIO, limit: int) -> tuple[bytes | None, bool]:
    """Read one line of at most ``limit`` bytes; a longer one is consumed and flagged."""
    line = infile.readline(limit + 2)
    if not line:
        return None, False
    if line.endswith(b"\n") or len(line) <= limit:
        return line, False
    while line and not line.endswith(b"\n"):
        line = infile.readline(4096)
    return b"", True
