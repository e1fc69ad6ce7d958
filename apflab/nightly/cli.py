"""``apflab nightly``: the suites over N lab places from labgrid's coordinator (docs/nightly.md).

Exit status: 0 all passed, 1 unexpected failures, 2 no run (coordinator unreachable, no
place by the deadline), a pytest that could not run, or an interrupted run.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from apflab.errors import CliError


def parse_tags(pairs: list[str]) -> dict[str, str]:
    from labgrid.remote.common import TAG_KEY

    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not value or not TAG_KEY.fullmatch(key):
            raise CliError(f"tag {pair!r} is not KEY=VALUE with a lower-case key (e.g. pool=nightly)")
        tags[key] = value
    return tags


def _cmd_nightly(args: argparse.Namespace) -> int:
    from apflab.nightly.runner import NightlyOptions, run_nightly, summary
    from apflab.nightly.session import LabError

    tags = parse_tags(args.tags)
    if args.place:
        tags["name"] = args.place  # labgrid's scheduler matches a place's name as a tag too
    if not tags:
        raise CliError("say which places: tags (e.g. pool=nightly) or --place NAME")
    count = args.places
    minimum = args.min if args.min is not None else count
    if count < 1 or not 1 <= minimum <= count:
        raise CliError(f"--places {count} --min {minimum}: need 1 <= min <= places")
    if args.deadline <= 0:
        raise CliError("--deadline must be positive (seconds to wait for places)")
    if not Path(args.lg_env).exists():
        raise CliError(f"labgrid environment {args.lg_env} does not exist (give --lg-env)")
    opts = NightlyOptions(
        tags=tags,
        count=count,
        minimum=minimum,
        deadline_s=args.deadline,
        coordinator=args.coordinator,
        lab=args.lg_env,
        out=Path(args.out),
        suites=args.suite or ["testcases"],
        target=args.target,
        pytest_args=shlex.split(args.pytest_args),
        run_timeout_s=args.timeout,
        connect_timeout_s=args.connect_timeout,
    )
    try:
        result = run_nightly(opts)
    except LabError as exc:
        raise CliError(str(exc)) from None
    print(summary(result))
    print(f"apflab nightly: report {opts.out / 'nightly.md'}, JUnit {opts.out / 'junit.xml'}")
    if args.history and not result.facts.error:  # a night where nothing ran is no night
        from apflab.report.history import keep_night

        keep_night(opts.out, Path(args.history))
    if result.facts.error:
        raise CliError(result.facts.error)
    return result.exit_code


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("nightly", help="run the suites over N lab places reserved through labgrid's coordinator")
    p.add_argument("tags", nargs="*", metavar="KEY=VALUE", help="place tags to reserve by, e.g. pool=nightly")
    p.add_argument("--place", default=None, help="reserve this place by name (adds the tag name=PLACE)")
    p.add_argument("-n", "--places", type=int, default=2, help="places to reserve (default 2)")
    p.add_argument("--min", type=int, default=None, help="run with at least this many (default: all asked)")
    p.add_argument("--deadline", type=float, default=300.0, help="seconds to wait for places (default 300)")
    p.add_argument(
        "--coordinator", default=None, help="HOST:PORT (default: LG_COORDINATOR, else lab.yaml's coordinator_address)"
    )
    p.add_argument("--lg-env", default="lab.yaml", help="labgrid environment (default lab.yaml)")
    p.add_argument("--target", default=None, help="target for places without a `target` tag")
    p.add_argument("--suite", action="append", help="test path (repeatable; default testcases)")
    p.add_argument("--out", default="reports/out/nightly", help="output folder (default reports/out/nightly)")
    p.add_argument(
        "--history", default=None, metavar="DIR", help="add the night's results to DIR for `apflab report trend DIR`"
    )
    p.add_argument("--timeout", type=float, default=4 * 3600.0, help="stop the run after this many seconds")
    p.add_argument("--connect-timeout", type=float, default=10.0, help="seconds for each coordinator call")
    p.add_argument("--pytest-args", default="", help='more pytest arguments, one string: --pytest-args="-k dispatch"')
    p.set_defaults(func=_cmd_nightly)
