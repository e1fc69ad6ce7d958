"""A history folder: one subfolder per run ("night"), appended by ``--history DIR``.

``apflab run --history DIR`` and ``apflab nightly --history DIR`` end by copying the
run's merged results (junit.xml, metrics.json, summary.txt, and nightly.json/nightly.md
for a nightly) into ``DIR/<UTC time>/`` with a ``night.json`` saying when, from where and
by which apflab. The night's folder is written under a hidden name and renamed into
place, so a trend never reads half a night. Nothing is ever removed: pruning old nights
is the job's (``ls DIR | head -n -30``). ``apflab report trend DIR`` reads the nights in
the order of their names, which is the order they were saved in.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import apflab
from apflab.report.load import ReportError
from apflab.results import git_commit

NIGHT_FILE = "night.json"
KEPT = ("junit.xml", "metrics.json", "summary.txt", "nightly.json", "nightly.md")


def save_night(out: Path, history: Path, now: float | None = None) -> Path:
    """Copy the results of ``out`` into a new night of ``history``; the night's folder."""
    if not (out / "junit.xml").is_file():
        raise ReportError(f"{out}: no junit.xml to keep in the history")
    stamp = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime(now))
    try:
        history.mkdir(parents=True, exist_ok=True)
        night = history / stamp
        n = 1
        while night.exists():  # two runs in the same second
            n += 1
            night = history / f"{stamp}-{n}"
        tmp = history / f".{night.name}.{os.getpid()}.partial"
        tmp.mkdir()
        for name in KEPT:
            if (out / name).is_file():
                shutil.copy2(out / name, tmp / name)
        facts = {
            "night": night.name,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
            "source": str(out.resolve()),
            "apflab_version": apflab.__version__,
            "apflab_commit": git_commit(Path(apflab.__file__).resolve().parent.parent),
        }
        (tmp / NIGHT_FILE).write_text(json.dumps(facts, indent=1))
        tmp.rename(night)
    except OSError as exc:
        raise ReportError(f"{history}: cannot add a night to the history ({exc.strerror or exc})") from None
    return night


def nights(paths: list[Path]) -> list[Path]:
    """The runs ``paths`` stand for, in order: a results folder (or junit.xml) is one run,
    a history folder is its nights by name."""
    found: list[Path] = []
    for path in paths:
        if path.is_file() or (path / "junit.xml").is_file():
            found.append(path)
            continue
        if not path.is_dir():
            raise ReportError(f"{path}: no such file or folder")
        saved = sorted(
            p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / NIGHT_FILE).is_file()
        )
        if not saved:
            raise ReportError(
                f"{path}: neither a results folder (no junit.xml) nor a history folder "
                "(no nights saved by --history in it)"
            )
        found += saved
    return found


def keep_night(out: Path, history: Path) -> bool:
    """What ``--history`` does after a run: add its night, or say in one line why not
    (the run's own results in ``out`` stay whatever happens)."""
    try:
        night = save_night(out, history)
    except ReportError as exc:
        print(f"apflab: not kept in the history: {exc}", file=sys.stderr)
        return False
    print(f"history: {night}")
    return True
