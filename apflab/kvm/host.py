"""The host side of apflab-vmm runs, whatever carries them (a nested L1 here, a board over SSH).

:class:`VmmHost` puts together what the labgrid drivers of a KVM target share, for one
host boot (one L1, one SSH session):

* the channel to the VMM (:class:`VmmPeer`) with the reference model as the dispatcher
  of forwarded SDEI calls and of the agent's host steps (:class:`ModelBridge`); each VMM
  that says HELLO on it is a new VM with a fresh model;
* per VMM run, a :class:`ConsoleWatch` on the console: the announce line, oopses, the
  VMM's end (:meth:`next_vm` starts the next run's);
* what the host offers the suites: capabilities, the event catalogue, and for the
  capabilities it cannot offer, the reason (a SKIP says it). The agent itself announces
  ``inject`` when its console says the host serves host steps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from apflab.guest import EventInfo
from apflab.kvm.bridge import ModelBridge
from apflab.kvm.console import ConsoleWatch
from apflab.kvm.link import LineLink, LinkClosed, LinkTimeout, Listener
from apflab.kvm.peer import PeerError, VmmPeer
from apflab.model.platform import PLATFORMS


class VmmHost:
    """One host boot: its channel (if any) and the watch of the current VMM run."""

    def __init__(self, dispatcher_profile: str, console: str) -> None:
        self.bridge = ModelBridge(dispatcher_profile)
        self.dispatcher_profile = dispatcher_profile
        self.console = console  # the agent's console kind: fast or pl011
        self.watch = ConsoleWatch()
        self.peer: VmmPeer | None = None
        self.channel_error: str | None = None
        self.runs = 1

    # ------------------------------------------------------------- channel

    def serve(self, connect: Callable[[], LineLink], timeout: float, retry: bool = False) -> None:
        """In a thread: get the link (accept, or connect through a forward), then the VMM's HELLO.

        With ``retry``, a link that closes before HELLO is tried again until ``timeout``:
        an SSH port forward accepts at once and closes when nothing listens on the board yet.
        """

        def run() -> None:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    left = max(deadline - time.monotonic(), 0.1)
                    self.peer = VmmPeer(connect(), self.bridge, hello_timeout=left)
                    return
                except (LinkTimeout, LinkClosed, PeerError, OSError) as exc:
                    if not retry or time.monotonic() >= deadline:
                        self.channel_error = f"VMM channel: {exc}"
                        return
                time.sleep(0.2)

        threading.Thread(target=run, name="vmm-channel", daemon=True).start()

    def serve_listener(self, listener: Listener, timeout: float) -> None:
        self.serve(lambda: listener.accept(timeout), timeout)

    def end_vm(self) -> bool:
        """Ask the running VMM to end (BYE); False when there is no channel to ask on.

        Not when the VMM has ended already: its successor on the same stream would read
        the BYE first (it skips such lines, but need not see them)."""
        if self.peer is None or not self.peer.alive or self.watch.failure is not None:
            return False
        try:
            self.peer.link.send("BYE")
        except LinkClosed:
            return False
        return True

    def next_vm(self) -> None:
        """The next VMM run on this host: a fresh watch (its HELLO gives the bridge a fresh model)."""
        self.watch = ConsoleWatch()
        self.runs += 1

    def close(self) -> None:
        if self.peer is not None:
            self.peer.close()

    # ------------------------------------------------------------- health

    def failure(self) -> str | None:
        """Why this VMM run is over (an oops, the VMM's end, a broken channel), or None."""
        if self.watch.failure is not None:
            return self.watch.failure
        if self.peer is not None and self.peer.error is not None:
            return f"VMM channel: {self.peer.error}"
        announce = self.watch.announce
        return self.channel_error if announce is not None and announce.channel is not None else None

    def host_broken(self) -> bool:
        """The host itself needs a fresh boot: its kernel failed, or the channel is gone."""
        return self.watch.kind == "kernel" or (self.peer is not None and self.peer.error is not None)

    def report(self) -> str:
        """The failure's text (an oops's first lines) and the console's last lines."""
        parts = []
        if self.watch.failure_text:
            parts.append(f"failure: {self.watch.failure_report()}")
        tail = self.watch.tail_text()
        if tail:
            parts.append(f"console: {tail}")
        return "; ".join(parts)

    # -------------------------------------------------------- capabilities

    def _forwarding(self) -> bool:
        announce = self.watch.announce
        return announce is not None and announce.sdei == "forward"

    def capabilities(self) -> frozenset[str]:
        if self.watch.announce is None:
            return frozenset()
        return frozenset({"kvm-vendor-hyp"})  # KVM answers the vendor-hypervisor calls in every mode

    def notes(self) -> dict[str, str]:
        """Why the capabilities this host lacks are missing (a SKIP's reason)."""
        announce = self.watch.announce
        if announce is None:
            return {}
        kernel = f"host kernel {announce.kernel}"
        if "sdei-kernel" in announce.caps:
            no_apf = "apflab-vmm does not drive the host side of APF (faults, clock) or save/restore yet"
        else:
            no_apf = f"{kernel} has no KVM_CAP_ARM_SDEI (the SDEI/APF series); SDEI here is {announce.sdei}"
        notes = {"apf-host": no_apf, "migration": no_apf, "sdei-vmm": no_apf}
        if announce.sdei == "none":
            why = f"{kernel} has neither KVM_CAP_ARM_SDEI nor the SMCCC filter (Linux >= 6.4)"
            notes.update({"sdei": why, "inject": why, "in-handler-inject": why})
        elif announce.sdei == "kernel":
            why = "in-kernel injection (v4 INJECT_EVENT) is not wired to the suites (docs/reference/kvm-v4.md)"
            notes.update({"inject": why, "in-handler-inject": why})
        elif self.console != "fast":
            why = "the PL011 agent cannot reach its host (the fast console says when the host serves host steps)"
            notes.update({"inject": why, "in-handler-inject": why})
        notes["irq"] = "interrupts reach the guest through KVM's vGIC, not through the SDEI dispatcher"
        notes["mem"] = "the bare-metal agent's memory is not reachable from the host side"
        notes["system-reset"] = "the bare-metal agent has no PSCI RESET request (the VMM would start afresh)"
        return notes

    def events(self) -> tuple[EventInfo, ...] | None:
        """The dispatcher's event catalogue when SDEI is forwarded to the model, else None."""
        return PLATFORMS[self.dispatcher_profile].events if self._forwarding() else None
