"""apflab's TF-A build: the event tables of its patch, the target that runs it, the image's freshness.

SDEI has no discovery call, so the catalogue lab.yaml gives qemu-tfa-el2 is the only
thing that tells the suites which events the firmware has: it must be the patch's
tables, event for event (guest_payloads/tfa/apflab-sdei.patch; TF-A's macros in
include/services/sdei.h). The image must be rebuilt when the patch or the source changes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from apflab.images import tfa
from apflab.images.agent import AGENT
from apflab.lab.agentdriver import parse_events
from apflab.lab.qemuprocess import qemu_command
from tests.conftest import ROOT

APFLAB_TARGET = "qemu-tfa-el2"
#: TF-A's event map macros (include/services/sdei.h) as they appear in the patch's added lines.
MAP = re.compile(r"^\+\s*SDEI_(PRIVATE|SHARED)_EVENT\((\d+),\s*(\w+),\s*(SDEI_MAPF_\w+)\)", re.M)


def patch_events() -> set[tuple]:
    """(number, type, priority, intid, dynamic) of every event the patched platform maps."""
    events = {(0, "private", "normal", None, False)}  # SDEI_DEFINE_EVENT_0: the shipped table's line
    for kind, number, intr, flags in MAP.findall(tfa.PATCH.read_text()):
        dynamic = intr == "SDEI_DYN_IRQ"
        priority = "critical" if flags == "SDEI_MAPF_CRITICAL" else "normal"
        events.add((int(number), kind.lower(), priority, None if dynamic else int(intr), dynamic))
    return events


def catalogue(target: str) -> set[tuple]:
    agent = yaml.safe_load((ROOT / "lab.yaml").read_text())["targets"][target]["drivers"]["AgentDriver"]
    return {
        (e.number, e.type.name.lower(), e.priority.name.lower(), e.intid, e.dynamic)
        for e in parse_events(agent["events"])
    }


def test_patch_maps_events_beyond_event_0() -> None:
    events = patch_events()
    assert {(t, p) for _, t, p, intid, dyn in events if not dyn and intid} >= {
        ("private", "normal"),
        ("private", "critical"),
        ("shared", "normal"),
        ("shared", "critical"),
    }
    for kind in ("private", "shared"):
        assert sum(1 for e in events if e[1] == kind and e[4]) >= 2  # Arm's ACS: 2+2 bind slots


def test_dynamic_maps_are_normal_priority() -> None:
    """sdei_class_init() asserts a dynamic map is of normal priority: a critical one stops a debug BL31."""
    assert all(p == "normal" for _, _, p, _, dynamic in patch_events() if dynamic)


def test_target_catalogue_is_the_patch() -> None:
    assert catalogue(APFLAB_TARGET) == patch_events()


def test_target_runs_the_patched_image_on_four_pes() -> None:
    qemu = yaml.safe_load((ROOT / "lab.yaml").read_text())["targets"][APFLAB_TARGET]["drivers"]["QEMUProcessDriver"]
    assert qemu["bios"] == f"tfa:{tfa.APFLAB}"
    assert qemu["smp"] == 4


def test_tcg_single_is_one_thread(tmp_path: Path) -> None:
    class Driver:
        qemu_bin, machine, cpu, memory, smp = "qemu-system-aarch64", "virt", "max", "1024", 4
        accel, bios, kernel, extra_args = "tcg-single", None, None, ""

    cmd = qemu_command(Driver(), ["-serial", "stdio"], tmp_path / "crash.log")
    assert cmd[cmd.index("-accel") + 1] == "tcg,thread=single"


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache whose tfa images count as built from a patch of our own and a fake agent."""
    patch = tmp_path / "apflab-sdei.patch"
    patch.write_text(tfa.PATCH.read_text())
    monkeypatch.setattr(tfa, "PATCH", patch)
    monkeypatch.setattr(AGENT, "fresh", lambda cache: True)
    cache = tmp_path / "cache"
    for out in [*tfa.TFA.outputs(cache), AGENT.outputs(cache)[1]]:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"image")
    (cache / "tfa" / "src").mkdir()
    (cache / "tfa" / "src" / "arm-trusted-firmware_2.12.1+dfsg-1.dsc").write_text("")
    (cache / "tfa" / "stamp").write_text(tfa.TFA._stamp(cache))
    assert tfa.TFA.fresh(cache)
    return cache


def test_a_changed_patch_rebuilds(built: Path) -> None:
    tfa.PATCH.write_text(tfa.PATCH.read_text() + "\n")
    assert not tfa.TFA.fresh(built)


def test_another_source_version_rebuilds(built: Path) -> None:
    (built / "tfa" / "src" / "arm-trusted-firmware_2.12.2+dfsg-1.dsc").write_text("")
    assert not tfa.TFA.fresh(built)


def test_stock_image_is_still_an_output(built: Path) -> None:
    (built / "tfa" / tfa.STOCK).unlink()
    assert not tfa.TFA.fresh(built)
