"""The real-board template (lab.yaml's commented lab-board, targets/lab/board-exporter.yaml),
filled in and loaded by labgrid: the exporter file renders to resources labgrid exports, and
the lab-board target, made from a real coordinator place whose exporter publishes what a
board's exporter publishes to clients, binds every driver to the right supplier.

No hardware is powered or booted: the test stops before activation.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from labgrid import Environment
from labgrid.remote.config import ResourceConfig

from apflab.nightly.standin import HOST, StandinLab, free_port
from tests.conftest import ROOT

FILL_ENV = {"SSH_KEYFILE": "id_board", "KERNEL_RELEASE": "6.10.0-sdei-v4", "KERNEL_IMAGE": "Image-6.10.0-sdei-v4"}
FILL_EXPORTER = {
    "BOARD": "altra1",
    "PDU_MODEL": "gude",
    "PDU_HOST": HOST,
    "PDU_OUTLET": "3",
    "SERIAL_ID": "FT4ABCDE",
    "BOARD_ADDRESS": HOST,
    "EXPORTER": "labhost1",
    "LAB_HOST": HOST,
}


def fill(text: str, values: dict[str, str]) -> str:
    text = re.sub(r"@@([A-Z_]+)@@", lambda m: values.get(m.group(1), m.group(0)), text)
    left = re.findall(r"@@[A-Z_]+@@", text)
    assert not left, f"placeholders without a value: {left}"
    return text


def board_target(tmp_path: Path) -> dict:
    """The commented block of lab.yaml, uncommented and filled."""
    text = (ROOT / "lab.yaml").read_text()
    block = text[text.index("# @@BOARD-TEMPLATE-BEGIN@@") : text.index("# @@BOARD-TEMPLATE-END@@")]
    lines = [line[1:] for line in block.splitlines() if line.startswith("#  ")]
    values = {**FILL_ENV}
    for key in ("SSH_KEYFILE", "KERNEL_IMAGE"):
        (tmp_path / values[key]).write_text("stand-in")
        values[key] = str(tmp_path / values[key])
    return yaml.safe_load(fill("\n".join(lines), values))


def test_exporter_template_renders_to_exportable_resources(tmp_path: Path) -> None:
    from labgrid.remote.exporter import exports
    from labgrid.resource import NetworkPowerPort, NetworkService, USBSerialPort

    path = tmp_path / "board-exporter.yaml"
    path.write_text(fill((ROOT / "targets/lab/board-exporter.yaml").read_text(), FILL_EXPORTER))
    data = ResourceConfig(str(path), {"env": os.environ}).data  # labgrid's own Jinja + YAML loading
    assert list(data) == ["altra1"]
    board = data["altra1"]
    assert set(board) == {"NetworkPowerPort", "USBSerialPort", "NetworkService"}
    assert "USBSerialPort" in exports  # served through ser2net, seen by clients as NetworkSerialPort
    fields = {"NetworkPowerPort": NetworkPowerPort, "USBSerialPort": USBSerialPort, "NetworkService": NetworkService}
    for cls, params in board.items():
        known = {f.name for f in fields[cls].__attrs_attrs__}
        assert set(params) <= known, f"{cls}: unknown keys {set(params) - known}"
    assert board["NetworkPowerPort"] == {"model": "gude", "host": HOST, "index": 3}


def test_board_target_binds_through_a_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """lab-board made from a place whose exporter publishes a board's client-side resources."""
    config = tmp_path / "exporter.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "altra1": {
                    "NetworkPowerPort": {"model": "gude", "host": HOST, "index": 3},
                    "NetworkSerialPort": {"host": HOST, "port": free_port(), "protocol": "rfc2217"},  # ser2net's view
                    "NetworkService": {"address": HOST, "username": "root"},
                }
            }
        )
    )
    env_file = tmp_path / "lab.yaml"
    env_file.write_text(yaml.safe_dump({"targets": board_target(tmp_path), "imports": ["apflab.lab"]}))
    with StandinLab(tmp_path / "lab") as lab:
        lab.start_exporter("labhost1", config, ["altra1"])
        with lab.session() as session:
            session.add_place("altra1", ["labhost1/altra1/*"], {"pool": "nightly", "target": "lab-board"})
            token = session.reserve({"name": "altra1"})
            assert session.poll(token).place == "altra1"
            session.acquire("altra1")
            try:
                monkeypatch.setenv("LG_TOKEN", token)
                env = Environment(str(env_file))
                env.config.set_option("coordinator_address", lab.address)
                target = env.get_target("lab-board")
                strategy = target.get_driver("HostKernelStrategy", activate=False)
                assert type(strategy.power).__name__ == "NetworkPowerDriver"
                assert type(strategy.console).__name__ == "SerialDriver"
                assert type(strategy.ssh).__name__ == "SSHDriver"
                agent = strategy.guest
                assert type(agent).__name__ == "AgentDriver"
                assert type(agent.console).__name__ == type(agent.power).__name__ == "RemoteQEMUDriver"
                assert agent.console.ssh is strategy.ssh
                assert strategy.kernel_release == FILL_ENV["KERNEL_RELEASE"]
                target.cleanup()
            finally:
                session.release("altra1")
                session.cancel(token)
