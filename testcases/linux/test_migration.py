"""Live migration of the Linux guest through QMP and SSH, pre-copy and post-copy.

The destination QEMU is started over SSH on the target's migration host (for the
project's own runs a throwaway OpenSSH server on 127.0.0.1 with strict host-key
checking). Checks follow QEMU's migration tests (docs/reference/lab.md): the source ends
``postmigrate``, the destination ``running``, and the guest keeps making progress there.
The scenario B test is the series' (docs/reference/apf-seed-results.md): 1 vCPU, 1024 MB, no cgroup, ``-l 50`` with
``-t``, post-copy while the workload runs, 4 KB pages, about 915 MB moved.
"""

from __future__ import annotations

import re

from apflab.linux import workload
from apflab.linux.table import Row, render
from apflab.migrate.figures import COLUMNS, markdown, table_row
from apflab.testing import spec
from testcases.linux.guest import FIRST_PASS, HANDSHAKE, RESUMED, start_handshake, start_workload, uptime

MIGRATION = "QEMU tests/functional/migration.py; docs/reference/lab.md"
POSTCOPY = "QEMU tests/qtest/migration/postcopy-tests.c; docs/reference/lab.md"
SCENARIO_B = "APF v4 00/15 scenario B; docs/reference/apf-seed-results.md"
PAGE_SIZE = 4096  # scenario B: 4 KB pages


def _pass_numbers(text: str) -> list[int]:
    return workload.passes_seen(text)


@spec(MIGRATION, "pre-copy of an idle guest: source postmigrate, destination running, the guest goes on there")
def test_precopy_idle(linux, migration, record_figures) -> None:
    before = uptime(linux)
    start_handshake(linux.qemu)
    figures = migration.migrate("precopy", handshake=re.escape(HANDSHAKE), release="\n")
    record_figures(figures)
    dst = migration.destination
    match, _ = dst.console.expect(RESUMED, timeout=60)
    assert float(match.group(1)) > before, "the guest's clock went on after the migration"
    assert migration.source_state() == "postmigrate"
    assert dst.status() == "running"
    assert figures.status == "completed" and figures.postcopy_requests == 0
    assert figures.page_size == PAGE_SIZE
    assert figures.downtime_ms <= figures.total_time_ms
    assert figures.transferred_bytes < figures.total_ram_bytes, "an idle guest's zero pages are not sent as data"


@spec(POSTCOPY, "post-copy of a guest running the workload: pages requested on demand, the job finishes there")
def test_postcopy_workload(linux, migration, record_figures) -> None:
    passes = 20
    start_workload(linux.qemu, passes=passes, mem_mb=192, calc=True)
    # Switch at once: the guest then runs on the destination with almost none of its RAM there.
    figures = migration.migrate("postcopy", handshake=FIRST_PASS, postcopy_at=0.0)
    record_figures(figures)
    dst = migration.destination
    assert migration.source_state() == "postmigrate"
    assert dst.status() == "running"
    assert figures.status == "completed"
    assert figures.postcopy_requests > 0, "the destination faulted on pages it did not have yet"
    assert figures.blocktime_ms is not None, "postcopy-blocktime was enabled on the destination"
    assert figures.page_size == PAGE_SIZE
    dst.console.expect(workload.RESULT_LINE, timeout=600)
    text = dst.console.text()
    result = workload.parse(text)
    assert result.passes == passes
    assert _pass_numbers(text)[-1] == passes, "the workload went on to its last pass on the destination"


@spec(
    SCENARIO_B,
    "1 vCPU, 1024 MB, -l 50 -t, post-copy while the workload runs: job time, calculation, "
    "query-migrate figures; 4 KB pages, about 915 MB moved",
)
def test_scenario_b(linux_strategy, migration, record_metric, record_figures, show_table) -> None:
    strategy = linux_strategy
    strategy.boot(memory="1024M")
    switchable, reason = strategy.apf_switch()
    # Migrating re-activates the MigrationDriver, which the boot's shell activation released.
    migration = strategy.target.get_driver("MigrationDriver")
    start_workload(strategy.qemu, passes=50, mem_mb=None, calc=True)
    figures = migration.migrate("postcopy", handshake=FIRST_PASS)
    record_figures(figures)
    dst = migration.destination
    dst.console.expect(workload.RESULT_LINE, timeout=900)
    result = workload.parse(dst.console.text())
    record_metric("time-", result.time_s, "s")
    record_metric("calculation-", result.calc_millions, "Msteps")
    table = render(
        [Row(result, None)],
        f"scenario B on {strategy.target.name} ({strategy.accelerator}, 1024 MB, -l 50 -t, post-copy)",
        plus_skip=reason,
    )
    table += "\n\n" + markdown([table_row(figures)], COLUMNS)
    show_table("scenario B", table)
    assert result.passes == 50 and result.threads == 2
    assert figures.page_size == PAGE_SIZE
    assert figures.postcopy_requests > 0
    moved_mb = figures.transferred_bytes / 2**20
    assert 915 * 0.85 <= moved_mb <= 915 * 1.15, f"{moved_mb:.0f} MiB moved; the seed moved about 915 MB"
    assert not switchable or result.apf is not None
