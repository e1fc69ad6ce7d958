"""``apflab simulate scenario-a|scenario-b``: the seed-style table from the model, and metrics.

The metrics file has the layout of apflab's metrics.json (properties, then name/value/unit
records), so ``apflab report build`` reads it beside a run's results.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from apflab.errors import CliError

DEFAULT_METRICS = "reports/out/simulate/{scenario}.metrics.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    sim = subparsers.add_parser("simulate", help="run the APF performance model (seed scenarios A and B)")
    sim.add_argument("scenario", choices=("scenario-a", "scenario-b"), help="which seed scenario")
    sim.add_argument("--runs", type=int, default=5, help="runs per configuration, with and without APF (default 5)")
    sim.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    sim.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a model parameter (docs/perf-model.md lists them); repeatable",
    )
    sim.add_argument(
        "--metrics",
        default=None,
        metavar="PATH",
        help=f"metrics JSON to write (default {DEFAULT_METRICS}); '-' for none",
    )
    sim.set_defaults(func=_cmd_simulate)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from apflab.perf.params import ParamError, with_overrides
    from apflab.perf.scenarios import DEFAULTS, SCENARIOS
    from apflab.perf.table import format_table, metrics
    from apflab.results import atomic_write

    if not 1 <= args.runs <= 1000:
        raise CliError(f"--runs {args.runs}: give 1..1000")
    try:
        params = with_overrides(DEFAULTS[args.scenario], args.param)
    except ParamError as exc:
        raise CliError(str(exc)) from None
    result = SCENARIOS[args.scenario](runs=args.runs, seed=args.seed, params=params)
    print(format_table(result))
    if args.metrics != "-":
        path = Path(args.metrics or DEFAULT_METRICS.format(scenario=args.scenario))
        props = {"source": "apflab simulate", "scenario": args.scenario, "runs": args.runs, "seed": args.seed}
        test = f"simulate::{args.scenario}"
        records = [{"name": n, "value": v, "unit": u, "test": test, "target": "model"} for n, v, u in metrics(result)]
        doc = {"version": 1, "properties": props | {"params": asdict(params)}, "metrics": records}
        atomic_write(path, json.dumps(doc, indent=1).encode())
        print(f"\nmetrics: {path}")
    return 0
