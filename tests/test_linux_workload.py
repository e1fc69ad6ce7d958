"""The async_pf workload built for the host, its result-line parser, and the seed table.

The same C source runs in the guest; natively it checks the program's contract (result
line, progress lines, exit codes) and the parser, without booting anything.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from apflab.linux import workload
from apflab.linux.table import Row, render
from apflab.linux.workload import WorkloadError, WorkloadResult, parse
from tests.conftest import ROOT

SRC = ROOT / "guest_payloads" / "async_pf"


@pytest.fixture(scope="module")
def async_pf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("async_pf")
    r = subprocess.run(
        ["make", "-s", "-C", str(SRC), f"OUT={out}", "host"], capture_output=True, text=True, timeout=120, check=False
    )
    assert r.returncode == 0, r.stderr
    return out / "host" / "async_pf"


def run(binary: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60, check=False)


def test_result_line_and_progress(async_pf: Path) -> None:
    r = run(async_pf, "-m", "8", "-l", "3", "-t")
    assert r.returncode == 0, r.stderr
    result = parse(r.stdout)
    assert (result.passes, result.mem_mb, result.threads) == (3, 8, 2)
    assert result.calc > 0 and result.time_s > 0
    assert result.minflt > 0, "first touches of fresh anonymous memory are minor faults"
    assert workload.passes_seen(r.stdout) == [1, 2, 3]
    assert "calculation" in r.stdout.splitlines()[-2], "the human line comes before the machine line"


def test_quiet_prints_only_the_two_result_lines(async_pf: Path) -> None:
    r = run(async_pf, "-m", "4", "-q")
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == 2
    assert lines[1].startswith(workload.RESULT_TAG)
    assert parse(r.stdout).calc == 0, "no -t, no calculation thread"


@pytest.mark.parametrize("args", [["-l", "0"], ["-m", "lots"], ["-M", "-3"], ["stray"], ["-x"]])
def test_bad_arguments_exit_2(async_pf: Path, args: list[str]) -> None:
    r = run(async_pf, *args)
    assert r.returncode == 2
    assert "async_pf" in r.stderr or "usage" in r.stderr


def test_margin_larger_than_memory_is_an_error(async_pf: Path) -> None:
    r = run(async_pf, "-M", str(1 << 40), "-q")  # a petabyte margin leaves nothing to write
    assert r.returncode == 1 and "nothing left" in r.stderr


def test_parse_refuses_what_is_not_a_result() -> None:
    with pytest.raises(WorkloadError, match=r"no ASYNC_PF_RESULT line(.|\n)*Segmentation fault"):
        parse("async_pf: writing 8 MB\nSegmentation fault\n")
    with pytest.raises(WorkloadError, match="lacks"):
        parse("ASYNC_PF_RESULT version=1 passes=1\n")
    with pytest.raises(WorkloadError, match="version 9"):
        parse("ASYNC_PF_RESULT version=9 passes=1 mem_mb=1 threads=1 time_s=1 calc=0 majflt=0 minflt=0 apf=na\n")
    with pytest.raises(WorkloadError, match="bad number"):
        parse("ASYNC_PF_RESULT version=1 passes=x mem_mb=1 threads=1 time_s=1 calc=0 majflt=0 minflt=0 apf=na\n")


def test_parse_reads_the_apf_count_and_console_line_endings() -> None:
    r = parse(
        "noise\r\nASYNC_PF_RESULT version=1 passes=1 mem_mb=1024 threads=2 time_s=15.294 calc=1806000000 "
        "majflt=0 minflt=5 apf=55000\r\n"
    )
    assert r.apf == 55000 and r.calc_millions == 1806 and r.time_s == 15.294


def test_command_line() -> None:
    assert workload.command(50, None, True, quiet=True) == "/bin/async_pf -l 50 -t -q"
    assert workload.command(1, 512) == "/bin/async_pf -l 1 -m 512 -q"
    with pytest.raises(ValueError):
        workload.command(0)


def _result(time_s: float, calc_m: int = 0) -> WorkloadResult:
    return WorkloadResult(1, 1024, 2 if calc_m else 1, time_s, calc_m * 1_000_000, 0, 0, None)


#: Scenario A (docs/reference/apf-seed-results.md): (Time-, Calculation-, Time+, Output), all ten rows.
SEED_A = [
    (13.214, 0, 14.072, "+6.4%"),
    (13.329, 0, 14.150, "+6.1%"),
    (13.433, 0, 14.159, "+5.4%"),
    (13.535, 0, 14.222, "+5.0%"),
    (13.553, 0, 14.328, "+5.7%"),
    (24.016, 1806, 15.294, "-36.3%"),
    (24.264, 1826, 15.542, "-35.9%"),
    (24.579, 1835, 15.616, "-36.4%"),
    (27.230, 2257, 15.738, "-42.2%"),
    (27.236, 2278, 15.862, "-41.7%"),
]


@pytest.mark.parametrize(("minus", "calc", "plus", "expected"), SEED_A)
def test_table_reproduces_the_seed_rows(minus: float, calc: int, plus: float, expected: str) -> None:
    text = render([Row(_result(minus, calc), _result(plus))])
    assert text.splitlines()[0] == "| Time- | Calculation- | Time+ | Output |"
    calc_cell = f"{calc}m" if calc else ""
    assert f"| {minus:.3f} s | {calc_cell} | {plus:.3f} s | {expected} |" in text


def test_table_marks_skipped_plus_columns_with_the_reason() -> None:
    text = render([Row(_result(1.5))], plus_skip="no APF under TCG")
    assert "| 1.500 s |  | skip |  |" in text and "`+` columns skipped: no APF under TCG" in text
