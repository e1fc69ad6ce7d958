"""The hostile fault matrix: every fault of issue 13's classes, tried against a tree, counted.

    python tests/hostile_matrix.py [--tree DIR]

DIR (default: this checkout) is an apflab tree holding this battery (tests/hostile*.py,
tests/test_hostile_*.py, tests/ctrl_c_gate.py: copy them into an older tree, e.g. a copy
of main, to measure it); it runs with this interpreter and the tree's own apflab and
tests (PYTHONPATH). Only the command line and the agent protocol are used, which every tree has. For
each class it prints the faults tried, those survived (every check held: valid bounded
XML, the fault still named, a clean terminal, one clear line, the session going on),
and those whose results were lost (they did not reach the merged JUnit, the summary or
the report; or a session ended and took the requests after it).

Class 9 (the nightly Ctrl-C test's race) needs a labgrid lab and is not in the matrix.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
if __name__ == "__main__":  # the tree's tests package, not this checkout's
    tree_arg = sys.argv[sys.argv.index("--tree") + 1] if "--tree" in sys.argv else str(HERE.parent)
    sys.path[0] = os.environ.get("PYTHONPATH") or str(Path(tree_arg).resolve())

from tests.hostile import CHANNELS, KEY_LINES, MARKER, faults, hostile_cases, hostile_lab, served, unclean, xml_problems  # noqa: E402

MAX_CASE_BYTES = 160_000
MAX_REPORT_BYTES = 4_000_000


class Tally:
    def __init__(self) -> None:
        self.rows: dict[str, Counter] = {}

    def add(self, cls: str, survived: bool, lost: bool = False) -> None:
        row = self.rows.setdefault(cls, Counter())
        row["tried"] += 1
        row["survived"] += int(survived)
        row["lost"] += int(lost)

    def table(self) -> str:
        lines = [f"{'class':44} {'tried':>6} {'survived':>9} {'lost':>5}"]
        total: Counter = Counter()
        for cls, row in sorted(self.rows.items()):
            lines.append(f"{cls:44} {row['tried']:6} {row['survived']:9} {row['lost']:5}")
            total.update(row)
        lines.append(f"{'total':44} {total['tried']:6} {total['survived']:9} {total['lost']:5}")
        return "\n".join(lines)


def env_for(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def run(tree: Path, argv: list[str], cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd or tree, env=env_for(tree), capture_output=True, timeout=timeout, check=False
    )


# ------------------------------------------------- classes 1, 4, 5, 7: hostile output


def hostile_output(tree: Path, work: Path, tally: Tally) -> None:
    folder = work / "hostile"
    lab = hostile_lab(folder)
    hostile_cases(folder)
    targets = [a for ch in CHANNELS for a in ("--target", f"hostile-{ch}")]
    r = run(
        tree,
        [
            "-m",
            "apflab",
            "run",
            "--out",
            str(folder / "out"),
            "--lg-env",
            str(lab),
            *targets,
            "--",
            "--fresh-target-each",
        ],
        cwd=folder,
    )
    out = folder / "out"
    merged = out / "junit.xml"
    whole = all((out / n).is_file() for n in ("junit.xml", "summary.txt", "report.md", "report.html"))
    texts = _case_texts(merged) if merged.is_file() and not xml_problems(merged, 10**12) else {}
    terminal = (r.stdout + r.stderr).decode("utf-8", errors="replace")
    for channel, name in served(folder):
        per_target = out / f"hostile-{channel}" / "junit.xml"
        index = faults(channel).index(name)
        cases = texts.get(channel, [])
        named = index < len(cases) and f"{MARKER}{name}" in cases[index]
        valid = per_target.is_file() and not xml_problems(per_target, MAX_CASE_BYTES)
        tally.add("1 target bytes -> valid XML, fault named", valid and named and whole, lost=not (whole and named))
        tally.add("4 sizes bounded (case, reports)", valid and _reports_bounded(out))
        if name == "key" and channel != "hello":
            tally.add("5 key with its BEGIN line cut: redacted", whole and not _key_in_reports(out))
    for shown in _per_target(terminal).values():
        tally.add("7 terminal escapes: pytest's lines", MARKER in shown and not unclean(shown))


def _per_target(terminal: str) -> dict[str, str]:
    """What each target's pytest printed: apflab run heads each with ``== <target>:``."""
    parts: dict[str, str] = {}
    current = ""
    for line in terminal.splitlines(keepends=True):
        if line.startswith("== hostile-"):
            current = line.split(":")[0].removeprefix("== hostile-")
        if current:
            parts[current] = parts.get(current, "") + line
    return parts


