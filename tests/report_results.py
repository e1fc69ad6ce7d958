"""Results written the way a run writes them (apflab.results.ResultLog), for the report tests.

A case is given as what a testcase would have recorded: its module, name, verdict,
``@spec`` section, reason and any further properties (``check_known_1``, ...). The
values are the framework's own (real testcase modules, real deviation names), so what
the report makes of them is what it makes of a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from apflab.results import CaseRecord, ResultLog
from apflab.verdict import Verdict


@dataclass
class Rec:
    module: str
    name: str
    verdict: str
    section: str
    reason: str = ""
    props: dict[str, str] = field(default_factory=dict)


def write_results(out: Path, target: str, profile: str, cases: list[Rec], guest_driver: str = "AgentDriver") -> Path:
    """<out>/<target>/junit.xml and metrics.json; returns the target's folder."""
    folder = out / target
    props = {"target": target, "profile": profile, "guest_driver": guest_driver}
    log = ResultLog(f"apflab.{target}", props, folder / "junit.xml", folder / "metrics.json")
    for rec in cases:
        p = {"spec_section": rec.section, "claim": f"claim of {rec.name}", "target": target, "profile": profile}
        p |= {"verdict": rec.verdict, **({"reason": rec.reason} if rec.reason else {}), **rec.props}
        nodeid = f"{rec.module.replace('.', '/')}.py::{rec.name}"
        log.add(CaseRecord(nodeid, rec.module, rec.name, 0.01, Verdict(rec.verdict), rec.reason, "", p))
    log.flush()
    return folder
