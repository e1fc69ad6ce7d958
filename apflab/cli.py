"""The ``apflab`` command: ``agent`` (the model on stdio) and ``run`` (suites -> reports/out).

Bad arguments are one-line errors naming what was wrong and how to fix it (exit 2).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from apflab.errors import INTERRUPTED, CliError


def _cmd_agent(args: argparse.Namespace) -> int:
    from apflab.agent.server import AgentServer
    from apflab.model.guest import ModelGuest
    from apflab.model.machine import ModelError
    from apflab.profiles import UnknownProfile, get_profile

    if args.target != "model":
        raise CliError(
            f"apflab agent serves --target model only (got {args.target!r}); real targets run the "
            "bare-metal agent from guest_payloads/"
        )
    try:
        guest = ModelGuest("model", get_profile(args.profile), args.pes, args.el)
    except (UnknownProfile, ModelError) as exc:
        raise CliError(str(exc)) from None
    server = AgentServer(guest)
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        server.serve(sys.stdin.buffer, sys.stdout.buffer)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from apflab.run import run_suites

    if args.target and not all(t.strip() for t in args.target):
        raise CliError("--target '' is empty: give a target of lab.yaml, or leave --target out for the model targets")
    return run_suites(args.target or None, args.out, args.pytest_args, lab=args.lg_env, history=args.history)


def _cmd_images(args: argparse.Namespace) -> int:
    from apflab.images import RECIPES, ImageError, _load_recipes, cache_dir, ensure

    if args.list:
        _load_recipes()
        for name, recipe in sorted(RECIPES.items()):
            state = "built" if recipe.fresh(cache_dir()) else "missing"
            print(f"{name:20} {state:8} {recipe.description}")
        return 0
    try:
        built = ensure(args.names or None, force=args.force)
    except ImageError as exc:
        raise CliError(str(exc)) from None
    for name, paths in built.items():
        for path in paths:
            print(f"{name}: {path}")
    return 0


#: Modules that add subcommands, each with ``register(subparsers)``; all are part of apflab,
#: so one that cannot be imported is a broken install and fails loudly.
EXTENSIONS = ("apflab.perf.cli", "apflab.report.cli", "apflab.nightly.cli")


def _register_extensions(sub: argparse._SubParsersAction) -> None:
    import importlib

    for name in EXTENSIONS:
        importlib.import_module(name).register(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apflab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    agent = sub.add_parser("agent", help="speak the agent protocol on stdin/stdout")
    agent.add_argument("--target", default="model", help="backend: model (the reference model)")
    agent.add_argument("--profile", default="spec", help="behaviour profile: spec or kvm-v4")
    agent.add_argument("--pes", type=int, default=4, help="number of PEs (1..64)")
    agent.add_argument("--el", type=int, default=1, help="exception level of the agent (1 or 2)")
    agent.set_defaults(func=_cmd_agent)

    run = sub.add_parser("run", help="run the suites on targets; write reports/out")
    run.add_argument("--target", action="append", help="target from lab.yaml (repeatable; default: the model targets)")
    run.add_argument("--out", default="reports/out", help="output folder (default: reports/out)")
    run.add_argument("--lg-env", default=None, help="labgrid environment file (default: lab.yaml)")
    run.add_argument(
        "--history", default=None, metavar="DIR", help="add the run to DIR as a night for `apflab report trend DIR`"
    )
    run.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (after --)")
    run.set_defaults(func=_cmd_run)

    images = sub.add_parser("images", help="build guest images (firmware, agent, kernels) into the cache")
    images.add_argument("names", nargs="*", help="images to build (default: all)")
    images.add_argument("--force", action="store_true", help="rebuild even when up to date")
    images.add_argument("--list", action="store_true", help="list the images and whether they are built")
    images.set_defaults(func=_cmd_images)

    _register_extensions(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"apflab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"apflab: {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
