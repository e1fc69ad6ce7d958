"""The host end of one apflab-vmm connection: handshake, routing, host commands.

A reader thread takes each line from the VMM: CALL and STOP go to the dispatcher (the
model bridge in forward mode) whose answer is sent back at once; RES completes the
host command waiting for it; BYE ends the VMM's session. A stream that outlives its
VMM (a virtio-serial port the next VMM in the same L1 opens) carries the next VMM's
HELLO: a new VM, served like the first. The host side sends KICK (an event
became pending for a vCPU that is not talking to us) and the SDEI / APF commands of
the kernel path (docs/vmm-channel.md). Every wait is bounded; a dead VMM or a
malformed line ends the session with the reason kept in :attr:`VmmPeer.error`.
"""

from __future__ import annotations

import threading
from typing import Protocol

from apflab.abi.uapi import SDEI_CMD_SIZE
from apflab.kvm import channel as ch
from apflab.kvm.link import LineLink, LinkClosed, LinkTimeout

#: Bytes of the union in struct kvm_sdei_cmd (after the u32 cmd and its padding).
SDEI_PAYLOAD = SDEI_CMD_SIZE - 8


class PeerError(RuntimeError):
    """The VMM session failed or a host command got no answer (the message says which)."""


class Dispatcher(Protocol):
    """Who answers the VMM's forwarded calls (apflab.kvm.bridge.ModelBridge)."""

    def on_hello(self, hello: ch.VmmHello, peer: VmmPeer) -> None: ...

    def on_call(self, call: ch.Call) -> ch.Answer: ...

    def on_stop(self, stop: ch.Stop) -> ch.Answer: ...

    def on_power(self, power: ch.Power) -> None: ...