def _case_texts(junit: Path) -> dict[str, list[str]]:
    import xml.etree.ElementTree as ET

    out: dict[str, list[str]] = {}
    for suite in ET.parse(junit).getroot().iter("testsuite"):
        channel = (suite.get("name") or "").removeprefix("apflab.hostile-")
        for case in suite.iter("testcase"):
            parts = [f"{el.get('message', '')} {el.text or ''}" for el in case if el.tag in ("failure", "error")]
            out.setdefault(channel, []).append(" ".join(parts))
    return out


def _reports_bounded(out: Path) -> bool:
    paths = [out / "report.md", out / "report.html"]
    return all(p.is_file() and p.stat().st_size < MAX_REPORT_BYTES for p in paths)


def _key_in_reports(out: Path) -> bool:
    text = "".join(p.read_text(errors="replace") for p in (out / "report.md", out / "report.html") if p.is_file())
    return any(line in text for line in KEY_LINES)


#: Runs a command and prints its peak resident memory (kB): each measure in a process of its own.
PEAK_RSS = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def flood_memory(tree: Path, work: Path, tally: Tally) -> None:
    """pytest's peak memory while a target floods without newline for 8 s, against the same
    run on a target that answers ERR at once."""
    folder = work / "flood"
    lab = hostile_lab(folder, ("flood", "err"))
    lab.write_text(lab.read_text().replace('"reply_timeout": 1.0', '"reply_timeout": 8.0'))
    hostile_cases(folder)
    peaks = {}
    for channel in ("err", "flood"):
        where = ["--lg-env", str(lab), "--target", f"hostile-{channel}", "--fresh-target-each", "-k", "call[0]"]
        argv = ["-m", "pytest", "testcases", "-q", *where]
        r = run(tree, ["-c", PEAK_RSS, sys.executable, *argv], cwd=folder)
        peaks[channel] = int(r.stdout.decode().split()[-1]) / 1024
    grown = peaks["flood"] - peaks["err"]
    print(f"flood for 8 s: pytest's peak RSS {peaks['flood']:.0f} MB, {grown:+.0f} MB over an ERR", flush=True)
    tally.add("4 sizes bounded (flood memory)", grown < 16)


# ------------------------------------------------------------- class 2: handler steps


def part(tree: Path, name: str, *args: str) -> list:
    """Run a part of this script in the tree's interpreter; its JSON result."""
    r = run(tree, [str(Path(__file__).resolve()), "--part", name, *args])
    try:
        return json.loads(r.stdout.decode().splitlines()[-1])
    except (IndexError, ValueError):
        print(r.stderr.decode()[-2000:], file=sys.stderr)
        raise


def steps(tree: Path, tally: Tally) -> None:
    for survived, lost in part(tree, "steps"):
        tally.add("2 handler steps: clear error, session on", survived, lost)


