"""`make mutate`: mutation testing of the model, the ABI and the profiles, with cosmic-ray.

A conformance suite is only as good as the wrong implementations it rejects: this plants
one small bug at a time (a mutant) in apflab/model, apflab/abi and apflab/profiles.py and
runs the suites that judge the model (the ABI and state-table pins of tests/, then the
testcases on the targets ``model`` and ``model-kvm-v4``, in process). A mutant the suites
still pass has *survived*; docs/mutation.md lists the survivors judged equivalent (no
observable change) with one line why, and the score is the killed share of the rest.

The run works on a copy of the tree in build/mutate/tree (cosmic-ray rewrites the file
it mutates; an interrupted run leaves the work tree untouched) and keeps its session in
build/mutate, so ``--resume`` goes on where a run stopped.

    python mutation/run.py                                # every module (hours on 2 cores)
    python mutation/run.py --module apflab/model/apf.py   # one module
    python mutation/run.py --report                       # the last session's figures again
    python mutation/run.py --retry-survivors              # new cases: run the survivors again
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutate"
TREE = WORK / "tree"
SESSION = WORK / "session.sqlite"
CONFIG = WORK / "cosmic-ray.toml"
#: A digest of the mutated modules: the session's mutants are positions in exactly these files.
DIGEST = WORK / "modules.sha256"
EQUIVALENTS = ROOT / "docs" / "mutation.md"

MODULES = ("apflab/model", "apflab/abi", "apflab/profiles.py")

#: The suites a mutant must fail, cheapest first: the pins of tests/ (literal ABI values,
#: the state table against docs/reference, the migration image beyond 4 PEs, guest memory), then the
#: model targets, then the model's property tests (slower, and run only by survivors so
#: far). ``-x``: the first failure kills the mutant, so a killed mutant costs seconds.
PINS = ("tests/test_abi.py", "tests/test_abi_literals.py", "tests/test_state_table.py", "tests/test_model_migration.py")
PINS += ("tests/test_model_memory.py", "tests/test_model_limits.py")
TARGETS = ("model", "model-kvm-v4")
PROPERTIES = ("tests/test_model_properties.py",)

#: cosmic-ray's operators kept, as in selective mutation (Offutt et al., "An experimental
#: determination of sufficient mutant operators", 1996: arithmetic, relational, logical and
#: unary-insertion mutants predict the full set's score). Binary and comparison operators
#: get the replacements a slip of the hand makes (off by one, the wrong shift or mask), not
#: all 11 and 9 that cosmic-ray generates; decorator removal is left out (it breaks import).
BINARY = {"Add_Sub", "Sub_Add", "Mul_Add", "FloorDiv_Mul", "Mod_FloorDiv", "Div_Mul"}
BINARY |= {"LShift_RShift", "RShift_LShift", "BitOr_BitAnd", "BitAnd_BitOr", "BitXor_BitOr", "Pow_Mul"}
COMPARISON = {"Eq_NotEq", "NotEq_Eq", "Lt_LtE", "LtE_Lt", "Gt_GtE", "GtE_Gt"}
COMPARISON |= {"In_NotIn", "NotIn_In", "Is_IsNot", "IsNot_Is"}
UNARY = {"USub_UAdd", "Invert_Not", "Delete_Not", "Delete_USub", "Delete_Invert"}
WHOLE = {"NumberReplacer", "AddNot", "ReplaceAndWithOr", "ReplaceOrWithAnd", "ReplaceTrueWithFalse"}
WHOLE |= {"ReplaceFalseWithTrue", "ZeroIterationForLoop", "ReplaceContinueWithBreak", "ReplaceBreakWithContinue"}
WHOLE |= {"ExceptionReplacer"}


def kept(operator: str, occurrence: int) -> bool:
    """Whether a mutant of cosmic-ray's full set is in ours (see BINARY...WHOLE)."""
    name = operator.removeprefix("core/")
    kind, _, pair = name.partition("_")
    if kind == "ReplaceBinaryOperator":
        return pair in BINARY
    if kind == "ReplaceComparisonOperator":
        return pair in COMPARISON
    if kind == "ReplaceUnaryOperator":
        return pair in UNARY
    if name == "NumberReplacer":
        return occurrence % 2 == 0  # cosmic-ray makes n+1 (even) and n-1 (odd) of each literal: one is enough
    return name in WHOLE


# ------------------------------------------------------------------ the suites


