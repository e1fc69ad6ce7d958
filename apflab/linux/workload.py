"""The async_pf workload as the framework sees it: its command line and its result line.

guest_payloads/async_pf/async_pf.c prints, besides a human line, one machine-readable
line; :func:`parse` turns it into a :class:`WorkloadResult` and refuses anything else
with a message that quotes what the guest printed.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

RESULT_TAG = "ASYNC_PF_RESULT"
RESULT_VERSION = 1
GUEST_PATH = "/bin/async_pf"
_LINE = re.compile(rf"^{RESULT_TAG} (.*)$", re.M)
#: The whole result line as it arrives on a console (for expect(): the line must be complete).
RESULT_LINE = rf"{RESULT_TAG} [^\r\n]*\r?\n"
_FIELDS = {"version", "passes", "mem_mb", "threads", "time_s", "calc", "majflt", "minflt", "apf"}
PASS_LINE = re.compile(r"async_pf: pass (\d+)/(\d+) done at ([0-9.]+) s calc=(\d+)")


class WorkloadError(Exception):
    """The workload did not run, or printed no valid result line."""


@dataclass(frozen=True)
class WorkloadResult:
    passes: int
    mem_mb: int
    threads: int
    time_s: float
    calc: int  # calculation steps of thread (b); 0 without -t
    majflt: int
    minflt: int
    apf: int | None  # async PF count, None when the kernel exposes none

    @property
    def calc_millions(self) -> int:
        """The calculation count as the seed prints it (``1806m``)."""
        return self.calc // 1_000_000


def command(
    passes: int = 1, mem_mb: int | None = None, calc: bool = False, quiet: bool = True, path: str = GUEST_PATH
) -> str:
    if passes < 1:
        raise ValueError("passes must be >= 1")
    args = [path, "-l", str(passes)]
    if mem_mb is not None:
        if mem_mb < 1:
            raise ValueError("mem_mb must be >= 1")
        args += ["-m", str(mem_mb)]
    if calc:
        args.append("-t")
    if quiet:
        args.append("-q")
    return " ".join(shlex.quote(a) for a in args)


def parse(output: str) -> WorkloadResult:
    """The result of one run from its output (the last result line counts)."""
    lines = _LINE.findall(output.replace("\r", ""))
    if not lines:
        tail = output.strip()[-400:] or "(no output)"
        raise WorkloadError(f"async_pf printed no {RESULT_TAG} line; its output ended with: {tail}")
    fields: dict[str, str] = {}
    for item in lines[-1].split():
        key, sep, value = item.partition("=")
        if not sep:
            raise WorkloadError(f"malformed {RESULT_TAG} field {item!r} in: {lines[-1]}")
        fields[key] = value
    missing = _FIELDS - fields.keys()
    if missing:
        raise WorkloadError(f"{RESULT_TAG} line lacks {', '.join(sorted(missing))}: {lines[-1]}")
    if fields["version"] != str(RESULT_VERSION):
        raise WorkloadError(f"{RESULT_TAG} version {fields['version']} (this apflab reads {RESULT_VERSION})")
    try:
        return WorkloadResult(
            passes=int(fields["passes"]),
            mem_mb=int(fields["mem_mb"]),
            threads=int(fields["threads"]),
            time_s=float(fields["time_s"]),
            calc=int(fields["calc"]),
            majflt=int(fields["majflt"]),
            minflt=int(fields["minflt"]),
            apf=None if fields["apf"] == "na" else int(fields["apf"]),
        )
    except ValueError as exc:
        raise WorkloadError(f"bad number in {RESULT_TAG} line ({exc}): {lines[-1]}") from None


def passes_seen(output: str) -> list[int]:
    """Pass numbers of the progress lines (non-quiet runs), in order."""
    return [int(m.group(1)) for m in PASS_LINE.finditer(output)]
