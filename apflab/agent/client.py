"""``AgentGuest``: the Guest contract over any byte stream that speaks the agent protocol.

The stream may be a pipe to ``apflab agent``, a pty, or a labgrid console to the
bare-metal agent; :class:`ByteStream` is all the client needs of it. Every read has a
deadline: a silent or dead peer ends in :class:`TargetError` carrying the last lines
seen, never in a hang.
"""

from __future__ import annotations

import abc
import inspect
import os
import select
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from apflab.agent import grammar
from apflab.agent import protocol as p
from apflab.guest import Guest, GuestFacts, TargetError
from apflab.safetext import from_target


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
        err = from_target(read_available(self.proc.stderr, wait=0.5), 2000, lines=True).strip().splitlines()
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


def read_available(pipe: IO[bytes], limit: int = 1 << 16, wait: float = 0.0) -> bytes:
    """What a process wrote to ``pipe`` (its last ``limit`` bytes), read for at most ``wait``
    seconds: never until its end, which a running process or a child still holding the
    pipe would put off for ever. With no wait, one read of what is there."""
    data = b""
    fd = pipe.fileno()
    deadline = time.monotonic() + wait
    while select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        data = (data + chunk)[-limit:]
        if time.monotonic() >= deadline:
            break
    return data


def model_agent_argv(profile: str, pes: int, el: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "apflab",
        "agent",
        "--target",
        "model",
        "--profile",
        profile,
        "--pes",
        str(pes),
        "--el",
        str(el),
    ]


@dataclass
class RoundTrips:
    """Requests answered and the time they took, summed over every boot of a target (its
    driver keeps one and lends it to each boot's client): a run's round-trip figure."""

    count: int = 0
    seconds: float = 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.seconds += seconds


class AgentGuest(Guest):
    """Drives any agent (model or bare metal) through the protocol.

    Every target operation the protocol carries one to one (each request of
    :data:`apflab.agent.grammar.REQUESTS` that names a Guest method) is a method made
    from that description at import; what takes several requests is written here.
    A request whose capability the agent did not announce in HELLO is refused here, as
    Unsupported, without being sent.
    """

    #: Characters of a line kept (head and tail of a longer one): a protocol line is no
    #: longer, so only console noise is ever cut.
    TAIL_LINE = p.MAX_LINE
    #: Bytes held while waiting for a newline; beyond this the line is console noise,
    #: kept as its head and a count of the rest.
    PENDING = 8 * p.MAX_LINE

    def __init__(
        self, stream: ByteStream, name: str, *, timeout: float = 10.0, round_trips: RoundTrips | None = None
    ) -> None:
        self.stream = stream
        self.name = name
        self.timeout = timeout
        self.round_trips = round_trips if round_trips is not None else RoundTrips()
        self._buffer = b""
        self._cut = 0  # bytes of the line being read that were dropped (no newline yet)
        self.tail: deque[str] = deque(maxlen=20)
        version, fields = self._ask(grammar.request("HELLO"))
        if version != p.VERSION:
            raise TargetError(f"agent speaks protocol {version}, this client speaks {p.VERSION}")
        try:
            self._facts = p.facts_of_hello(fields)
        except p.ProtocolError as exc:
            raise TargetError(f"{exc}: {self.tail[-1][:120]}") from None

    @property
    def facts(self) -> GuestFacts:
        return self._facts

    # ----------------------------------------------------------------- wire

    def _readline(self, deadline: float) -> str:
        while b"\n" not in self._buffer:
            if len(self._buffer) > self.PENDING:  # a flood: keep the head, count the rest
                self._cut += len(self._buffer) - self.TAIL_LINE
                self._buffer = self._buffer[: self.TAIL_LINE]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TargetError(f"no reply within {self.timeout:g} s; {self._tail_text()}")
            chunk = self.stream.read(min(left, 0.5))
            if not chunk and not self.stream.alive():
                raise TargetError(f"the agent stopped; {self._tail_text()}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        text = self._shown(line.rstrip(b"\r"))
        self._cut = 0
        self.tail.append(text)
        return text

    def _shown(self, line: bytes) -> str:
        """A console line as the tail keeps it: safe, bounded, a flood's cut counted.

        A protocol line is printable ASCII and comes back unchanged."""
        text = from_target(line, self.TAIL_LINE)
        if self._cut:
            text += f" [... {self._cut} more bytes of this line cut]"
        return text

    def _tail_text(self) -> str:
        lines = list(self.tail)
        if self._buffer or self._cut:
            lines.append(f"{self._shown(self._buffer)} (no newline)")
        return "last lines: " + (" | ".join(lines) if lines else "(none)")

    def _exchange(self, req: p.Request) -> list[str]:
        """Send one request; return its reply lines, the final one last."""
        line = p.format_request(req)
        self.tail.append(f"> {line}")
        sent = time.perf_counter()
        self.stream.write(line.encode("ascii") + b"\n")
        deadline = time.monotonic() + self.timeout
        lines = []
        while True:
            text = self._readline(deadline)
            if not text.strip():
                continue
            head = text.split(maxsplit=1)[0]
            if head in p.LEADING_WORDS:
                lines.append(text)
            elif head in p.FINAL_WORDS:
                self.round_trips.add(time.perf_counter() - sent)
                if head == "ERR":
                    raise TargetError(f"agent refused {line!r}: {text[4:]}")
                lines.append(text)
                return lines
            # Anything else is console noise (a banner, a firmware message): kept in the tail.

    def _ask(self, req: p.Request) -> Any:
        """One request, its reply as the value the Guest operation returns."""
        capability = req.spec.capability  # None for HELLO, sent before the facts are known
        if capability and capability not in self._facts.capabilities:
            raise self._unsupported(capability)
        try:
            return p.parse_reply(req.spec.reply, self._exchange(req))
        except p.ProtocolError as exc:
            reply = self.tail[-1] if self.tail else "(none)"
            raise TargetError(f"malformed reply to {p.format_request(req)[:60]!r}: {exc}; the reply: {reply}") from None

    # ----------------------------------------- operations of several requests

    def restore_state(self, image: bytes) -> None:
        self._ask(grammar.request("HOST LOAD", data=None))
        for i in range(0, len(image), p.BLOB_CHUNK):
            self._ask(grammar.request("HOST LOAD", data=image[i : i + p.BLOB_CHUNK]))
        self._ask(grammar.request("HOST RESTORE"))

    def close(self) -> None:
        self.stream.close()


def _wire_operation(spec: grammar.RequestSpec) -> Callable[..., Any]:
    """The Guest method ``spec.guest_method`` as one request of ``spec``."""
    contract = getattr(Guest, str(spec.guest_method))
    signature = inspect.signature(contract)

    def operation(self: AgentGuest, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        values = {k: v for k, v in bound.arguments.items() if k != "self"}
        return self._ask(spec(**values))

    operation.__name__ = operation.__qualname__ = contract.__name__
    operation.__doc__ = f"{contract.__doc__} (agent protocol: ``{spec.synopsis}``)"
    operation.__signature__ = signature  # type: ignore[attr-defined]
    return operation


for _spec in grammar.REQUESTS:
    if _spec.guest_method is not None:
        setattr(AgentGuest, _spec.guest_method, _wire_operation(_spec))
abc.update_abstractmethods(AgentGuest)
