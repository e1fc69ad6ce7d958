"""The perf suite's fixtures: the seed's scenarios, simulated once per session on model targets.

A model target has no workload to run, so it runs the performance model (apflab.perf)
with the seed's setup; a target with a real guest is skipped here, with that reason (its
measured workload is another suite's). The tables are printed at the end of the session,
so ``make run`` shows them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pytest

from apflab.perf.scenarios import ScenarioResult, scenario_a, scenario_b
from apflab.perf.table import format_table, metrics
from apflab.testing import Guest, Unsupported

RUNS = 5  # as many runs per configuration as the seed's table has
SEED = 1
_shown: dict[str, ScenarioResult] = {}


@cache
def _simulate(name: str, seed: int) -> ScenarioResult:
    return scenario_a(RUNS, seed) if name == "scenario-a" else scenario_b(RUNS, seed)


def _is_model(request: pytest.FixtureRequest, guest: Guest) -> bool:
    from labgrid.pytestplugin.hooks import LABGRID_ENV_KEY

    from apflab.lab import GuestProtocol
    from apflab.lab.modeldriver import ModelDriver

    env = request.config.stash.get(LABGRID_ENV_KEY, None)
    target = env.get_target(guest.info.name) if env is not None else None
    return target is not None and isinstance(target.get_driver(GuestProtocol), ModelDriver)


@pytest.fixture
def simulated(
    request: pytest.FixtureRequest, apflab_guest: Guest, record_metric: Callable[[str, float, str], None]
) -> Callable[[str], ScenarioResult]:
    """``simulated("scenario-a")``: the scenario's result; its figures go into the metrics."""
    if not _is_model(request, apflab_guest):
        raise Unsupported(f"target {apflab_guest.info.name} is not a model: its workload is measured, not simulated")

    seed = request.config.getoption("perf_seed", default=None) or SEED

    def get(name: str) -> ScenarioResult:
        result = _simulate(name, seed)
        if name not in _shown:  # the figures go with the first test that asks for them
            _shown[name] = result
            for metric, value, unit in metrics(result):
                record_metric(metric, value, unit)
        return result

    return get


def pytest_terminal_summary(terminalreporter) -> None:
    for result in _shown.values():
        terminalreporter.write_sep("-", f"apflab.perf: {result.name} (simulated)")
        terminalreporter.write_line(format_table(result))
