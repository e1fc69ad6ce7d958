"""Reading results back: JUnit files and metrics.json, checked, with one-line errors naming the file.

A results folder is what ``apflab run`` writes (junit.xml and metrics.json merged at the
top, one folder per target below); a single JUnit file works too, with the metrics.json
beside it if there is one. Any JUnit is accepted: apflab's testcase properties
(docs/results.md) are used when present, and a verdict is derived from the result
elements otherwise. The XML is walked with ElementTree directly: reading 20,000 cases
through junitparser's wrappers would cost seconds.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from apflab.results import METRICS_VERSION, Metric

VERDICTS = ("PASS", "FAIL", "SKIP", "XFAIL", "XPASS", "KFAIL")


class ReportError(Exception):
    """Bad input: the message names the file and what is wrong with it."""


@dataclass
class Case:
    target: str
    profile: str
    classname: str
    name: str
    verdict: str
    section: str
    claim: str
    reason: str
    time: float
    details: str = ""
    system_out: str = ""
    system_err: str = ""
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.target, self.classname, self.name)

    @property
    def test_id(self) -> str:
        return f"{self.classname}::{self.name}" if self.classname else self.name


@dataclass
class Suite:
    name: str
    target: str
    profile: str
    properties: dict[str, str]
    cases: list[Case]
    source: Path


@dataclass
class Results:
    suites: list[Suite] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    junit_files: list[Path] = field(default_factory=list)
    metrics_files: list[Path] = field(default_factory=list)

    @property
    def cases(self) -> list[Case]:
        return [c for s in self.suites for c in s.cases]

    @property
    def targets(self) -> list[str]:
        return sorted({s.target for s in self.suites})

    def label(self) -> str:
        files = self.junit_files
        return str(files[0].parent if len(files) > 1 else files[0]) if files else "(no results)"


# -------------------------------------------------------------------------- JUnit


def parse_junit(path: Path) -> ET.Element:
    """The root element of a JUnit file (``<testsuites>`` or a bare ``<testsuite>``)."""
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ReportError(f"{path}: is a folder, not a JUnit file") from None
    except ET.ParseError as exc:
        raise ReportError(f"{path}: not well-formed XML ({exc}); a truncated or non-JUnit file?") from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read it ({exc.strerror})") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise ReportError(f"{path}: not a JUnit file (root element <{root.tag}>, expected <testsuites> or <testsuite>)")
    return root


def _props(elem: ET.Element) -> dict[str, str]:
    block = elem.find("properties")
    if block is None:
        return {}
    return {p.get("name", ""): p.get("value", p.text or "") for p in block.findall("property")}


def _verdict(tc: ET.Element, props: dict[str, str]) -> tuple[str, str, str]:
    """(verdict, reason, details) from apflab's properties, or from the result elements."""
    details, reason = "", props.get("reason", "")
    for tag in ("failure", "error"):
        el = tc.find(tag)
        if el is not None:
            details = el.text or ""
            reason = reason or el.get("message", "")
            break
    verdict = props.get("verdict", "")
    if verdict not in VERDICTS:
        skipped = tc.find("skipped")
        if details or tc.find("failure") is not None or tc.find("error") is not None:
            verdict = "FAIL"
        elif skipped is not None:
            kind = (skipped.get("type") or "").lower()
            verdict = {"kfail": "KFAIL", "xfail": "XFAIL"}.get(kind, "SKIP")
            reason = reason or skipped.get("message", "")
        else:
            verdict = "PASS"
    return verdict, reason, details


def read_junit(path: Path, root: ET.Element | None = None) -> list[Suite]:
    root = parse_junit(path) if root is None else root
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    out = []
    for s in suites:
        sprops = _props(s)
        sname = s.get("name", "")
        target = sprops.get("target") or sname.removeprefix("apflab.") or path.stem
        profile = sprops.get("profile", "")
        cases = []
        for tc in s.iter("testcase"):
            props = _props(tc)
            verdict, reason, details = _verdict(tc, props)
            try:
                time = float(tc.get("time") or 0.0)
            except ValueError:
                raise ReportError(f"{path}: testcase {tc.get('name')!r} has time={tc.get('time')!r}") from None
            out_el, err_el = tc.find("system-out"), tc.find("system-err")
            cases.append(
                Case(
                    target=props.get("target") or target,
                    profile=props.get("profile") or profile,
                    classname=tc.get("classname", ""),
                    name=tc.get("name", ""),
                    verdict=verdict,
                    section=props.get("spec_section", ""),
                    claim=props.get("claim", ""),
                    reason=reason,
                    time=time,
                    details=details,
                    system_out=(out_el.text or "") if out_el is not None else "",
                    system_err=(err_el.text or "") if err_el is not None else "",
                    properties=props,
                )
            )
        out.append(Suite(sname, target, profile, sprops, cases, path))
    return out


# ------------------------------------------------------------------------ metrics


def read_metrics(path: Path) -> tuple[list[Metric], dict[str, dict[str, str]]]:
    """Metrics and the per-target properties of a metrics.json (per-target or merged layout)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not valid JSON ({exc}); a truncated metrics file?") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), list):
        raise ReportError(f"{path}: not an apflab metrics file (no 'metrics' list)")
    version = doc.get("version", METRICS_VERSION)
    if version != METRICS_VERSION:
        raise ReportError(f"{path}: metrics format version {version!r}; this apflab reads version {METRICS_VERSION}")
    metrics = []
    for i, m in enumerate(doc["metrics"]):
        if not (
            isinstance(m, dict)
            and isinstance(m.get("name"), str)
            and isinstance(m.get("unit"), str)
            and isinstance(m.get("value"), int | float)
            and not isinstance(m.get("value"), bool)
        ):
            raise ReportError(f"{path}: metric #{i} is not {{name, value, unit}}: a metrics file of another version?")
        test, target = str(m.get("test", "")), str(m.get("target", ""))
        metrics.append(Metric(m["name"], float(m["value"]), m["unit"], test, target))
    targets = doc.get("targets")
    if isinstance(targets, dict):
        props = {str(k): {str(a): str(b) for a, b in v.items()} for k, v in targets.items() if isinstance(v, dict)}
    else:
        p = doc.get("properties") if isinstance(doc.get("properties"), dict) else {}
        props = {str(p.get("target", "")): {str(a): str(b) for a, b in p.items()}} if p else {}
    return metrics, props


# ------------------------------------------------------------------------ folders


def result_files(path: Path) -> list[tuple[Path, Path | None]]:
    """(junit, metrics-or-None) pairs a results path stands for."""
    if path.is_file():
        beside = path.parent / "metrics.json"
        return [(path, beside if beside.is_file() and path.name == "junit.xml" else None)]
    if not path.is_dir():
        raise ReportError(f"{path}: no such file or folder")
    top = path / "junit.xml"
    if top.is_file():
        m = path / "metrics.json"
        return [(top, m if m.is_file() else None)]
    pairs = []
    for j in sorted(path.glob("*/junit.xml")):
        m = j.parent / "metrics.json"
        pairs.append((j, m if m.is_file() else None))
    if not pairs:
        raise ReportError(f"{path}: no junit.xml in it or in its subfolders (run `apflab run` first)")
    return pairs


def load(path: Path) -> Results:
    results = Results()
    for junit, metrics in result_files(path):
        results.suites += read_junit(junit)
        results.junit_files.append(junit)
        if metrics is not None:
            ms, _ = read_metrics(metrics)
            results.metrics += ms
            results.metrics_files.append(metrics)
    return results
