"""Image recipe ``agent``: the bare-metal guest agent, built by guest_payloads/agent/Makefile.

Outputs agent.elf (QEMU ``-kernel``) and agent.bin (TF-A's BL33), linked at 0x60000000.
A stamp of the sources' hash makes a changed source rebuild.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from apflab.images import ImageError, Progress, Recipe, register

SOURCE = Path(__file__).resolve().parents[2] / "guest_payloads" / "agent"
CROSS = "aarch64-linux-gnu-gcc"


def source_hash() -> str:
    h = hashlib.sha256()
    for path in sorted(SOURCE.iterdir()):
        if (path.is_file() and path.suffix in (".c", ".h", ".S", ".ld")) or path.name == "Makefile":
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


class AgentRecipe(Recipe):
    name = "agent"
    description = "bare-metal guest agent (guest_payloads/agent), aarch64"

    def dir(self, cache: Path) -> Path:
        return cache / "agent"

    def outputs(self, cache: Path) -> list[Path]:
        d = self.dir(cache)
        return [d / "agent.elf", d / "agent.bin"]

    def fresh(self, cache: Path) -> bool:
        stamp = self.dir(cache) / "stamp"
        return super().fresh(cache) and stamp.exists() and stamp.read_text() == source_hash()

    def build(self, cache: Path, progress: Progress) -> None:
        if shutil.which(CROSS) is None:
            raise ImageError(f"{CROSS} is missing: apt-get install gcc-aarch64-linux-gnu")
        out = self.dir(cache)
        out.mkdir(parents=True, exist_ok=True)
        progress(f"agent: make -C {SOURCE} OUT={out}")
        r = subprocess.run(
            ["make", "-s", "-C", str(SOURCE), f"OUT={out}"], capture_output=True, text=True, timeout=300, check=False
        )
        if r.returncode != 0:
            raise ImageError(f"building the agent failed: {(r.stderr or r.stdout).strip()[-800:]}")
        (out / "stamp").write_text(source_hash())


AGENT = register(AgentRecipe())
