"""ReconnectingSerialDriver: labgrid's SerialDriver for a raw TCP console that comes and goes.

A console server (ser2net on a lab host) keeps its TCP port open while the board is
power-cycled, so labgrid's SerialDriver connects once. A stand-in board's console is
QEMU's own TCP server, which disappears with every power cycle (QEMUBoardPowerDriver):
this driver connects when first used rather than on activation, and after the peer
went away it reconnects on the next read or write instead of failing for good.

Reads also differ in one way that matters for a line protocol: SerialDriver asks
pyserial for ``size`` bytes and so waits the whole timeout unless that many arrive;
this driver returns as soon as anything arrived, like labgrid's other consoles.
"""

from __future__ import annotations

import contextlib
import socket
import time

import attr
import serial
from labgrid.driver.serialdriver import SerialDriver
from labgrid.factory import target_factory
from pexpect import TIMEOUT

from apflab.lab import keys


@target_factory.reg_driver
@attr.s(eq=False)
class ReconnectingSerialDriver(SerialDriver):
    """Binds to:
        port: NetworkSerialPort (``protocol: raw``)

    Args:
        connect_timeout (float): seconds a write keeps retrying to connect before it fails
        (and SerialDriver's txdelay, txchunk, timeout)
    """

    connect_timeout = keys.timeout(10.0)

    def _connect(self) -> bool:
        try:
            self.open()
        except serial.SerialException:
            return False
        sock = getattr(self.serial, "_socket", None)
        if sock is not None:  # one request line, one reply: Nagle would hold segments for ACKs
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return True

    def on_activate(self) -> None:
        with contextlib.suppress(serial.SerialException):  # nothing listens yet (board off): connect on use
            super().on_activate()
            self._connect()

    def _drop(self) -> None:
        """Forget a connection whose peer is gone, without pyserial's 0.3 s close() pause."""
        sock = getattr(self.serial, "_socket", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
            self.serial._socket = None
            self.serial.is_open = False
        with contextlib.suppress(OSError, serial.SerialException):
            self.close()
        self.status = 0

    def _read(self, size: int = 1, timeout: float = 0.0, max_size: int | None = None) -> bytes:
        if not self.status and not self._connect():
            time.sleep(min(timeout, 0.1))
            raise TIMEOUT(f"console {self.serial.port} is not reachable (board off?)")
        try:
            self.serial.timeout = timeout
            data = self.serial.read(1)
            if data:
                self.serial.timeout = 0
                data += self.serial.read((max_size or max(size, 4096)) - 1)
        except serial.SerialException:
            self._drop()  # the board went away: reconnect next time
            raise TIMEOUT(f"console {self.serial.port} closed by peer") from None
        if not data:
            raise TIMEOUT(f"Timeout of {timeout:.2f} seconds exceeded")
        return data

    def _write(self, data: bytes) -> int:
        deadline = time.monotonic() + self.connect_timeout
        while not self.status and not self._connect():
            if time.monotonic() >= deadline:
                raise serial.SerialException(
                    f"console {self.serial.port}: nothing listens after {self.connect_timeout:g} s"
                )
            time.sleep(0.05)
        try:
            return self.serial.write(data)
        except serial.SerialException:
            self._drop()
            raise
