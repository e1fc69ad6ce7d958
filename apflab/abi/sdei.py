"""SDEI (Arm DEN0054) function IDs, return codes and constants.

Data and encoders only. Values from DEN0054C chapter 5 and Linux's
``include/uapi/linux/arm_sdei.h`` (docs/reference/sdei-calls.md): only the SMC64 IDs
0xC4000020..0xC4000032 exist (DEN0054C 5.1).
"""

from __future__ import annotations

import enum

#: SDEI_1_0_FN_BASE: fast SMC64 call, OEN 4, function 0x20.
FN_BASE = 0xC4000020
FN_MASK = 0xFFFFFFE0


class Fn(enum.IntEnum):
    """The 19 SDEI functions (DEN0054C chapter 5), by their SMC64 function ID."""

    VERSION = 0xC4000020
    EVENT_REGISTER = 0xC4000021
    EVENT_ENABLE = 0xC4000022
    EVENT_DISABLE = 0xC4000023
    EVENT_CONTEXT = 0xC4000024
    EVENT_COMPLETE = 0xC4000025
    EVENT_COMPLETE_AND_RESUME = 0xC4000026
    EVENT_UNREGISTER = 0xC4000027
    EVENT_STATUS = 0xC4000028
    EVENT_GET_INFO = 0xC4000029
    EVENT_ROUTING_SET = 0xC400002A
    PE_MASK = 0xC400002B
    PE_UNMASK = 0xC400002C
    INTERRUPT_BIND = 0xC400002D
    INTERRUPT_RELEASE = 0xC400002E
    EVENT_SIGNAL = 0xC400002F
    FEATURES = 0xC4000030
    PRIVATE_RESET = 0xC4000031
    SHARED_RESET = 0xC4000032


#: The spec section (DEN0054C 5.1.x) that defines each call.
SECTION = {
    Fn.VERSION: "5.1.1",
    Fn.EVENT_REGISTER: "5.1.2",
    Fn.EVENT_ENABLE: "5.1.3",
    Fn.EVENT_DISABLE: "5.1.4",
    Fn.EVENT_CONTEXT: "5.1.5",
    Fn.EVENT_COMPLETE: "5.1.6",
    Fn.EVENT_COMPLETE_AND_RESUME: "5.1.7",
    Fn.EVENT_UNREGISTER: "5.1.8",
    Fn.EVENT_STATUS: "5.1.9",
    Fn.EVENT_GET_INFO: "5.1.10",
    Fn.EVENT_ROUTING_SET: "5.1.11",
    Fn.PE_MASK: "5.1.12",
    Fn.PE_UNMASK: "5.1.13",
    Fn.INTERRUPT_BIND: "5.1.14",
    Fn.INTERRUPT_RELEASE: "5.1.15",
    Fn.EVENT_SIGNAL: "5.1.16",
    Fn.FEATURES: "5.1.17",
    Fn.PRIVATE_RESET: "5.1.18",
    Fn.SHARED_RESET: "5.1.19",
}


def is_sdei_fid(fid: int) -> bool:
    """True for the SMC64 SDEI range that TF-A reserves (0xC4000020-0xC400003F)."""
    return (fid & FN_MASK) == FN_BASE


# Return codes (DEN0054C 5.1; Linux arm_sdei.h).
SUCCESS = 0
NOT_SUPPORTED = -1
INVALID_PARAMETERS = -2
DENIED = -3
PENDING = -5
OUT_OF_RESOURCE = -10

ERROR_NAMES = {
    NOT_SUPPORTED: "NOT_SUPPORTED",
    INVALID_PARAMETERS: "INVALID_PARAMETERS",
    DENIED: "DENIED",
    PENDING: "PENDING",
    OUT_OF_RESOURCE: "OUT_OF_RESOURCE",
}


def error_name(value: int) -> str:
    """Name of an SDEI status, or the number when it is a plain result."""
    if value == SUCCESS:
        return "SUCCESS"
    return ERROR_NAMES.get(value, hex(value))


# VERSION encoding (DEN0054C 5.1.1).
VERSION_MAJOR_SHIFT = 48
VERSION_MAJOR_MASK = 0x7FFF
VERSION_MINOR_SHIFT = 32
VERSION_MINOR_MASK = 0xFFFF
VERSION_VENDOR_MASK = 0xFFFFFFFF


def make_version(major: int, minor: int, vendor: int = 0) -> int:
    return (
        (major & VERSION_MAJOR_MASK) << VERSION_MAJOR_SHIFT
        | (minor & VERSION_MINOR_MASK) << VERSION_MINOR_SHIFT
        | (vendor & VERSION_VENDOR_MASK)
    )


def version_fields(value: int) -> tuple[int, int, int]:
    """(major, minor, vendor) of a VERSION result."""
    return (
        (value >> VERSION_MAJOR_SHIFT) & VERSION_MAJOR_MASK,
        (value >> VERSION_MINOR_SHIFT) & VERSION_MINOR_MASK,
        value & VERSION_VENDOR_MASK,
    )


class Info(enum.IntEnum):
    """EVENT_GET_INFO info types (DEN0054C 5.1.10.2)."""

    EV_TYPE = 0
    EV_SIGNALED = 1  # DEN0054C 5.1.10.2: 0 = can be signalled, 1 = cannot
    EV_PRIORITY = 2
    EV_ROUTING_MODE = 3
    EV_ROUTING_AFF = 4


class EventType(enum.IntEnum):
    PRIVATE = 0
    SHARED = 1


class Priority(enum.IntEnum):
    NORMAL = 0
    CRITICAL = 1


class Routing(enum.IntEnum):
    """EVENT_REGISTER flags bit 0 / ROUTING_SET mode."""

    RM_ANY = 0
    RM_PE = 1


#: REGISTER flags bit 1 (DEN0054C 5.1.2): entry point relative to VBAR (optional, 1.1).
REGISTER_FLAG_RELATIVE = 1 << 1


class Feature(enum.IntEnum):
    """SDEI_FEATURES feature numbers (DEN0054C 5.1.17)."""

    BIND_SLOTS = 0
    RELATIVE_MODE = 1


def bind_slots_fields(value: int) -> tuple[int, int]:
    """(private slots, shared slots) from FEATURES(BIND_SLOTS): bits 15:0 and 31:16."""
    return value & 0xFFFF, (value >> 16) & 0xFFFF


def make_bind_slots(private: int, shared: int) -> int:
    return (shared & 0xFFFF) << 16 | (private & 0xFFFF)


# EVENT_STATUS bits (DEN0054C 5.1.9).
STATUS_REGISTERED = 1 << 0
STATUS_ENABLED = 1 << 1
STATUS_RUNNING = 1 << 2

# EVENT_COMPLETE status codes.
EV_HANDLED = 0
EV_FAILED = 1

#: Event 0: the only standard event, private and software-signalled (DEN0054C 5.1.16).
EVENT_0 = 0

#: EVENT_CONTEXT accepts register indices 0..17 (x0-x17); 18 is the first invalid one.
CONTEXT_REGISTERS = 18
