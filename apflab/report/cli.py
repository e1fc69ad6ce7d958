"""``apflab report build|merge|compare|trend``: the report subcommands (docs/reports.md).

Bad input is a one-line error naming the file (exit 2); ``compare`` and ``trend`` exit 1
on a regression (``trend``: in its last run), so a nightly job can fail on it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from apflab.errors import CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser("report", help="HTML/Markdown reports; merge and compare results")
    sub = report.add_subparsers(dest="report_command", required=True)

    build = sub.add_parser("build", help="report.html and report.md from a results folder or JUnit file")
    build.add_argument(
        "results", nargs="?", default="reports/out", help="results folder or junit.xml (default: reports/out)"
    )
    build.add_argument("-o", "--out", default=None, help="folder for the reports (default: the results folder)")
    build.add_argument("--title", default="apflab report", help="the report's title")
    build.add_argument(
        "--reference",
        default=None,
        metavar="URL_OR_PATH",
        help="where the matrix's citations link: docs/reference/ elsewhere, e.g. a web copy "
        "(default: this checkout's docs/reference, relative to the report)",
    )
    build.set_defaults(func=_cmd_build)

    merge = sub.add_parser("merge", help="merge JUnit files (and metrics beside them), targets kept apart")
    merge.add_argument("files", nargs="+", help="JUnit files or results folders")
    merge.add_argument("-o", "--out", required=True, help="output .xml file, or a folder for junit.xml + metrics.json")
    merge.set_defaults(func=_cmd_merge)

    compare = sub.add_parser("compare", help="new failures, fixes, verdict changes, moved metrics; 1 on regression")
    compare.add_argument("old", help="the earlier results (folder or junit.xml)")
    compare.add_argument("new", help="the later results (folder or junit.xml)")
    _threshold_option(compare)
    compare.set_defaults(func=_cmd_compare)

    trend = sub.add_parser(
        "trend", help="verdicts, figures and changes over runs or a history folder; 1 if the last run regressed"
    )
    trend.add_argument(
        "runs", nargs="+", help="results folders (or junit.xml files), oldest first, or history folders (--history)"
    )
    trend.add_argument(
        "-o", "--out", default="reports/out/trend", help="folder for trend.html, trend.md (default: reports/out/trend)"
    )
    trend.add_argument("--title", default="apflab trend", help="the trend's title")
    _threshold_option(trend)
    trend.set_defaults(func=_cmd_trend)


def _threshold_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="PATTERN=PCT[:up|down|any]",
        help="metric rule, after the defaults (perf.*=10, perf.*.output_*=off); 'PATTERN=off' "
        "ignores metrics; repeatable",
    )


def _cmd_build(args: argparse.Namespace) -> int:
    from apflab.report.build import build
    from apflab.report.load import ReportError

    try:
        html, md = build(Path(args.results), Path(args.out) if args.out else None, args.title, args.reference)
    except ReportError as exc:
        raise CliError(str(exc)) from None
    print(f"report: {html}\nreport: {md}")
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    from apflab.report.load import ReportError
    from apflab.report.merge import merge

    try:
        junit, metrics, suites = merge([Path(f) for f in args.files], Path(args.out))
    except ReportError as exc:
        raise CliError(str(exc)) from None
    print(f"merged {suites} suites into {junit}" + (f" (metrics: {metrics})" if metrics else ""))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from apflab.report.compare import DEFAULT_RULES, compare, format_comparison, parse_rule
    from apflab.report.load import ReportError

    try:
        rules = [parse_rule(r) for r in (*DEFAULT_RULES, *args.threshold)]
        result = compare(Path(args.old), Path(args.new), rules)
    except ReportError as exc:
        raise CliError(str(exc)) from None
    print(format_comparison(result))
    return 1 if result.regression else 0


def _cmd_trend(args: argparse.Namespace) -> int:
    from apflab.report.compare import DEFAULT_RULES, parse_rule
    from apflab.report.load import ReportError
    from apflab.report.trend import build_trend, format_trend
    from apflab.report.trendreport import write_trend

    try:
        rules = [parse_rule(r) for r in (*DEFAULT_RULES, *args.threshold)]
        trend = build_trend([Path(p) for p in args.runs], rules)
        html, md = write_trend(trend, Path(args.out), args.title)
    except ReportError as exc:
        raise CliError(str(exc)) from None
    print(format_trend(trend))
    print(f"trend: {html}\ntrend: {md}")
    return 1 if trend.regression else 0
