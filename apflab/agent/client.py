"""``AgentGuest``: the Guest contract over any byte stream that speaks the agent protocol.

The stream may be a pipe to ``apflab agent``, a pty, or a labgrid console to the
bare-metal agent; :class:`ByteStream` is all the client needs of it. Every read has a
deadline: a silent or dead peer ends in :class:`TargetError` carrying the last lines
seen, never in a hang.
"""

from __future__ import annotations

import abc
import os
import select
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence

from apflab.abi.smccc import to_s64
from apflab.agent import protocol as p
from apflab.guest import CallResult, Delivery, Guest, Handler, Regs, TargetError, TargetInfo
from apflab.profiles import Profile, get_profile


class ByteStream(abc.ABC):
    """The two operations the client needs of a console."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None: ...

    @abc.abstractmethod
    def read(self, timeout: float) -> bytes:
        """Return what is available within ``timeout`` seconds (b"" if nothing)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def alive(self) -> bool:
        return True


class ProcessStream(ByteStream):
    """A child process's stdin/stdout, e.g. ``apflab agent --target model``."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
        )

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise TargetError(f"agent process {self.argv[0]} is gone ({exc}); {self._stderr_tail()}") from None

    def read(self, timeout: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], max(timeout, 0))
        if not ready:
            return b""
        return os.read(fd, 65536)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _stderr_tail(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "process still running"
        err = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
        return f"exit status {self.proc.returncode}; stderr: {' | '.join(err[-3:]) or '(empty)'}"

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=2)


def model_agent_argv(profile: str, pes: int, el: int) -> list[str]:
    return [sys.executable, "-m", "apflab", "agent", "--target", "model", "--profile", profile,
            "--pes", str(pes), "--el", str(el)]  # fmt: skip


class AgentGuest(Guest):
    """Drives any agent (model or bare metal) through the protocol."""

    def __init__(
        self,
        stream: ByteStream,
        name: str,
        *,
        events: tuple = (),
        timeout: float = 10.0,
        extra_capabilities: frozenset[str] = frozenset(),
        profile: Profile | None = None,
    ) -> None:
        self.stream = stream
        self.timeout = timeout
        self._buffer = b""
        self.tail: deque[str] = deque(maxlen=20)
        self.info = self._hello(name, events, extra_capabilities, profile)

    # ----------------------------------------------------------------- wire

    def _readline(self, deadline: float) -> str:
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TargetError(f"no reply within {self.timeout:g} s; {self._tail_text()}")
            chunk = self.stream.read(min(left, 0.5))
            if not chunk and not self.stream.alive():
                raise TargetError(f"the agent stopped; {self._tail_text()}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        text = line.decode("ascii", errors="replace").rstrip("\r")
        self.tail.append(text)
        return text

    def _tail_text(self) -> str:
        return "last lines: " + (" | ".join(self.tail) if self.tail else "(none)")

    def _request(self, req: p.Request) -> list[str]:
        """Send one request; return its reply lines, the final one last."""
        line = p.format_request(req)
        self.tail.append(f"> {line}")
        self.stream.write(line.encode("ascii") + b"\n")
        deadline = time.monotonic() + self.timeout
        lines = []
        while True:
            text = self._readline(deadline)
            if not text.strip():
                continue
            head = text.split(maxsplit=1)[0]
            if head == "EV":
                lines.append(text)
                continue
            if head == "BLOB":
                lines.append(text)
                continue
            if head in ("OK", "ERR", "HELLO", "REGS"):
                lines.append(text)
                if head == "ERR":
                    raise TargetError(f"agent refused {line!r}: {text[4:]}")
                return lines
            # Anything else is console noise (a banner, a firmware message): keep it in the tail.

    @staticmethod
    def _ok_values(line: str) -> tuple[int, ...]:
        return tuple(p.num(w) for w in line.split()[1:])

    def _call_result(self, lines: list[str]) -> CallResult:
        deliveries: list[Delivery] = [p.parse_ev(x) for x in lines[:-1]]
        values = (*self._ok_values(lines[-1]), 0, 0, 0, 0)
        return CallResult((values[0], values[1], values[2], values[3]), tuple(deliveries))

    def _hello(self, name: str, events: tuple, extra: frozenset[str], profile: Profile | None) -> TargetInfo:
        """HELLO; a bare-metal agent says ``profile=-`` and the target's config supplies it."""
        lines = self._request(p.Hello())
        version, f = p.parse_hello(lines[-1])
        if version != p.VERSION:
            raise TargetError(f"agent speaks protocol {version}, this client speaks {p.VERSION}")
        try:
            caps = frozenset(c for c in f.get("caps", "").split(",") if c) | extra
            return TargetInfo(
                name=name,
                profile=profile if profile is not None else get_profile(f["profile"]),
                conduit=f["conduit"],
                el=int(f["el"]),
                pes=int(f["pes"]),
                mpidrs=tuple(p.num(m) for m in f["mpidr"].split(",")),
                entry_point=p.num(f["ep"]),
                resume_point=p.num(f["resume"]),
                vbar=p.num(f["vbar"]),
                capabilities=caps,
                events=events,
            )
        except (KeyError, ValueError) as exc:
            raise TargetError(f"HELLO reply is incomplete ({exc}): {lines[-1][:120]}") from None

    # ------------------------------------------------------------ contract

    def call(self, fid: int, *args: int) -> CallResult:
        return self._call_result(self._request(p.CallRequest(int(fid), tuple(int(a) for a in args))))

    def set_handler(self, arg: int, handler: Handler) -> None:
        self._request(p.SetHandler(arg, handler))

    def select_pe(self, pe: int) -> None:
        self._request(p.SelectPe(pe))

    def regs(self) -> Regs:
        return p.parse_regs(self._request(p.RegsRequest())[-1])

    def inject(self, event: int, pe: int = 0) -> CallResult:
        self.require("inject", "host-side event injection")
        return self._call_result(self._request(p.InjectRequest(pe, event)))

    def raise_irq(self, intid: int, pe: int = 0) -> CallResult:
        self.require("irq", "host-side interrupt injection")
        return self._call_result(self._request(p.IrqRequest(pe, intid)))

    def reset(self) -> None:
        self._request(p.Reset())

    # ------------------------------------------------------ host side over the wire

    def fault(self, pe: int, gfn: int, privileged: bool = False, latency_us: int | None = None) -> CallResult:
        self.require("apf-host")
        return self._call_result(self._request(p.HostFault(pe, gfn, privileged, latency_us)))

    def tick(self, us: int) -> CallResult:
        self.require("apf-host")
        return self._call_result(self._request(p.HostTick(us)))

    def apf_command(self, pe: int | None, cmd: int, value: int = 0) -> tuple[int, int]:
        self.require("apf-host")
        values = self._ok_values(self._request(p.HostApf(pe, cmd, value))[-1])
        if len(values) != 2:
            raise TargetError(f"HOST APF answered {len(values)} values, not (errno, value)")
        return to_s64(values[0]), values[1]

    def irq_level(self, pe: int, intid: int) -> int:
        self.require("apf-host")
        return self._ok_values(self._request(p.HostIrqLevel(pe, intid))[-1])[0]

    def mem_read32(self, gpa: int) -> int:
        self.require("mem")
        return self._ok_values(self._request(p.MemRead32(gpa))[-1])[0]

    def mem_write32(self, gpa: int, value: int) -> None:
        self.require("mem")
        self._request(p.MemWrite32(gpa, value))

    def save_state(self) -> bytes:
        self.require("migration")
        lines = self._request(p.HostSave())
        return b"".join(bytes.fromhex(line.split()[1]) for line in lines if line.startswith("BLOB "))

    def restore_state(self, image: bytes) -> None:
        self.require("migration")
        self._request(p.HostLoad(None))
        for i in range(0, len(image), p.BLOB_CHUNK):
            self._request(p.HostLoad(image[i : i + p.BLOB_CHUNK]))
        self._request(p.HostRestore())

    def restore_snapshot(self) -> None:
        self.require("migration")
        self._request(p.HostRestore(snapshot=True))

    def close(self) -> None:
        self.stream.close()
