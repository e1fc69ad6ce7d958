"""The nightly run: places from the coordinator, pytest-xdist over them, places given back.

1. connect to the coordinator (bounded: an unreachable one is an error in seconds);
2. reserve and acquire up to N places by tags before pytest starts (reserve.py);
3. per target (a place's ``target`` tag, else ``--target``), one pytest run with
   ``-n <places>`` and the worker plugin (worker.py), the runs side by side; each pytest
   is its own process group, stopped (SIGINT, then SIGTERM, then SIGKILL, each bounded)
   on Ctrl-C, SIGTERM or the run's time limit;
4. always, also after an error or an interrupt: release every place and cancel every
   reservation (a second Ctrl-C cannot cut that short);
5. merge the per-place results into one JUnit and one report (report.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from apflab.nightly.report import PlaceResult, RunFacts, merge
from apflab.nightly.reserve import Allocation, Lease, acquire_places, give_back
from apflab.nightly.session import CoordinatorSession, LabError, coordinator_address
from apflab.nightly.worker import PLAN_ENV
from apflab.results import summary_line
from apflab.verdict import Verdict

STOP_GRACE_S = 20.0  # after SIGINT, for pytest to finish the test at hand and write its results


class Interrupted(Exception):
    """SIGTERM (or SIGINT) arrived: stop, give the places back, keep what finished."""


@dataclass
class NightlyOptions:
    tags: dict[str, str]
    count: int
    minimum: int = 1
    deadline_s: float = 60.0
    coordinator: str | None = None
    lab: str = "lab.yaml"
    out: Path = Path("reports/out/nightly")
    suites: list[str] = field(default_factory=lambda: ["testcases"])
    target: str | None = None
    pytest_args: list[str] = field(default_factory=list)
    run_timeout_s: float = 4 * 3600.0
    connect_timeout_s: float = 10.0


@dataclass
class NightlyResult:
    exit_code: int
    places: list[PlaceResult]
    facts: RunFacts


def remote_targets(lab: str) -> dict[str, bool]:
    """The lab file's targets, each with whether it is a RemotePlace target."""
    from labgrid.config import Config

    targets = Config(lab).get_targets()
    return {name: "RemotePlace" in ((cfg or {}).get("resources") or {}) for name, cfg in targets.items()}


