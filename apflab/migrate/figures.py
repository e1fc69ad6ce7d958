"""What a migration's ``query-migrate`` reports, named as the seed's scenario B table names it.

Source: the APF v4 cover letter's scenario B (docs/reference/apf-seed-results.md): total time, downtime, setup time,
transferred RAM, throughput, dirty sync count, page size, pages per second, post-copy
request count; post-copy blocktime comes from the destination (capability
``postcopy-blocktime``). Units are QEMU's: milliseconds, bytes, Mbit/s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class MigrationFigures:
    mode: str  # "precopy" or "postcopy"
    status: str
    total_time_ms: float
    downtime_ms: float
    setup_time_ms: float
    transferred_bytes: int
    total_ram_bytes: int
    throughput_mbps: float
    dirty_sync_count: int
    page_size: int
    pages_per_second: float
    postcopy_requests: int
    precopy_bytes: int = 0
    postcopy_bytes: int = 0
    blocktime_ms: float | None = None  # destination, post-copy only
    vcpu_blocktime_ms: list[float] = field(default_factory=list)
    notice_latency_ms: float | None = None  # our wake-up after QEMU's "completed" event
    switchover_at: float | None = None  # progress at migrate-start-postcopy (post-copy only)

    @classmethod
    def from_qmp(cls, mode: str, src: dict[str, Any], dst: dict[str, Any] | None = None) -> MigrationFigures:
        ram = src.get("ram", {})
        dst = dst or {}
        return cls(
            mode=mode,
            status=str(src.get("status", "")),
            total_time_ms=float(src.get("total-time", 0)),
            downtime_ms=float(src.get("downtime", 0)),
            setup_time_ms=float(src.get("setup-time", 0)),
            transferred_bytes=int(ram.get("transferred", 0)),
            total_ram_bytes=int(ram.get("total", 0)),
            throughput_mbps=float(ram.get("mbps", 0.0)),
            dirty_sync_count=int(ram.get("dirty-sync-count", 0)),
            page_size=int(ram.get("page-size", 0)),
            pages_per_second=float(ram.get("pages-per-second", 0.0)),
            postcopy_requests=int(ram.get("postcopy-requests", 0)),
            precopy_bytes=int(ram.get("precopy-bytes", 0)),
            postcopy_bytes=int(ram.get("postcopy-bytes", 0)),
            blocktime_ms=float(dst["postcopy-blocktime"]) if "postcopy-blocktime" in dst else None,
            vcpu_blocktime_ms=[float(v) for v in dst.get("postcopy-vcpu-blocktime", [])],
        )

    def metrics(self) -> list[tuple[str, float, str]]:
        """(name, value, unit) for apflab's metrics.json, one per scenario-B column."""
        out = [
            ("total_time", self.total_time_ms, "ms"),
            ("downtime", self.downtime_ms, "ms"),
            ("setup_time", self.setup_time_ms, "ms"),
            ("transferred_ram", self.transferred_bytes / 2**20, "MiB"),
            ("throughput", self.throughput_mbps, "Mbit/s"),
            ("dirty_sync_count", self.dirty_sync_count, "count"),
            ("page_size", self.page_size, "bytes"),
            ("pages_per_second", self.pages_per_second, "pages/s"),
            ("postcopy_requests", self.postcopy_requests, "count"),
        ]
        if self.blocktime_ms is not None:
            out.append(("postcopy_blocktime", self.blocktime_ms, "ms"))
        if self.notice_latency_ms is not None:
            out.append(("completion_notice_latency", self.notice_latency_ms, "ms"))
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


COLUMNS = (
    "Mode",
    "Total time",
    "Downtime",
    "Setup",
    "Transferred",
    "Throughput",
    "Dirty syncs",
    "Page size",
    "Pages/s",
    "Post-copy requests",
    "Blocktime",
)


def table_row(f: MigrationFigures) -> list[str]:
    return [
        f.mode,
        f"{f.total_time_ms:.0f} ms",
        f"{f.downtime_ms:.0f} ms",
        f"{f.setup_time_ms:.0f} ms",
        f"{f.transferred_bytes / 2**20:.1f} MiB",
        f"{f.throughput_mbps:.1f} Mbit/s",
        str(f.dirty_sync_count),
        f"{f.page_size // 1024} KB" if f.page_size % 1024 == 0 else f"{f.page_size} B",
        f"{f.pages_per_second:.0f}",
        str(f.postcopy_requests),
        "n/a" if f.blocktime_ms is None else f"{f.blocktime_ms:.0f} ms",
    ]


def markdown(rows: list[list[str]], columns: tuple[str, ...] | list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