def steps_part() -> None:
    """Run in the tree's interpreter (its apflab): each step case in process and over the
    protocol; print [[survived, lost], ...] as JSON on the last line."""
    from apflab.abi import sdei
    from apflab.agent import grammar as g
    from apflab.agent.server import AgentServer
    from apflab.guest import Handler
    from apflab.model.agent import HANDLER_ENTRY
    from apflab.model.guest import ModelGuest
    from apflab.profiles import get_profile
    from tests.test_hostile_steps import PYTHON_VALUES, WIRE_VALUES, _clear, _event, cases

    results = []
    for profile, pes, _kind, arg, value, step in cases(WIRE_VALUES + PYTHON_VALUES):
        guest = ModelGuest("model", get_profile(profile), pes)
        event = _event(profile)
        try:
            guest.set_handler(1, Handler([step]))
            guest.call(sdei.Fn.EVENT_REGISTER, event, HANDLER_ENTRY, 1, 0, 0)
            guest.call(sdei.Fn.EVENT_ENABLE, event)
            guest.call(sdei.Fn.PE_UNMASK)
            guest.inject(event, 0)
            results.append([True, False])
        except Exception as exc:
            results.append([_judged(_clear, str(exc), arg, value, pes), False])
    for profile, pes, _kind, arg, value, step in cases(WIRE_VALUES):
        server = AgentServer(ModelGuest("model", get_profile(profile), pes))
        event = _event(profile)
        lines = [
            g.BY_KEYWORD["HANDLER"].format(g.request("HANDLER", arg=1, handler=Handler([step]))),
            f"CALL c4000021 {event:x} {HANDLER_ENTRY:x} 1 0 0",
            f"CALL c4000022 {event:x}",
            "CALL c400002c",
            f"INJECT 0 {event:x}",
        ]
        ok, lost = True, False
        for line in lines:
            try:
                reply = server.handle_line(line)[-1]
            except Exception:  # `apflab agent` would end here: every later request is lost
                ok, lost = False, True
                break
            if reply.startswith("ERR "):
                ok = ok and _judged(_clear, reply, arg, value, pes)
        results.append([ok, lost])
    print(json.dumps(results))


def _judged(check, text: str, arg: str, value: int, pes: int) -> bool:
    try:
        check(text, arg, value, pes)
        return True
    except AssertionError:
        return False


# ------------------------------------------------------------------ class 3: lab.yaml


def configuration(tree: Path, work: Path, tally: Tally) -> None:
    from tests.test_hostile_config import MISTAKES, ONE_CASE, lab_with

    for i, (drivers, words) in enumerate(MISTAKES.values()):
        folder = work / f"config-{i}"
        folder.mkdir()
        r = run(
            tree,
            [
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                ONE_CASE,
                "--lg-env",
                str(lab_with(folder, drivers)),
                "--target",
                "mistake",
            ],
        )
        tally.add("3 lab.yaml mistakes: one line, exit 4", _one_line(r, ("'mistake'", *words)))
    lab = work / "int.yaml"
    lab.write_text(
        "targets:\n  model:\n    drivers:\n      ModelDriver: {}\n  1:\n    drivers:\n      ModelDriver: {}\n"
        "imports:\n  - apflab.lab\n"
    )
    for target in ("model", "1"):
        r = run(tree, ["-m", "pytest", "-p", "no:cacheprovider", ONE_CASE, "--lg-env", str(lab), "--target", target])
        tally.add("3 lab.yaml mistakes: one line, exit 4", _one_line(r, ("target name 1",)))
    r = run(tree, ["-m", "pytest", "-p", "no:cacheprovider", ONE_CASE, "--target", ""])
    tally.add("3 lab.yaml mistakes: one line, exit 4", _one_line(r, ("--target", "empty")))


def _one_line(r: subprocess.CompletedProcess, words: tuple[str, ...]) -> bool:
    err = r.stderr.decode(errors="replace")
    lines = [line for line in err.splitlines() if line.startswith("ERROR")]
    clean = "Traceback" not in err and "INTERNALERROR" not in err and len(lines) == 1
    return r.returncode == 4 and clean and all(w in lines[0] for w in words)


# ----------------------------------------------------------- class 6: interrupted run


