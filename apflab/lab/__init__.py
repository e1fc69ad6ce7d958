"""labgrid drivers apflab adds, in labgrid's style (attrs fields = YAML keys, declared bindings).

Importing this package registers the drivers with labgrid's target factory; lab.yaml
names it under ``imports:``.
"""

import apflab.lab.linux  # noqa: F401 (registers the qemu-linux target's drivers)
from apflab.lab import hoststrategy, netconsole, qemuboard, qemukvm, remoteqemu, remotevmm  # noqa: F401 (boards, KVM)
from apflab.lab.agentdriver import AgentDriver
from apflab.lab.guestprotocol import GuestProtocol
from apflab.lab.modeldriver import ModelDriver
from apflab.lab.qemuprocess import QEMUProcessDriver

__all__ = ["AgentDriver", "GuestProtocol", "ModelDriver", "QEMUProcessDriver"]
