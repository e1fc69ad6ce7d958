"""The seed-style performance tables, rebuilt from the metrics a run recorded.

apflab.perf.table names its metrics ``perf.<scenario>.<config>.<run>.<column>`` (and
``...<run>.migration_<minus|plus>.<figure>`` for migration); the measured workload on a
real target records the same names. Targets whose tables are identical (the model under
two profiles) are shown once, with both names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from apflab.report.load import Metric

CONFIGS = ("no-t", "t")
COLUMNS = ("time_minus", "calc_minus", "time_plus", "calc_plus", "output_time", "output_calc")
HEADINGS = {
    "time_minus": "Time-",
    "calc_minus": "Calculation-",
    "time_plus": "Time+",
    "calc_plus": "Calculation+",
    "output_time": "Output (time)",
    "output_calc": "Output (calculation)",
}
MIGRATION_FIGURES = (
    ("total_time_ms", "total time", "ms"),
    ("downtime_ms", "downtime", "ms"),
    ("setup_ms", "setup time", "ms"),
    ("transferred_mb", "transferred RAM", "MB"),
    ("throughput_mbps", "throughput", "Mbit/s"),
    ("dirty_sync_count", "dirty sync count", ""),
    ("page_size", "page size", "B"),
    ("pages_per_second", "pages per second", ""),
    ("postcopy_requests", "post-copy requests", ""),
)


@dataclass
class PerfTable:
    scenario: str
    targets: list[str]
    runs: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)  # config -> run -> column
    means: dict[str, dict[str, float]] = field(default_factory=dict)  # config -> column/async_faults
    #: config -> run -> side (minus/plus) -> figure: scenario B migrates in both halves
    migration: dict[str, dict[int, dict[str, dict[str, float]]]] = field(default_factory=dict)

    def signature(self) -> tuple:
        return (self.scenario, repr(self.runs), repr(self.means), repr(self.migration))

    def rows(self) -> list[tuple[str, int, dict[str, float]]]:
        present = [cfg for cfg in CONFIGS if cfg in self.runs]
        return [(cfg, run, self.runs[cfg][run]) for cfg in present for run in sorted(self.runs[cfg])]

    def migration_means(self) -> dict[str, dict[str, dict[str, float]]]:
        """config -> side -> figure -> mean over the config's runs."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for cfg in CONFIGS:
            for side in ("minus", "plus"):
                values: dict[str, list[float]] = {}
                for per_side in self.migration.get(cfg, {}).values():
                    for key, v in per_side.get(side, {}).items():
                        values.setdefault(key, []).append(v)
                if values:
                    out.setdefault(cfg, {})[side] = {k: sum(v) / len(v) for k, v in values.items()}
        return out


def perf_tables(metrics: Iterable[Metric]) -> list[PerfTable]:
    tables: dict[tuple[str, str], PerfTable] = {}
    for m in metrics:
        if not m.name.startswith("perf."):
            continue
        parts = m.name.split(".")
        if len(parts) < 5 or parts[2] not in CONFIGS:
            continue
        _, scenario, config, run, column = parts[:5]
        table = tables.setdefault((m.target, scenario), PerfTable(scenario, [m.target]))
        if run == "mean":
            table.means.setdefault(config, {})[column] = m.value
        elif run.isdigit():
            n = int(run)
            if column.startswith("migration_") and len(parts) == 6:
                side = column.removeprefix("migration_")
                per_run = table.migration.setdefault(config, {}).setdefault(n, {})
                per_run.setdefault(side, {})[parts[5]] = m.value
            elif column in COLUMNS:
                table.runs.setdefault(config, {}).setdefault(n, {})[column] = m.value
    merged: dict[tuple, PerfTable] = {}
    for (target, _), table in sorted(tables.items()):
        same = merged.get(table.signature())
        if same is None:
            merged[table.signature()] = table
        elif target not in same.targets:
            same.targets.append(target)
    return sorted(merged.values(), key=lambda t: (t.scenario, t.targets))