def suites() -> int:
    """The test command of every mutant: exit 0 only when every suite passes."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(Path.cwd()))
    base = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", "-p", "no:warnings"]
    # testcases/perf is apflab.perf's simulation: it reads nothing of the model, the ABI or the profiles.
    cases = ["testcases", f"--ignore={Path('testcases', 'perf')}"]
    pins = [p for p in PINS if Path(p).exists()]  # the literal pins are new: a tree before them has fewer
    runs = [[*base, *pins, *cases, "--target", TARGETS[0]]] + [[*base, *cases, "--target", t] for t in TARGETS[1:]]
    runs.append([*base, *(p for p in PROPERTIES if Path(p).exists())])
    for argv in runs:
        done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            print(f"killed by: {' '.join(argv[3:])} (exit {done.returncode})")
            return 1
    return 0


# ------------------------------------------------------------------- the run


def copy_tree() -> None:
    """The files git knows of (tracked, and new ones not ignored), copied to TREE."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    )
    if TREE.exists():
        shutil.rmtree(TREE)
    for name in filter(None, listed.stdout.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            dst = TREE / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def write_config(modules: list[str], timeout: float) -> None:
    paths = ", ".join(f'"{m}"' for m in modules)
    CONFIG.write_text(
        "[cosmic-ray]\n"
        f"module-path = [{paths}]\n"
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f'test-command = "{sys.executable} {TREE / "mutation" / "run.py"} --suites"\n'
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )


def baseline() -> float:
    """Seconds the suites take on the unmutated copy; they must pass, or no score means anything."""
    start = time.monotonic()
    code = subprocess.run([sys.executable, str(TREE / "mutation" / "run.py"), "--suites"], cwd=TREE, check=False)
    if code.returncode != 0:
        sys.exit("mutate: the suites fail on the unmutated tree: fix that first (make test)")
    return time.monotonic() - start


def init_session(modules: list[str], sample: int = 1) -> tuple[int, int]:
    """cosmic-ray's full set of mutants, then ours (every ``sample``-th of it): the rest are marked skipped."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    if SESSION.exists():
        SESSION.unlink()
    subprocess.run([sys.executable, "-m", "cosmic_ray.cli", "init", str(CONFIG), str(SESSION)], cwd=TREE, check=True)
    with use_db(str(SESSION), WorkDB.Mode.open) as db:
        items = list(db.work_items)
        ours = [w for w in items if kept(w.mutations[0].operator_name, w.mutations[0].occurrence)]
        ours.sort(
            key=lambda w: (str(w.mutations[0].module_path), w.mutations[0].start_pos, w.mutations[0].operator_name)
        )
        chosen = {w.job_id for w in ours[::sample]}
        drop = [w.job_id for w in items if w.job_id not in chosen]
        db.set_multiple_results(drop, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
    return len(items), len(items) - len(drop)


def digest(modules: list[str]) -> str:
    """sha256 over the mutated modules as copied to TREE."""
    h = hashlib.sha256()
    for m in modules:
        path = TREE / m
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(str(f.relative_to(TREE)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def modules_of_session() -> list[str]:
    text = CONFIG.read_text()
    return re.findall(r'"([^"]+)"', text.split("module-path = [", 1)[1].split("]", 1)[0])


def retry_survivors(forget: bool = True) -> int:
    """A fresh copy of the tree (the current tests) for the session's pending mutants, and with
    ``forget`` its survivors made pending again; the mutated modules must be unchanged, since
    the session's mutants are positions in them. Returns the number of survivors."""
    import sqlite3

    modules = modules_of_session()
    copy_tree()
    if digest(modules) != DIGEST.read_text().strip():
        sys.exit("mutate: the mutated modules changed since the session began: run it afresh")
    with sqlite3.connect(SESSION) as db:  # cosmic-ray keeps no API to forget one result
        if not forget:
            return db.execute("SELECT COUNT(*) FROM work_results WHERE test_outcome = 'SURVIVED'").fetchone()[0]
        return db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'").rowcount


def execute() -> None:
    subprocess.run([sys.executable, "-m", "cosmic_ray.cli", "exec", str(CONFIG), str(SESSION)], cwd=TREE, check=True)


# ---------------------------------------------------------------- the report


@dataclass(frozen=True)
class Mutant:
    module: str
    line: int
    operator: str
    where: str  # the enclosing definition (cosmic-ray's definition_name): one line may repeat elsewhere
    before: str
    after: str
    outcome: str  # killed, timeout, survived, equivalent, error

    def key(self) -> tuple[str, str, str, str]:
        return self.module, self.where, self.before, self.after

    def text(self) -> str:
        return f"| {self.module} | {self.where} | `{self.before}` | `{self.after}` |"


def equivalents() -> dict[tuple[str, str, str, str], str]:
    """docs/mutation.md's table rows ``| module | definition | `line` | `mutated line` | why |``."""
    found = {}
    row = re.compile(r"^\| (\S+) \| (\S+) \| `(.*)` \| `(.*)` \| (.+) \|$")
    for line in EQUIVALENTS.read_text().splitlines():
        m = row.match(line)
        if m:
            found[m.group(1), m.group(2), m.group(3), m.group(4)] = m.group(5)
    return found


def _diff_lines(diff: str) -> tuple[str, str]:
    before = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    after = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    return " ".join(before), " ".join(after)


def mutants() -> list[Mutant]:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    known = equivalents()
    out = []
    with use_db(str(SESSION), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome in (WorkerOutcome.SKIPPED, WorkerOutcome.NO_TEST):
                continue
            spec = item.mutations[0]
            before, after = _diff_lines(result.diff or "")
            if result.worker_outcome is not WorkerOutcome.NORMAL:
                outcome = "error"  # the mutated code did not even load: killed
            elif result.test_outcome is TestOutcome.SURVIVED:
                outcome = "survived"
            elif result.output == "timeout":
                outcome = "timeout"
            else:
                outcome = "killed"
            module = str(Path(spec.module_path))
            where = spec.definition_name or "-"
            m = Mutant(
                module, spec.start_pos[0], spec.operator_name.removeprefix("core/"), where, before, after, outcome
            )
            if outcome == "survived" and m.key() in known:
                m = Mutant(m.module, m.line, m.operator, m.where, m.before, m.after, "equivalent")
            out.append(m)
    return out


def report(found: list[Mutant], minimum: float) -> int:
    """Score per module and overall; the survivors not judged equivalent, ready for docs/mutation.md."""
    by_module: dict[str, Counter[str]] = {}
    for m in found:
        by_module.setdefault(m.module, Counter())[m.outcome] += 1
    total: Counter[str] = Counter()
    print(f"{'module':38} {'mutants':>7} {'killed':>6} {'equiv':>5} {'surv':>5} {'score':>7}")
    for module in sorted(by_module):
        c = by_module[module]
        total.update(c)
        print(_row(module, c))
    print(_row("total", total))
    survivors = sorted((m for m in found if m.outcome == "survived"), key=lambda m: (m.module, m.line))
    if survivors:
        print(f"\n{len(survivors)} survivor(s) not judged equivalent (module:line operator, then the table row):")
        for m in survivors:
            print(f"{m.module}:{m.line} {m.operator}\n  {m.text()}")
    score = _score(total)
    if score < minimum:
        print(f"\nmutate: score {score:.1f}% is below {minimum:.0f}%")
        return 1
    return 0


def _score(c: Counter[str]) -> float:
    killed = c["killed"] + c["timeout"] + c["error"]
    meaningful = killed + c["survived"]
    return 100.0 * killed / meaningful if meaningful else 100.0


def _row(name: str, c: Counter[str]) -> str:
    killed = c["killed"] + c["timeout"] + c["error"]
    n = sum(c.values())
    return f"{name:38} {n:7} {killed:6} {c['equivalent']:5} {c['survived']:5} {_score(c):6.1f}%"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--module", action="append", help="a module or package to mutate (repeatable); default: all")
    ap.add_argument("--timeout", type=float, default=0.0, help="seconds per mutant (default: 4x the baseline run)")
    ap.add_argument("--min", type=float, default=95.0, help="fail below this score (percent)")
    ap.add_argument("--sample", type=int, default=1, help="mutate every N-th of the mutants only (an estimate)")
    ap.add_argument("--resume", action="store_true", help="go on with the session in build/mutate")
    ap.add_argument("--report", action="store_true", help="only print the last session's report")
    ap.add_argument("--retry-survivors", action="store_true", help="run the last session's survivors again")
    ap.add_argument("--suites", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.suites:
        return suites()
    if (args.retry_survivors or args.resume) and not SESSION.exists():
        sys.exit("mutate: no session in build/mutate to go on with: run without --resume first")
    if args.retry_survivors:
        print(f"mutate: {retry_survivors()} survivor(s) to run again")
    elif args.resume:
        print(f"mutate: {retry_survivors(forget=False)} survivor(s) so far; going on")
    elif not args.report:
        modules = args.module or list(MODULES)
        missing = [m for m in modules if not (ROOT / m).exists()]
        if missing:
            sys.exit(f"mutate: no such module: {', '.join(missing)}")
        WORK.mkdir(parents=True, exist_ok=True)
        copy_tree()
        seconds = baseline()
        timeout = args.timeout or max(60.0, round(4 * seconds))
        write_config(modules, timeout)
        full, ours = init_session(modules, args.sample)
        DIGEST.write_text(digest(modules) + "\n")
        print(f"mutate: {ours} mutants of cosmic-ray's {full}; baseline {seconds:.1f} s, timeout {timeout:.0f} s")
    if not args.report:
        start = time.monotonic()
        execute()
        print(f"mutate: ran in {time.monotonic() - start:.0f} s")
    if not SESSION.exists():
        sys.exit("mutate: no session in build/mutate: run without --report first")
    return report(mutants(), args.min)


if __name__ == "__main__":
    sys.exit(main())
