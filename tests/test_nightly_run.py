"""`apflab nightly` end to end on a real labgrid lab on 127.0.0.1: a coordinator, two exporters,
two stand-in boards (the TF-A agent on QEMU, console = the QEMU's TCP serial port exported
as NetworkSerialPort, power = QEMUBoardPowerDriver), the SDEI suite over both with
pytest-xdist -n 2, one merged JUnit and report with the places kept apart.

Also the small pure parts: tag parsing, where the coordinator address comes from.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from junitparser import JUnitXml
from junitparser.xunit2 import TestCase

from apflab.errors import CliError
from apflab.images import RECIPES, _load_recipes, cache_dir
from apflab.nightly.cli import parse_tags
from apflab.nightly.session import coordinator_address
from apflab.nightly.standin import StandinLab
from tests.conftest import ROOT, run_apflab

_load_recipes()
needs_tfa = pytest.mark.skipif(
    not RECIPES["tfa"].fresh(cache_dir()), reason="TF-A image not built: run `apflab images tfa` (make test does)"
)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[StandinLab]:
    """Two board hosts (exporters exp-a, exp-b), one stand-in qemu-tfa board each."""
    with StandinLab(tmp_path / "lab") as lab:
        lab.add_exporter("exp-a", {"b1": "qemu-tfa"}, {"pool": "nightly"})
        lab.add_exporter("exp-b", {"b2": "qemu-tfa"}, {"pool": "nightly"})
        yield lab


def collected(suite: str) -> list[str]:
    """What pytest collects in ``suite`` (target-independent): classname::name per case."""
    r = subprocess.run(
        [sys.executable, "-m", "pytest", suite, "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    ids = [line for line in r.stdout.splitlines() if "::" in line]
    return sorted(i.rsplit("::", 1)[0].removesuffix(".py").replace("/", ".") + "::" + i.rsplit("::", 1)[1] for i in ids)


def suites(junit: Path) -> dict[str, tuple[dict[str, str], list[str]]]:
    """Suite name -> (suite properties, [classname::name of each case])."""
    out = {}
    for suite in JUnitXml.fromfile(str(junit)):
        cases = [f"{TestCase.fromelem(c).classname}::{TestCase.fromelem(c).name}" for c in suite]
        out[suite.name] = ({p.name: p.value for p in suite.properties()}, cases)
    return out


@needs_tfa
def test_sdei_suite_over_two_places(lab: StandinLab, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = run_apflab(
        "nightly",
        "pool=nightly",
        "-n",
        "2",
        "--deadline",
        "20",
        "--coordinator",
        lab.address,
        "--suite",
        "testcases/sdei",
        "--out",
        str(out),
        "--history",
        str(tmp_path / "history"),
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:] + lab.logs()
    (night,) = (tmp_path / "history").iterdir()  # the night, kept for `apflab report trend`
    assert f"history: {night}" in r.stdout
    assert (night / "junit.xml").read_bytes() == (out / "junit.xml").read_bytes() and (night / "nightly.json").is_file()
    found = suites(out / "junit.xml")
    assert set(found) == {"apflab.lab-qemu-tfa@b1", "apflab.lab-qemu-tfa@b2"}
    for place in ("b1", "b2"):
        props, cases = found[f"apflab.lab-qemu-tfa@{place}"]
        assert props["place"] == place and props["target"] == "lab-qemu-tfa"
        assert props["conduit"] == "smc" and props["profile"] == "spec"  # what the board itself answered
        assert "pool=nightly" in props["place_tags"]
        assert cases, f"place {place} ran nothing"
    # every case of the suite ran exactly once, on one of the two boards
    ran = found["apflab.lab-qemu-tfa@b1"][1] + found["apflab.lab-qemu-tfa@b2"][1]
    assert sorted(ran) == collected("testcases/sdei")
    workers = {found[f"apflab.lab-qemu-tfa@{p}"][0]["xdist_worker"] for p in ("b1", "b2")}
    assert workers == {"gw0", "gw1"}  # one pytest-xdist worker per place
    report = (out / "nightly.md").read_text()
    assert "| b1 | lab-qemu-tfa |" in report and "| b2 | lab-qemu-tfa |" in report
    assert lab.leftovers() == []


def test_tags_are_key_value() -> None:
    assert parse_tags(["pool=nightly", "arch=arm64"]) == {"pool": "nightly", "arch": "arm64"}
    for bad in ("pool", "Pool=x", "pool=", "=x"):
        with pytest.raises(CliError, match="KEY=VALUE"):
            parse_tags([bad])


def test_coordinator_address_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = tmp_path / "lab.yaml"
    lab.write_text("options:\n  coordinator_address: 127.0.0.1:31000\ntargets: {}\n")
    monkeypatch.delenv("LG_COORDINATOR", raising=False)
    assert coordinator_address(None, str(lab)) == "127.0.0.1:31000"
    assert coordinator_address(None, None) == "127.0.0.1:20408"
    monkeypatch.setenv("LG_COORDINATOR", "127.0.0.1:32000")
    assert coordinator_address(None, str(lab)) == "127.0.0.1:32000"
    assert coordinator_address("127.0.0.1:33000", str(lab)) == "127.0.0.1:33000"


def test_bad_arguments_are_one_line_errors() -> None:
    r = run_apflab("nightly", "pool=nightly", "-n", "2", "--min", "3")
    assert r.returncode == 2 and "need 1 <= min <= places" in r.stderr
    r = run_apflab("nightly", "-n", "1")
    assert r.returncode == 2 and "say which places" in r.stderr