class VmmPeer:
    def __init__(self, link: LineLink, dispatcher: Dispatcher | None = None, *, hello_timeout: float = 30.0) -> None:
        self.link = link
        self.dispatcher = dispatcher
        self.error: str | None = None
        self.bye: str | None = None
        self._results: dict[str, tuple[threading.Event, list[ch.Res]]] = {}
        self._results_lock = threading.Lock()
        self._command_lock = threading.Lock()
        self.hello = self._handshake(hello_timeout)
        self._reader = threading.Thread(target=self._read_loop, name=f"vmm-peer {link.name}", daemon=True)
        self._reader.start()

    # ------------------------------------------------------------ handshake

    def _handshake(self, timeout: float) -> ch.VmmHello:
        try:
            msg = ch.parse_vmm_line(self.link.readline(timeout))
        except (LinkTimeout, LinkClosed, ch.ChannelError) as exc:
            self.link.close()
            raise PeerError(f"VMM handshake failed: {exc}") from None
        if not isinstance(msg, ch.VmmHello):
            self.link.send(ch.format_refusal("expected HELLO first"))
            self.link.close()
            raise PeerError(f"the VMM's first line was not HELLO: {msg!r}")
        try:
            self._accept(msg)
        except PeerError:
            self.link.close()
            raise
        return msg

    def _accept(self, msg: ch.VmmHello) -> None:
        """Answer a HELLO: refused (PeerError, after ERR to the VMM) or a new VM for the dispatcher."""
        if msg.version != ch.VERSION:
            refusal = f"channel version {msg.version} not supported; this host speaks {ch.VERSION}"
            self.link.send(ch.format_refusal(refusal))
            raise PeerError(f"the VMM speaks channel version {msg.version}, this host {ch.VERSION}")
        if msg.sdei == "forward" and self.dispatcher is None:
            self.link.send(ch.format_refusal("no SDEI dispatcher on this host"))
            raise PeerError("the VMM forwards SDEI calls but this host has no dispatcher for them")
        if self.dispatcher is not None:
            self.dispatcher.on_hello(msg, self)
        self.link.send(ch.format_hello())

    def _next_vm(self, msg: ch.VmmHello) -> None:
        """The next VMM on the same stream said HELLO: what the last one left undone fails."""
        with self._results_lock:
            for event, _ in self._results.values():
                event.set()
        self._accept(msg)
        self.hello, self.bye = msg, None

    # ------------------------------------------------------------- reading

    def _read_loop(self) -> None:
        try:
            while True:
                msg = ch.parse_vmm_line(self.link.readline(None))
                if isinstance(msg, (ch.Call, ch.Stop)):
                    self._serve(msg)
                elif isinstance(msg, ch.Res):
                    self._complete(msg)
                elif isinstance(msg, ch.Power):
                    self._power(msg)
                elif isinstance(msg, ch.Bye):
                    self.bye = msg.reason or "(no reason)"  # the stream may carry the next VMM's HELLO
                elif isinstance(msg, ch.VmmHello):
                    self._next_vm(msg)
                else:
                    raise ch.ChannelError(f"unexpected {type(msg).__name__} after the handshake")
        except LinkClosed as exc:
            self.error = self.error or f"the VMM closed the channel ({exc})"
        except (ch.ChannelError, PeerError) as exc:
            self.error = f"VMM channel: {exc}"
            self.link.close()
        except Exception as exc:  # a dispatcher bug must end the session loudly, not kill a thread silently
            self.error = f"the dispatcher failed: {type(exc).__name__}: {exc}"
            self.link.close()
        finally:
            with self._results_lock:
                for event, _ in self._results.values():
                    event.set()

    def _serve(self, msg: ch.Call | ch.Stop) -> None:
        if msg.vcpu >= self.hello.vcpus:
            raise ch.ChannelError(f"vCPU {msg.vcpu} does not exist (the VMM announced {self.hello.vcpus})")
        if self.dispatcher is None:
            raise ch.ChannelError(f"{type(msg).__name__} from vCPU {msg.vcpu} but no dispatcher on this host")
        answer = self.dispatcher.on_call(msg) if isinstance(msg, ch.Call) else self.dispatcher.on_stop(msg)
        self.link.send(ch.format_answer(answer))

    def _power(self, msg: ch.Power) -> None:
        if msg.vcpu >= self.hello.vcpus:
            raise ch.ChannelError(f"POWER of vCPU {msg.vcpu}, which does not exist")
        if self.dispatcher is not None:
            self.dispatcher.on_power(msg)

    def _complete(self, res: ch.Res) -> None:
        with self._results_lock:
            slot = self._results.get(res.target)
        if slot is None:
            raise ch.ChannelError(f"RES for {res.target} that nobody asked for")
        slot[1].append(res)
        slot[0].set()

    @property
    def alive(self) -> bool:
        return self.error is None and self.bye is None and self._reader.is_alive()

    # ------------------------------------------------------------- sending

    def kick(self, vcpu: int) -> None:
        """Ask the VMM to take ``vcpu`` out of KVM_RUN and send STOP."""
        if self.alive:
            self.link.send(ch.format_kick(vcpu))

    def _command(self, target: str, line: str, timeout: float) -> ch.Res:
        with self._command_lock:  # one host command at a time
            event, box = threading.Event(), []
            with self._results_lock:
                self._results[target] = (event, box)
            try:
                if not self.alive:
                    raise PeerError(f"the VMM session is over: {self.error or self.bye}")
                self.link.send(line)
                if not event.wait(timeout) or not box:
                    raise PeerError(
                        f"no answer to {line[:40]!r} within {timeout:g} s{'; ' + self.error if self.error else ''}"
                    )
                return box[0]
            finally:
                with self._results_lock:
                    self._results.pop(target, None)

    def sdei(self, target: int | str, cmd: int, payload: bytes = b"", timeout: float = 10.0) -> tuple[int, bytes]:
        """KVM_ARM_SDEI_COMMAND on the VM (``"vm"``) or a vCPU: (0 or -errno, the union's bytes)."""
        if len(payload) > SDEI_PAYLOAD:
            raise ValueError(f"an SDEI payload is at most {SDEI_PAYLOAD} bytes, got {len(payload)}")
        res = self._command(str(target), ch.format_sdei(str(target), cmd, payload.rstrip(b"\0")), timeout)
        data = bytes.fromhex(res.data) if res.data else b""
        return res.status, data.ljust(SDEI_PAYLOAD, b"\0")

    def apf(self, target: int | str, cmd: int, value: int | None = None, timeout: float = 10.0) -> tuple[int, int]:
        """KVM_ARM_ASYNC_PF_COMMAND on the VM (``"vm"``) or a vCPU: (0 or -errno, the value field)."""
        res = self._command(str(target), ch.format_apf(str(target), cmd, value), timeout)
        return res.status, int(res.data or "0", 16)

    def close(self) -> None:
        self.link.close()
        self._reader.join(timeout=2)