def plan_groups(
    leases: list[Lease], default_target: str | None, lab: str, notes: list[str]
) -> tuple[dict[str, list[Lease]], list[Lease]]:
    """Places by the target that drives them; places no target fits are returned apart."""
    known = remote_targets(lab)
    groups: dict[str, list[Lease]] = {}
    unfit: list[Lease] = []
    for lease in leases:
        target = lease.tags.get("target") or default_target
        if target is None:
            notes.append(f"{lease.place}: no `target` tag and no --target: not used")
        elif target not in known:
            notes.append(f"{lease.place}: target {target} is not in {lab}: not used")
        elif not known[target]:
            notes.append(f"{lease.place}: target {target} in {lab} is not a RemotePlace target: not used")
        else:
            groups.setdefault(target, []).append(lease)
            continue
        unfit.append(lease)
    return groups, unfit


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into Interrupted in the main thread (Ctrl-C is KeyboardInterrupt already)."""

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(f"signal {signum}")

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def uninterruptible() -> Iterator[None]:
    """Hold SIGINT and SIGTERM off while the places are given back (each call is bounded)."""
    try:
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class PytestRun:
    """One pytest -n K over one target's places, in a process group of its own."""

    def __init__(self, target: str, leases: list[Lease], opts: NightlyOptions, address: str) -> None:
        self.target = target
        self.leases = leases
        self.plan = opts.out / f"plan-{target}.json"
        self.log = opts.out / f"pytest-{target}.log"
        plan = {
            "coordinator": address,
            "out": str(opts.out),
            "target": target,
            "places": [{"place": x.place, "token": x.token, "tags": x.tags} for x in leases],
        }
        self.plan.write_text(json.dumps(plan, indent=1))
        self.argv = [
            sys.executable,
            "-m",
            "pytest",
            *opts.suites,
            "-p",
            "apflab.nightly.worker",
            "-n",
            str(len(leases)),
            "--dist",
            "each",
            "--max-worker-restart=0",
            "--target",
            target,
            "--lg-env",
            opts.lab,
            "--lg-coordinator",
            address,
            "-p",
            "no:cacheprovider",
            "-q",
            "-rN",
            *opts.pytest_args,
        ]
        self.env = {**os.environ, PLAN_ENV: str(self.plan), "LG_COORDINATOR": address}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    def done(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def stop(self) -> None:
        """SIGINT (pytest finishes the test at hand and writes results), then harder, bounded."""
        if self.proc is None:
            return
        for sig, grace in ((signal.SIGINT, STOP_GRACE_S), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        # QEMUs of workers that died on a signal are in the group too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    @property
    def code(self) -> int:
        return -1 if self.proc is None or self.proc.returncode is None else self.proc.returncode


def run_nightly(opts: NightlyOptions, say: Callable[[str], None] = print) -> NightlyResult:
    """Do the whole run. An unreachable coordinator raises CoordinatorUnreachable; every
    later problem (no place by the deadline, ...) is in the result's facts and report."""
    t_start = time.monotonic()
    opts.out.mkdir(parents=True, exist_ok=True)
    address = coordinator_address(opts.coordinator, opts.lab)
    facts = RunFacts(address, opts.tags, opts.count, opts.minimum, opts.deadline_s, [])
    session = CoordinatorSession(address, timeout=opts.connect_timeout_s)
    facts.timings["connect_s"] = time.monotonic() - t_start
    alloc: Allocation | None = None
    runs: list[PytestRun] = []
    try:
        with sigterm_interrupts():
            try:
                alloc = acquire_places(
                    session,
                    opts.tags,
                    opts.count,
                    opts.minimum,
                    opts.deadline_s,
                    log=lambda m: say(f"apflab nightly: {m}"),
                )
                facts.notes.extend(alloc.notes)
                facts.timings["places_s"] = alloc.places_s
                facts.timings["acquire_s"] = alloc.acquire_s
                groups, unfit = plan_groups(alloc.leases, opts.target, opts.lab, facts.notes)
                if unfit:
                    give_back(session, unfit, [x.token for x in unfit])
                if len(alloc.leases) < opts.count:
                    say(
                        f"apflab nightly: asked for {opts.count} places, got {len(alloc.leases)}: "
                        + "; ".join(alloc.notes)
                    )
                facts.places = [(x.place, t, x.tags) for t, leases in groups.items() for x in leases]
                if not groups:
                    raise LabError("no acquired place fits a target: " + "; ".join(facts.notes))
                runs = [PytestRun(t, leases, opts, address) for t, leases in groups.items()]
                t_run = time.monotonic()
                for run in runs:
                    say(
                        f"apflab nightly: {run.target} on {', '.join(x.place for x in run.leases)}: "
                        f"pytest -n {len(run.leases)} (log {run.log})"
                    )
                    run.start()
                deadline = t_run + opts.run_timeout_s
                while not all(r.done() for r in runs):
                    if time.monotonic() > deadline:
                        facts.notes.append(f"the run hit its time limit of {opts.run_timeout_s:g} s and was stopped")
                        facts.interrupted = True
                        break
                    time.sleep(0.2)
                facts.timings["pytest_s"] = time.monotonic() - t_run
            except LabError as exc:  # no places, or none fits: nothing ran, the report says why
                facts.error = str(exc)
            except (KeyboardInterrupt, Interrupted) as exc:
                facts.interrupted = True
                facts.notes.append(f"interrupted ({type(exc).__name__}): stopped, places given back")
                say("apflab nightly: interrupted: stopping pytest, giving the places back")
    finally:
        with uninterruptible():
            for run in runs:
                run.stop()
            t_rel = time.monotonic()
            leases = alloc.leases if alloc else []
            errors = give_back(session, leases, [x.token for x in leases])
            facts.timings["release_s"] = time.monotonic() - t_rel
            session.close()
        for err in errors:
            facts.notes.append(f"release failed: {err}")
    facts.exit_codes = {r.target: r.code for r in runs}
    facts.timings["total_s"] = time.monotonic() - t_start
    if runs and not facts.interrupted and all(r.code == 5 for r in runs):
        facts.error = "pytest collected no test (check --suite and --pytest-args)"
    results = merge(opts.out, facts)
    return NightlyResult(exit_status(results, runs, facts), results, facts)


def exit_status(results: list[PlaceResult], runs: list[PytestRun], facts: RunFacts) -> int:
    """0 all good, 1 unexpected failures, 2 no run, a pytest that could not run, or cut short."""
    if facts.error or facts.interrupted or any(r.code not in (0, 1, 5) for r in runs):
        return 2
    failed = sum(r.counts.get(Verdict.FAIL, 0) for r in results)
    return 1 if failed or any(r.code == 1 for r in runs) else 0


def summary(result: NightlyResult) -> str:
    lines = [f"{r.place} ({r.target}): {summary_line(r.counts)}" for r in result.places]
    total: Counter[Verdict] = Counter()
    for r in result.places:
        total.update(r.counts)
    return "\n".join([*lines, summary_line(total)])
