"""``apflab report build``: the HTML and Markdown reports of a results folder.

Both reports are rendered completely in memory (templates in reports/templates/, Jinja2)
before anything is written, and each file is then replaced atomically, so a build that
fails on bad input leaves the previous good report in place. Everything that came from
a target or a console passes the redactor first; the HTML template autoescapes it and the
Markdown template escapes it with :func:`md` and fences console text with :func:`fence`.
"""

from __future__ import annotations

import base64
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup  # Jinja2's own: what a template made is markup, not a value

import apflab
from apflab.report.areas import reference_base
from apflab.report.fidelity import Fidelity, compare_targets
from apflab.report.load import Case, ReportError, Results, load
from apflab.report.matrix import SEVERITY, Matrix, anchor, build_matrix
from apflab.report.perfdata import perf_tables
from apflab.report.perfview import PerfSection, perf_section
from apflab.report.redact import Redactor
from apflab.results import atomic_write, summary_line
from apflab.safetext import bound, visible
from apflab.verdict import Verdict

TEMPLATES = Path(apflab.__file__).resolve().parent.parent / "reports" / "templates"
TAIL_LINES = 40
TAIL_WIDTH = 400
#: Characters of a case's console text read for its tail (redacted whole, then trimmed).
TAIL_SOURCE = 256_000
#: Characters a reason or a property value keeps in a report (head and tail).
TEXT_LIMIT = 2000
MAX_FAILURES = 200
PROVENANCE_FIRST = (
    "target",
    "profile",
    "apflab_version",
    "apflab_commit",
    "kernel",
    "qemu",
    "firmware",
    "conduit",
    "host",
    "python",
    "started",
)


@dataclass
class Failure:
    target: str
    profile: str
    test_id: str
    section: str
    claim: str
    reason: str
    tail: str
    anchor: str  # the case's row in the matrix


@dataclass
class Report:
    title: str
    generated: str
    source: str
    version: str
    summary: str
    target_summaries: list[str]
    counts: list[tuple[str, int]]
    matrix: Matrix
    fidelity: Fidelity
    failures: list[Failure]
    more_failures: int
    perf: list[PerfSection]
    provenance_keys: list[str]
    provenance: list[dict[str, str]]
    plots: dict[str, bytes] = field(default_factory=dict)


# ---------------------------------------------------------------------- escaping


_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
_MD_LINE_START = re.compile(r"^([#>]|[-+=](?=\s)|\d+[.)](?=\s))")


def md(text: object) -> str:
    """Text safe in a Markdown table cell or paragraph: HTML and Markdown syntax neutralised.

    Line breaks become spaces, so a value never starts a block of its own.
    """
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = " ".join(_MD_INLINE.sub(r"\\\1", s).split())
    return _MD_LINE_START.sub(r"\\\1", s)


