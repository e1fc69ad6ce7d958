"""The few PSCI (Arm DEN0022) calls the SMCCC front answers.

PSCI shares OEN 4 with SDEI; the model answers PSCI_VERSION and PSCI_FEATURES so a
guest can probe the conduit the way Linux does.
"""

from __future__ import annotations

PSCI_VERSION = 0x84000000
PSCI_CPU_OFF = 0x84000002
PSCI_CPU_ON_64 = 0xC4000003
PSCI_SYSTEM_OFF = 0x84000008
PSCI_FEATURES = 0x8400000A

#: PSCI return code for an unknown function (same value as SMCCC NOT_SUPPORTED).
NOT_SUPPORTED = -1


def version(major: int, minor: int) -> int:
    """PSCI_VERSION result: major in bits 31:16, minor in 15:0."""
    return (major & 0x7FFF) << 16 | (minor & 0xFFFF)


#: The PSCI range of OEN 4: 0x84000000-0x8400001F and 0xC4000000-0xC400001F.
def is_psci(fid: int) -> bool:
    return (fid & 0xBFFFFFE0) == 0x84000000