def interrupted(tree: Path, work: Path, tally: Tally) -> None:
    for whom in ("group", "apflab"):
        out = work / f"interrupted-{whom}"
        argv = [
            sys.executable,
            "-m",
            "apflab",
            "run",
            "--out",
            str(out),
            "--target",
            "model",
            "--target",
            "model-kvm-v4",
            "--",
            "testcases/sdei/test_calls.py",
            "-p",
            "tests.ctrl_c_gate",
        ]
        env = {**env_for(tree), "APFLAB_TEST_GATE_AFTER": "5"}
        proc = subprocess.Popen(
            argv, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + 120
        junit = out / "model" / "junit.xml"
        while not (junit.exists() and junit.read_bytes().count(b"<testcase") >= 5) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        (os.killpg if whom == "group" else os.kill)(proc.pid, signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        whole = all((out / n).is_file() for n in ("junit.xml", "summary.txt", "report.md"))
        ok = proc.returncode == 130 and whole and b"Traceback" not in err
        tally.add("6 Ctrl-C in apflab run: merged, exit 130", ok, lost=not whole)


# ------------------------------------------------------- classes 5, 7, 8: report tools


def report_tools(tree: Path, work: Path, tally: Tally) -> None:
    for cls, survived in part(tree, "reports", str(work / "reports")):
        tally.add(cls, survived)


def reports_part(folder: Path) -> None:
    """In the tree's interpreter: results written by its own ResultLog, then its report
    tools, one fault at a time; print [[class, survived], ...] as JSON on the last line."""
    from apflab.report.build import build
    from apflab.verdict import Verdict
    from tests.conftest import run_apflab
    from tests.test_hostile_reports import KEY, write

    results = []
    after = "\n".join(f"boot message {i}" for i in range(45))
    one_line_tail = "last lines: > CALL c4000020 | " + " | ".join(KEY.splitlines()[5:])
    for i, (message, details) in enumerate((("silent", f"{KEY}\n{after}"), (f"no reply; {one_line_tail}", ""))):
        out = write(folder / f"key-{i}", "board", [("test_k", Verdict.FAIL, message, details)], {})
        try:
            text = "".join(p.read_text() for p in build(out))
            results.append(["5 key with its BEGIN line cut: redacted", not any(k in text for k in KEY_LINES)])
        except Exception:
            results.append(["5 key with its BEGIN line cut: redacted", False])
    for i, (test_name, metric) in enumerate((("test_\u009b2J\rnew", "perf.t"), ("test_b", "perf.\x1b]0;pwned\x07.t"))):
        old = write(folder / f"old-{i}", "board", [("test_a", Verdict.PASS, "", "")], {metric: 1.0})
        new = write(
            folder / f"new-{i}",
            "board",
            [("test_a", Verdict.PASS, "", ""), (test_name, Verdict.FAIL, "", "")],
            {metric: 2.0},
        )
        r = run_apflab("report", "compare", str(old), str(new))
        results.append(["7 terminal escapes: report compare", r.returncode == 1 and not unclean(r.stdout + r.stderr)])
    good = write(folder / "good", "board", [("test_a", Verdict.PASS, "", "")], {})
    afile = folder / "a-file"
    afile.write_text("keep me")
    for command, out in (
        ("build", afile),
        ("build", afile / "sub"),
        ("build", Path("/proc/apflab-report")),
        ("merge", afile / "missing" / "merged.xml"),
        ("merge", afile / "missing"),
        ("merge", Path("/proc/apflab-missing/merged.xml")),
    ):
        r = run_apflab("report", command, str(good), "-o", str(out))
        ok = r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1
        results.append(["8 report build/merge -o: one line", ok and afile.read_text() == "keep me"])
    print(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=str(HERE.parent), help="the apflab tree to measure")
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part == "steps":
        return steps_part()
    if args.part == "reports":
        return reports_part(Path(args.rest[0]))
    tree = Path(args.tree).resolve()
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="apflab-matrix-") as tmp:
        work = Path(tmp)
        for part in (flood_memory, hostile_output, configuration, interrupted, report_tools):
            t = time.monotonic()
            part(tree, work, tally)
            print(f"{part.__name__}: {time.monotonic() - t:.0f} s", flush=True)
        steps(tree, tally)
    print(tally.table())


if __name__ == "__main__":
    main()