def fence(text: str) -> str:
    """A fenced block longer than any backtick run inside it: console text stays literal."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    bar = "`" * max(3, longest + 1)
    return f"{bar}text\n{text}\n{bar}"


# ------------------------------------------------------------------------- model


def _tail(case: Case, clean: Redactor) -> str:
    """The case's console text, redacted whole first (a key's BEGIN line may be anywhere
    above the lines kept), then its last lines."""
    parts = [case.details, case.system_out, case.system_err]
    parts += [v for k, v in case.properties.items() if k in ("console", "console_tail", "log")]
    text = "\n".join(p.rstrip() for p in parts if p and p.strip())
    lines = clean(text[-TAIL_SOURCE:]).splitlines()[-TAIL_LINES:]
    return "\n".join(ln if len(ln) <= TAIL_WIDTH else ln[:TAIL_WIDTH] + " ..." for ln in lines)


def _shown(clean: Redactor) -> Callable[[str], str]:
    """Redact, then bound: what a report keeps of a reason or a property value."""
    return lambda text: bound(clean(text), TEXT_LIMIT)


def _verdict_counts(cases: list[Case]) -> Counter[Verdict]:
    return Counter(Verdict(c.verdict) for c in cases)


def make_report(results: Results, title: str = "apflab report", reference: str | None = None) -> Report:
    """``reference``: where the links to docs/reference/ pages lead (a folder or URL), or None."""
    redactor = Redactor()
    clean = _shown(redactor)
    for s in results.suites:
        redactor.add_from_properties(s.properties)
        for c in s.cases:
            if c.properties:
                redactor.add_from_properties(c.properties)
    cases = results.cases
    matrix = build_matrix(cases, clean)
    if reference:
        for row in matrix.rows:
            row.href = f"{reference}/{row.link}" if row.link else None
    failing = [c for c in cases if c.verdict in ("FAIL", "XPASS")]
    failures = [
        Failure(c.target, c.profile, c.test_id, c.section, c.claim, clean(c.reason), _tail(c, redactor), "")
        for c in failing[:MAX_FAILURES]
    ]
    for f in failures:
        f.anchor = anchor("c", f.test_id)
    by_target: dict[str, Counter[Verdict]] = {}
    for c in cases:  # one pass: a merge of many boards has many targets
        by_target.setdefault(c.target, Counter())[Verdict(c.verdict)] += 1
    per_target = [f"{t}: {summary_line(by_target.get(t, Counter()))}" for t in results.targets]
    counts = Counter(c.verdict for c in cases)
    perf = [perf_section(t, i) for i, t in enumerate(perf_tables(results.metrics), 1)]
    keys: dict[str, None] = dict.fromkeys(k for k in PROVENANCE_FIRST if any(k in s.properties for s in results.suites))
    for s in results.suites:
        keys.update(dict.fromkeys(s.properties))
    provenance = []
    for s in results.suites:
        row = {k: bound(v, TEXT_LIMIT) for k, v in redactor.properties(s.properties).items()}
        row.setdefault("target", s.target)
        row["_suite"] = s.name
        row["_source"] = str(s.source)
        provenance.append(row)
    report = Report(
        title=title,
        generated=time.strftime("%Y-%m-%d %H:%M:%S %z"),
        source=results.label(),
        version=apflab.__version__,
        summary=summary_line(_verdict_counts(cases)),
        target_summaries=per_target,
        counts=[(v, counts[v]) for v in SEVERITY if counts.get(v)],
        matrix=matrix,
        fidelity=compare_targets(results, clean),
        failures=failures,
        more_failures=max(0, len(failing) - MAX_FAILURES),
        perf=perf,
        provenance_keys=list(keys),
        provenance=provenance,
    )
    report.plots = {p.plot_file: base64.b64decode(p.plot_b64) for p in perf}
    return report


# ------------------------------------------------------------------------ render


def environment():
    """The templates' Jinja2 environment: HTML autoescaped, every printed value made visible."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    if not (TEMPLATES / "report.html.j2").is_file():
        raise ReportError(f"{TEMPLATES}: report templates not found (report.html.j2, report.md.j2)")
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_printable,
    )
    env.filters["md"] = md
    env.filters["fence"] = fence
    return env


def _printable(value: object) -> object:
    """Every value a template prints, control characters written out (a result file may
    hold what a target printed); markup the template made itself is left alone."""
    if not isinstance(value, str) or isinstance(value, Markup) or (value.isascii() and value.isprintable()):
        return value  # printable ASCII has nothing to write out: the common case, made cheap
    return visible(value)


def render(report: Report) -> tuple[str, str]:
    env = environment()
    html = env.get_template("report.html.j2").render(r=report)
    markdown = env.get_template("report.md.j2").render(r=report)
    return html, markdown


def build(
    results_path: Path, out_dir: Path | None = None, title: str = "apflab report", reference: str | None = None
) -> tuple[Path, Path]:
    """Build report.html and report.md (and plots/) into ``out_dir`` (default: the results folder).

    ``reference`` is where the matrix's citations link (docs/reference/ of this checkout,
    relative to ``out_dir``, unless given)."""
    results = load(results_path)
    out = out_dir or (results_path if results_path.is_dir() else results_path.parent)
    if out.exists() and not out.is_dir():
        raise ReportError(f"{out}: is a file, not a folder; give a folder for report.html and report.md")
    report = make_report(results, title, reference if reference is not None else reference_base(out))
    html, markdown = render(report)
    files = {**report.plots, "report.md": markdown.encode("utf-8"), "report.html": html.encode("utf-8")}
    write_files(out, files, "the report")
    return out / "report.html", out / "report.md"


def write_files(out: Path, files: dict[str, bytes], what: str) -> None:
    """Each file replaced atomically, in order (the page last, after what it links);
    a folder that cannot be written is one line naming it."""
    try:
        for name, data in files.items():
            atomic_write(out / name, data)
    except OSError as exc:
        raise ReportError(f"{out}: cannot write {what} there ({exc.strerror or exc})") from None


def build_after_run(out: Path) -> bool:
    """What ``apflab run`` does last: build the report into its output folder, or say why not."""
    try:
        html, md = build(out)
    except ReportError as exc:
        print(f"apflab: report not built: {exc}", file=sys.stderr)
        return False
    print(f"report: {html} and {md.name}")
    return True
