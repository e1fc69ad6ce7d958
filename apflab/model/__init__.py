"""The in-tree reference model: SMCCC front, SDEI dispatcher, PEs, and the guest agent on it.

DEN0054C is its spec (docs/reference/), TF-A's behaviour the proxy; the ``kvm-v4`` profile switches
in the v4 series' deviations one named switch at a time (apflab.profiles).
"""

from apflab.model.guest import ModelGuest, model_facts
from apflab.model.machine import Machine, ModelError

__all__ = ["Machine", "ModelError", "ModelGuest", "model_facts"]
