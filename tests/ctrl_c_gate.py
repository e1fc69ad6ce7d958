"""A pytest plugin for the interrupt tests: after N tests, the next one waits for Ctrl-C.

Loaded with ``-p tests.ctrl_c_gate``; with APFLAB_TEST_GATE_AFTER=N in the environment,
the (N+1)th test of the session (of each xdist worker) waits until it is interrupted, at
most APFLAB_TEST_GATE_WAIT seconds (120), and fails if nobody came. An interrupt test
can then wait for N results and be sure the run is still going when its SIGINT
arrives: the run cannot finish first, however busy the machine is.
"""

from __future__ import annotations

import os
import time

import pytest

_finished = 0


def pytest_runtest_logfinish(nodeid: str, location: tuple) -> None:
    global _finished
    _finished += 1


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    after = int(os.environ.get("APFLAB_TEST_GATE_AFTER", "0") or 0)
    if not after or _finished < after:
        return
    wait = float(os.environ.get("APFLAB_TEST_GATE_WAIT", "120"))
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        time.sleep(0.05)
    pytest.fail(f"held after {after} tests for {wait:g} s and never interrupted", pytrace=False)
