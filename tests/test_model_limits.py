"""The model's configuration limits and what it grants for them (docs/targets.md: pes 1..64, el 1 or 2).

The lab's model targets all have 4 PEs at EL1, so these edges are held here.
"""

from __future__ import annotations

import pytest

from apflab.model.guest import model_facts
from apflab.model.machine import Machine, ModelError
from apflab.profiles import UnknownProfile, effective_profile, get_profile


@pytest.mark.parametrize(("pes", "multi"), [(1, False), (2, True), (64, True)])
def test_multi_pe_granted_from_two(pes: int, multi: bool) -> None:
    """apflab/capabilities.py: multi-pe is "more than one PE"."""
    facts = model_facts(get_profile("spec"), pes, 1)
    assert ("multi-pe" in facts.capabilities) is multi
    assert facts.pes == pes and len(facts.mpidrs) == pes


@pytest.mark.parametrize(("pes", "el"), [(0, 1), (65, 1), (4, 0), (4, 3)])
def test_out_of_range_refused(pes: int, el: int) -> None:
    with pytest.raises(ModelError):
        Machine(get_profile("spec"), pes, el)


def test_edges_accepted() -> None:
    assert len(Machine(get_profile("kvm-v4"), 64, 2).pes) == 64
    assert len(Machine(get_profile("spec"), 1, 1).pes) == 1


def test_target_deviations_join_the_profile() -> None:
    """A target's own deviations (lab.yaml ``deviations:``) add to its profile's, named after it."""
    plain = effective_profile("spec")
    assert plain.name == "spec" and not plain.predicts("tfa_qemu_no_bind_slots")
    tfa = effective_profile("spec", ["tfa_qemu_no_bind_slots"])
    assert tfa.name == "spec" and tfa.predicts("tfa_qemu_no_bind_slots")
    assert not get_profile("spec").predicts("tfa_qemu_no_bind_slots")
    with pytest.raises(UnknownProfile, match="nope"):
        effective_profile("spec", ["nope"])
    with pytest.raises(UnknownProfile, match="kvm-v9"):
        get_profile("kvm-v9")


def test_spec_platform_secure_timer() -> None:
    """The spec model's platform gives the secure world PPI 29, the Secure EL1 physical timer
    (Arm DEN0094, BSA), so test_bind_secure_interrupt binds exactly that one on `model`; the
    model targets report it in TargetInfo as an AgentDriver's ``secure_intids`` would."""
    from apflab.model.platform import PLATFORMS

    assert PLATFORMS["spec"].secure_intids == frozenset({29})


def test_a_call_takes_at_most_17_arguments() -> None:
    """SMCCC passes a call's arguments in x1..x17 (DEN0028, SMC64 from v1.2): 17 are taken and
    an 18th is refused, in a call and in a handler's call step, as the bare-metal agent's
    CALL refuses it (docs/agent-protocol.md)."""
    from apflab.guest import Call, Handler
    from apflab.model.guest import ModelGuest

    guest = ModelGuest("m", get_profile("spec"), 2, 1)
    psci_version = 0x84000000
    assert guest.call(psci_version, *range(17)).ret >= 0
    with pytest.raises(ModelError, match="at most 17"):
        guest.call(psci_version, *range(18))
    guest.set_handler(1, Handler([Call(psci_version, *range(17))]))
    with pytest.raises(ModelError, match="at most 17"):
        guest.set_handler(2, Handler([Call(psci_version, *range(18))]))
