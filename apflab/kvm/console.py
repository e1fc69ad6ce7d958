"""What the KVM host's console says about the host, read alongside the agent's protocol.

On the ``qemu-kvm`` target the L1's console carries everything at once: the kernel's
emergency messages (targets/qemu-kvm/init leaves only those on the console), init's
``APFLAB-INIT`` lines, apflab-vmm's announce line, its errors and exit line, and the
agent's protocol. :class:`ConsoleWatch` is fed every byte the driver reads and keeps:

* the announce line (:mod:`apflab.kvm.announce`): the SDEI mode and the host kernel;
* the first **failure**: a host kernel oops or panic (its text, up to
  :data:`FAILURE_LINES` lines), the VMM's one-line error, its exit line, init's
  ``vmm exited`` line. A failure means this run of the agent's VM is over: the driver
  reports it, and the agent driver starts a fresh VM (after a kernel failure in a
  fresh L1);
* whether init waits for a console line to start the next VMM (``apflab.after=wait``);
* the console's last lines, for error messages.
"""

from __future__ import annotations

import re
import threading
from collections import deque

from apflab.kvm.announce import EXIT_PREFIX, PREFIX, Announce, AnnounceError, parse_announce

#: Kernel messages that mean the host kernel is broken (printed at KERN_EMERG/KERN_ALERT,
#: so they pass init's ``dmesg -n 2``): arch/arm64/mm/fault.c's "Unable to handle kernel
#: ...", die()'s "Internal error: ...", panic()'s "Kernel panic - not syncing", BUG()s and
#: lockup detectors' "BUG: ..." lines.
KERNEL_FAILURE = re.compile(
    r"Unable to handle kernel|Internal error: |Kernel panic - not syncing|\bBUG: |hard LOCKUP|"
    r"rcu: INFO: rcu_\w+ (self-)?detected stall"
)
#: The VMM's failures: its one-line error (stderr, on the same console in L1), its exit
#: line, and init's line after the VMM ended.
VMM_ERROR = "apflab-vmm: error: "
INIT_EXIT = re.compile(r"APFLAB-INIT vmm exited status=(-?\d+)")
#: init waits for a console line before it starts the next VMM (apflab.after=wait).
INIT_WAITING = "APFLAB-INIT waiting"
#: Lines of an oops kept after its first line (the rest of it is in dmesg, not the console).
FAILURE_LINES = 12
TAIL_LINES = 40


class ConsoleWatch:
    def __init__(self) -> None:
        self._partial = ""
        self._lock = threading.Lock()
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.announce: Announce | None = None
        self.announce_error: str | None = None
        self.failure: str | None = None  # the first failure's one-line summary
        self.failure_text: list[str] = []  # its lines (an oops's first lines)
        self.kind: str | None = None  # "kernel" or "vmm"
        self.vmm_exit: tuple[int, str] | None = None
        self.init_waiting = False  # init waits for a line to start the next VMM
        self._collecting = 0

    def feed(self, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            text = self._partial + data.decode(errors="replace")
            *lines, self._partial = text.replace("\r", "").split("\n")
            for line in lines:
                self._line(line)
            if len(self._partial) > 4096:  # a console without newlines: keep it bounded
                self._line(self._partial)
                self._partial = ""

    def _line(self, line: str) -> None:
        line = line.rstrip()
        if not line:
            return
        self.tail.append(line)
        if self._collecting:
            self.failure_text.append(line)
            self._collecting -= 1
        if line.startswith(INIT_WAITING):
            self.init_waiting = True
            return
        if line.startswith(PREFIX):
            try:
                self.announce = parse_announce(line)
            except AnnounceError as exc:
                self.announce_error = str(exc)
            return
        if KERNEL_FAILURE.search(line):
            self._fail("kernel", f"host kernel failure: {line.strip()}", line)
        elif VMM_ERROR in line:
            self._fail("vmm", line[line.index(VMM_ERROR) :].strip(), line)
        elif line.startswith(EXIT_PREFIX):
            status, _, reason = line[len(EXIT_PREFIX) :].partition(" reason=")
            code = int(status.removeprefix("status=")) if status.removeprefix("status=").lstrip("-").isdigit() else -1
            self.vmm_exit = (code, reason)
            self._fail("vmm", f"the VMM exited (status {code}: {reason})", line)
        elif m := INIT_EXIT.search(line):
            if self.vmm_exit is None:
                self.vmm_exit = (int(m.group(1)), "no exit line (killed?)")
            self._fail("vmm", f"the VMM exited (init saw status {m.group(1)})", line)

    def _fail(self, kind: str, summary: str, line: str) -> None:
        if self.failure is not None:
            return
        self.failure, self.kind = summary, kind
        self.failure_text = [line]
        self._collecting = FAILURE_LINES if kind == "kernel" else 0

    def tail_text(self, lines: int = 12) -> str:
        with self._lock:
            return " | ".join(list(self.tail)[-lines:])

    def failure_report(self) -> str:
        """The failure's own lines (an oops's first lines), or ''."""
        with self._lock:
            return " | ".join(self.failure_text)
