"""``apflab run``: every suite on each target, then one merged JUnit, metrics file and summary.

Each target runs in a pytest process of its own (a wedged target cannot take the
others down) writing reports/out/<target>/; the merge keeps targets apart as
separate test suites. The exit status is 1 when any test failed unexpectedly.

Ctrl-C stops the run, not its results: the pytest at work gets the interrupt (it runs
in a process group of its own, so it gets it from here, once, whether the terminal or
``kill -INT`` sent it), finishes the test at hand and writes its files; the targets
after it do not start; what ran is merged, summarised and reported as usual, and the
exit status is 130, as a shell reports an interrupted command. A per-target file that
cannot be read is named in the summary and left out of the merge, never fatal.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from junitparser import JUnitXml

from apflab.errors import INTERRUPTED
from apflab.report.build import build_after_run
from apflab.report.history import keep_night
from apflab.results import METRICS_VERSION, atomic_write, junit_counts, summary_line
from apflab.verdict import Verdict

#: What ``make run`` runs: the model under both profiles.
MODEL_TARGETS = ("model", "model-kvm-v4")
#: After Ctrl-C, how long pytest has to finish the test at hand and write its results,
#: then how long it has after SIGTERM before SIGKILL.
STOP_GRACE_S = 20.0
TERM_GRACE_S = 5.0


def pytest_argv(target: str, out: Path, extra: list[str], lab: str | None) -> list[str]:
    tdir = out / target
    return [
        sys.executable,
        "-m",
        "pytest",
        "testcases",
        "-q",
        "-p",
        "no:cacheprovider",
        "--target",
        target,
        "--apflab-junit",
        str(tdir / "junit.xml"),
        "--apflab-metrics",
        str(tdir / "metrics.json"),
        *(["--lg-env", lab] if lab else []),
        *extra,
    ]


class Interrupted(Exception):
    """Ctrl-C arrived while a target ran; ``code`` is how its pytest ended."""

    def __init__(self, code: int) -> None:
        super().__init__(f"pytest ended with status {code}")
        self.code = code


def run_target(target: str, out: Path, extra: list[str], lab: str | None) -> int:
    """pytest's exit status on ``target``; Interrupted (pytest stopped) on Ctrl-C."""
    cmd = pytest_argv(target, out, extra, lab)
    print(f"== {target}: {' '.join(cmd[1:])}", flush=True)
    proc = subprocess.Popen(cmd, start_new_session=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        raise Interrupted(stop(proc)) from None


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # pytest and what it started (QEMU)


def stop(proc: subprocess.Popen) -> int:
    """Stop pytest as Ctrl-C would have (SIGINT to its group), then harder, each bounded;
    a second Ctrl-C kills it at once. Returns its exit status."""
    try:
        for sig, grace in ((signal.SIGINT, STOP_GRACE_S), (signal.SIGTERM, TERM_GRACE_S)):
            _signal_group(proc, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                return proc.wait(timeout=grace)
    except KeyboardInterrupt:
        pass
    _signal_group(proc, signal.SIGKILL)
    return proc.wait()


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Ctrl-C waits while the merge and the summary are written (quick, and bounded)."""
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def read_target(out: Path, target: str) -> tuple[JUnitXml | None, str]:
    """A target's JUnit, or None and why it cannot be used ("" when there is none)."""
    path = out / target / "junit.xml"
    if not path.exists():
        return None, ""
    try:
        return JUnitXml.fromfile(str(path)), ""
    except (ET.ParseError, OSError, ValueError) as exc:
        return None, f"{path} cannot be read ({exc}); left out of the merge"


def merge(out: Path, junits: dict[str, JUnitXml]) -> None:
    merged = JUnitXml()
    metrics: list[dict] = []
    props: dict[str, dict] = {}
    for t, xml in junits.items():
        merged += xml
        mpath = out / t / "metrics.json"
        try:
            doc = json.loads(mpath.read_text()) if mpath.exists() else {}
        except (OSError, ValueError):
            doc = {}  # the metrics of a target cut short; its JUnit still counts
        metrics.extend(doc.get("metrics", []))
        props[t] = doc.get("properties", {})
    tmp = out / ".junit.merged.xml"
    merged.write(str(tmp))
    atomic_write(out / "junit.xml", tmp.read_bytes())
    tmp.unlink()
    doc = {"version": METRICS_VERSION, "targets": props, "metrics": metrics}
    atomic_write(out / "metrics.json", json.dumps(doc, indent=1).encode())


def summarise(out: Path, chosen: list[str], codes: dict[str, int], cut: str | None) -> tuple[list[str], Counter]:
    """The summary's lines (one per target, the total last) and the total counts; merges."""
    lines, junits, total = [], {}, Counter()
    for t in chosen:
        if t not in codes:
            lines.append(f"{t}: not run (interrupted)")
            continue
        xml, problem = read_target(out, t)
        if xml is None:
            lines.append(f"{t}: {problem or 'no results'} (pytest exit status {codes[t]})")
            continue
        junits[t] = xml
        counts = junit_counts(xml)
        total.update(counts)
        lines.append(f"{t}: {summary_line(counts)}" + (" (interrupted)" if t == cut else ""))
    out.mkdir(parents=True, exist_ok=True)
    merge(out, junits)
    lines.append(summary_line(total))
    return lines, total


def run_suites(
    targets: list[str] | None, out_dir: str, extra: list[str], lab: str | None = None, history: str | None = None
) -> int:
    """``history``: a folder the run's results are added to as a night (apflab.report.history)."""
    out = Path(out_dir)
    chosen = list(targets or MODEL_TARGETS)
    codes: dict[str, int] = {}
    cut: str | None = None
    for t in chosen:
        try:
            codes[t] = run_target(t, out, extra, lab)
        except Interrupted as stopped:
            codes[t], cut = stopped.code, t
            print(f"apflab: interrupted during {t}: merging and reporting what ran", file=sys.stderr, flush=True)
            break
    with interrupts_held():
        lines, total = summarise(out, chosen, codes, cut)
        atomic_write(out / "summary.txt", ("\n".join(lines) + "\n").encode())
    try:
        build_after_run(out)  # reports/out/report.html and report.md; the SUMMARY lines stay last
    except KeyboardInterrupt:
        print("apflab: report not built: interrupted", file=sys.stderr)
        cut = cut or "the report"
    if history is not None:
        with interrupts_held():
            keep_night(out, Path(history))
    print("\n".join(lines), flush=True)
    if cut is not None:
        return INTERRUPTED
    broken = [t for t, c in codes.items() if c not in (0, 1)]
    if broken:
        print(f"apflab: pytest could not run on: {', '.join(broken)}", file=sys.stderr)
        return 2
    return 1 if total.get(Verdict.FAIL, 0) else 0
