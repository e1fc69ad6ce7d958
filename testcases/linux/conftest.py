"""Fixtures of the Linux-guest suites: the booted qemu-linux guest, its migration driver, tables.

These suites need a target with a QEMULinuxStrategy (lab.yaml's qemu-linux); on any
other target they are skipped with that reason. Each test boots the guest it needs
(:func:`linux` keeps a running guest with the default configuration between tests), and
the seed-style tables the tests build are printed at the end of the session and
attached to the JUnit properties of the test that completes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from labgrid import Target

from apflab.lab.linux import MigrationDriver, QEMULinuxStrategy
from apflab.migrate.figures import MigrationFigures
from apflab.testing import Unsupported

TABLES: dict[str, str] = {}


def _target(request: pytest.FixtureRequest) -> Target:
    from labgrid.pytestplugin.hooks import LABGRID_ENV_KEY

    env = request.config.stash.get(LABGRID_ENV_KEY, None)
    name = request.config.getoption("target") or "model"
    target = env.get_target(name) if env is not None else None
    if target is None:
        raise Unsupported(f"target {name} is not in the labgrid environment")
    return target


@pytest.fixture(scope="session")
def linux_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The labgrid target, when it is a Linux guest (else every test here is skipped)."""
    from labgrid.exceptions import NoDriverFoundError

    target = _target(request)
    try:
        target.get_driver("QEMULinuxStrategy", activate=False)
    except NoDriverFoundError:
        raise Unsupported(
            f"target {target.name} is not a Linux guest (no QEMULinuxStrategy): the workload and "
            "migration suites run on qemu-linux"
        ) from None
    yield target
    target.get_driver("QEMULinuxStrategy", activate=False).transition("off")


@pytest.fixture
def linux_strategy(linux_target: Target) -> QEMULinuxStrategy:
    return linux_target.get_driver("QEMULinuxStrategy", activate=False)


@pytest.fixture
def linux(linux_strategy: QEMULinuxStrategy) -> QEMULinuxStrategy:
    """The guest at its shell with lab.yaml's configuration (booted if needed)."""
    linux_strategy.transition("shell")
    return linux_strategy


@pytest.fixture
def migration(linux_target: Target) -> Iterator[MigrationDriver]:
    """The MigrationDriver, activated (which releases the ShellDriver from the source console)."""
    driver = linux_target.get_driver("MigrationDriver")
    yield driver
    driver.finish()


@pytest.fixture
def record_figures(record_metric: Callable[[str, float, str], None]) -> Callable[[MigrationFigures], None]:
    def record(figures: MigrationFigures) -> None:
        for name, value, unit in figures.metrics():
            record_metric(f"{figures.mode}.{name}", value, unit)

    return record


@pytest.fixture
def show_table(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """Print a table at the end of the session and attach it to this test's JUnit properties."""

    def show(name: str, text: str) -> None:
        TABLES[name] = text
        request.node.user_properties.append((f"table:{name}", text))

    return show


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for name, text in TABLES.items():
        terminalreporter.write_sep("-", f"apflab linux: {name}")
        terminalreporter.write_line(text)
