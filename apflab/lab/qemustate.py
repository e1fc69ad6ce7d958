"""A labgrid QEMUDriver's state for error messages, without ever blocking.

labgrid's QMP helper waits for QEMU's answer without a bound; a QEMU whose main loop
is stuck (e.g. a vCPU blocked writing to a console nobody reads) would hang the error
path itself. :func:`qemu_state` asks on a helper thread and gives up after a timeout.
"""

from __future__ import annotations

import threading

from labgrid.driver import QEMUDriver


def qemu_state(qemu: QEMUDriver, timeout: float = 5.0) -> str:
    """``query-status`` of a running QEMUDriver, how its process ended, or that it does not answer."""
    child = getattr(qemu, "_child", None)
    if child is None:
        return "not running"
    code = child.poll()
    if code is not None:
        return f"exited with status {code}"
    if not qemu.status:
        return "starting"
    answer: list[str] = []

    def ask() -> None:
        try:
            answer.append(str(qemu.monitor_command("query-status")["status"]))
        except Exception as exc:
            answer.append(f"unknown ({type(exc).__name__}: {exc})")

    thread = threading.Thread(target=ask, name="qemu-state", daemon=True)
    thread.start()
    thread.join(timeout)
    return answer[0] if answer else f"running, but QMP gives no answer within {timeout:.0f} s (main loop stuck?)"
