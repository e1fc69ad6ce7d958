"""The pytest side of ``apflab nightly``: one pytest-xdist worker per acquired place.

Loaded with ``-p apflab.nightly.worker`` in the pytest run ``apflab nightly`` starts; it
does nothing unless APFLAB_NIGHTLY_PLAN names the run's plan (JSON: coordinator, output
folder, target, and the places in worker order). In worker ``gwN`` it

* points the target's ``RemotePlace: {name: "+"}`` at place N by setting LG_TOKEN to
  that place's reservation, before labgrid reads the environment;
* writes this place's JUnit and metrics to <out>/<place>/ (a suite per place, so the
  merged report keeps places apart) and names the place in the suite's properties;
* runs share N of the collected tests, a contiguous slice in collection order: xdist's
  ``--dist each`` with a fixed share per worker, so a place that fails (a board that
  never answers, an exporter that went away) fails its own share, quickly, and cannot
  drain the others' tests; and each case follows the same case as in a one-board run
  (on qemu-tfa, test_signal_from_handler fails right after
  test_signal_unregistered_target, which an every-Nth split put next to each other);
* before each test asks the coordinator whether the place is still held by this run and
  its resources still exported; if not, the test fails with that reason at once;
* takes a target that has a labgrid Strategy (lab.yaml's lab-board) to its ``guest``
  state before the first case: the board boots the kernel under test, the guest starts.

A worker beyond the plan's places is a usage error (measured: docs/reference/lab.md): the runner
passes ``--max-worker-restart=0`` so xdist does not start replacements.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

PLAN_ENV = "APFLAB_NIGHTLY_PLAN"


def load_plan() -> dict[str, Any] | None:
    path = os.environ.get(PLAN_ENV)
    if not path:
        return None
    return json.loads(Path(path).read_text())


def worker_index() -> int | None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return int(worker.removeprefix("gw")) if worker else None


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    plan = load_plan()
    index = worker_index()
    if plan is None or index is None:
        return
    places = plan["places"]
    if index >= len(places):
        raise pytest.UsageError(
            f"worker gw{index}: this run holds only {len(places)} places ({', '.join(p['place'] for p in places)})"
        )
    place = places[index]
    os.environ["LG_TOKEN"] = place["token"]  # RemotePlace "+" -> the place reserved under it
    out = Path(plan["out"]) / place["place"]
    config.option.apflab_junit = str(out / "junit.xml")
    config.option.apflab_metrics = str(out / "metrics.json")
    config.pluginmanager.register(PlaceWatch(config, plan, index), "apflab-nightly-place")


class PlaceWatch:
    """This worker's place: names it in the results, checks it is still there."""

    def __init__(self, config: pytest.Config, plan: dict[str, Any], index: int) -> None:
        self.config = config
        self.plan = plan
        self.index = index
        self.place = plan["places"][index]
        self.session: Any = None
        self.lost: str | None = None
        self.watching = True
        self.prepared = False

    # ------------------------------------------------------------ results

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from apflab.pytest_plugin import LOG_KEY

        log = self.config.stash.get(LOG_KEY, None)
        if log is None:
            return
        name = self.place["place"]
        log.suite_name = f"apflab.{self.plan['target']}@{name}"
        log.suite_properties["place"] = name
        log.suite_properties["place_tags"] = " ".join(f"{k}={v}" for k, v in sorted(self.place["tags"].items()))
        log.suite_properties["coordinator"] = self.plan["coordinator"]
        log.suite_properties["xdist_worker"] = os.environ.get("PYTEST_XDIST_WORKER", "")

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        count = len(self.plan["places"])
        lo, hi = self.index * len(items) // count, (self.index + 1) * len(items) // count
        drop = items[:lo] + items[hi:]
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = items[lo:hi]

    # ------------------------------------------------------------ the place

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if self.lost is None and self.watching:
            self.lost = self.check()
        if self.lost is None and not self.prepared:
            self.prepared = True
            self.lost = self.bring_up()
        if self.lost is not None:
            pytest.fail(self.lost, pytrace=False)

    def bring_up(self) -> str | None:
        """A target with a labgrid Strategy (a real board: boot the kernel under test, start
        the guest) is taken to its ``guest`` state once, before the first case."""
        from labgrid.exceptions import NoDriverFoundError
        from labgrid.pytestplugin.hooks import LABGRID_ENV_KEY

        env = self.config.stash.get(LABGRID_ENV_KEY, None)
        try:
            target = env.get_target(self.plan["target"]) if env is not None else None
        except Exception as exc:  # RemotePlace expansion: the place, its resources, the coordinator
            return f"place {self.place['place']}: labgrid could not make target {self.plan['target']}: {exc}"
        if target is None:
            return None
        try:
            strategy = target.get_driver("Strategy", activate=False)
        except NoDriverFoundError:
            return None
        try:
            strategy.transition("guest")
        except Exception as exc:  # the strategy's own error says what failed
            return f"place {self.place['place']}: {type(strategy).__name__} could not bring the board up: {exc}"
        return None

    def check(self) -> str | None:
        """None while the place is held by this run with its resources exported, else why not."""
        from apflab.nightly.session import CoordinatorSession, LabError

        name = self.place["place"]
        try:
            if self.session is None:
                self.session = CoordinatorSession(self.plan["coordinator"], timeout=5.0)
            state = self.session.place(name)
        except LabError as exc:
            # The coordinator is gone or slow: the board's own connections may still work,
            # so the run goes on unwatched (the place is released when the coordinator is back).
            self.watching = False
            self._note(f"stopped watching {name}: {exc}")
            return None
        if state.acquired != self.session.user:
            return f"place {name} is no longer held by this run (acquired: {state.acquired or 'nobody'})"
        gone = [path for path, avail in state.resources if not avail]
        if gone or not state.resources:
            exporters = sorted({path.split("/")[0] for path in gone}) or ["?"]
            return (
                f"place {name} lost its resources mid-run (exporter {', '.join(exporters)} gone?): "
                f"{', '.join(gone) or 'none left'}"
            )
        return None

    def _note(self, text: str) -> None:
        from apflab.pytest_plugin import LOG_KEY

        log = self.config.stash.get(LOG_KEY, None)
        if log is not None:
            log.suite_properties["place_watch"] = text

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
