"""``apflab agent``: the model speaking the agent protocol on a byte stream.

Every request gets an answer; anything that is not a valid request is ``ERR <reason>``
and the session goes on (a bug in the model too: ``ERR internal error ...``). Lines
longer than the protocol's limit are read in bounded chunks and refused, so no input can
make the server hang or grow without bound.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import BinaryIO

from apflab.agent import protocol as p
from apflab.guest import TargetError, Unsupported
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
        #: Requests the server answers itself; every other one is the guest's Guest method.
        self._session: dict[str, Callable[[p.Request], list[str]]] = {
            "HELLO": self._hello,
            "RESET": self._reset,
            "HOST LOAD": self._load_piece,
            "HOST RESTORE": self._restore,
        }

    def handle_line(self, line: str) -> list[str]:
        """Answer one request line with the reply lines (the last is OK/ERR/HELLO/REGS)."""
        try:
            req = p.parse_request(line)
            session = self._session.get(req.spec.keyword)
            if session is not None:
                return session(req)
            return p.format_reply(req.spec.reply, req.invoke(self.guest))
        except MigrationError as exc:
            return [p.format_err(f"restore refused: {exc}")]
        except (p.ProtocolError, ModelError, TargetError, ValueError, Unsupported, MemoryError_) as exc:
            return [p.format_err(str(exc))]
        except Exception as exc:  # a bug in the model: say so, and keep the session
            return [p.format_err(f"internal error (a bug in apflab's model): {type(exc).__name__}: {exc}")]

    # ------------------------------------- requests that belong to the session

    def _hello(self, req: p.Request) -> list[str]:
        facts = dataclasses.replace(self.guest.facts, agent=self.agent_name)
        return p.format_reply(req.spec.reply, p.hello_fields(facts))

    def _reset(self, req: p.Request) -> list[str]:
        self.guest.reset()
        self._load.clear()
        return p.format_reply(req.spec.reply, None)

    def _load_piece(self, req: p.Request) -> list[str]:
        data = req["data"]
        if data is None:
            self._load.clear()
        elif len(self._load) + len(data) > self.MAX_LOAD:
            self._load.clear()
            return [p.format_err(f"migration image over {self.MAX_LOAD} bytes; HOST LOAD - starts again")]
        else:
            self._load += data
        return p.format_reply(req.spec.reply, len(self._load))

    def _restore(self, req: p.Request) -> list[str]:
        image, self._load = bytes(self._load), bytearray()
        self.guest.restore_state(image)
        return p.format_reply(req.spec.reply, None)

    def serve(self, infile: BinaryIO, outfile: BinaryIO) -> None:
        """Serve requests until end of input."""
        while True:
            raw, overlong = _read_bounded_line(infile, p.MAX_LINE)
            if raw is None:
                return
            if overlong:
                replies = [p.format_err(f"line too long (more than {p.MAX_LINE} characters)")]
            else:
                line = raw.decode("ascii", errors="replace").rstrip("\n").replace("\r", "")
                if p.is_blank(line):
                    continue  # not a request: no reply
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
