"""The kinds of value apflab's drivers take in lab.yaml, as attrs converters and validators.

Each says what is allowed in its error ("must be ..."), so the check at session start
(apflab.lab.configcheck) can name the target, the key, the value and what is allowed
in one line. They need no driver instance: the check runs them on the keys alone.
"""

from __future__ import annotations

import shlex
import shutil
from typing import Any

import attr

from apflab.capabilities import check as check_capabilities
from apflab.profiles import KNOWN_DEVIATIONS


def seconds(value: Any) -> float:
    """Converter: a timeout, a number of seconds above 0 (a YAML number or a numeric string)."""
    if not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if number is not None and number > 0 and number != float("inf"):
            return number
    raise ValueError("must be a number of seconds above 0")


def integer(low: int, high: int) -> Any:
    """Validator: an integer from ``low`` to ``high`` (YAML's true and false are not numbers)."""

    def check(_inst: Any, _attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be an integer from {low} to {high}")

    return check


_PPI_OR_SPI = integer(16, 1019)


def shell_words(_inst: Any, _attribute: Any, value: Any) -> None:
    """Validator: more arguments on a command line, split as a shell would split them."""
    if not isinstance(value, str):
        raise TypeError("must be a string of command-line arguments")
    try:
        shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"must split like a shell line ({exc}: a quote without its pair?)") from None


def program(_inst: Any, _attribute: Any, value: Any) -> None:
    """Validator: a program found on PATH (or a path to one)."""
    if not isinstance(value, str) or shutil.which(value) is None:
        raise ValueError("not found on PATH: install it (QEMU: apt-get install qemu-system-arm) or give its path")


def deviations(_inst: Any, _attribute: Any, value: Any) -> None:
    """Validator: a list of deviation names of apflab/profiles.py."""
    if not isinstance(value, list):
        raise TypeError("must be a list of deviation names")
    unknown = [v for v in value if v not in KNOWN_DEVIATIONS]
    if unknown:
        raise ValueError(f"{', '.join(map(str, unknown))} not a known deviation (apflab/profiles.py lists them)")


def capabilities(_inst: Any, _attribute: Any, value: Any) -> None:
    """Validator: a list of capability names of apflab/capabilities.py."""
    if not isinstance(value, list):
        raise TypeError("must be a list of capability names")
    check_capabilities(value, "the capabilities key")


def strings(_inst: Any, _attribute: Any, value: Any) -> None:
    """Validator: a list of strings."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("must be a list of strings")


def intids(inst: Any, attribute: Any, value: Any) -> None:
    """Validator: a list of PPI and SPI interrupt IDs (GICv3: 16-1019)."""
    if not isinstance(value, list):
        raise TypeError("must be a list of PPI or SPI interrupt IDs")
    for intid in value:
        _PPI_OR_SPI(inst, attribute, intid)


def events(_inst: Any, _attribute: Any, value: Any) -> None:
    """Validator: the SDEI event catalogue (apflab.lab.agentdriver.parse_events reads it)."""
    from apflab.lab.agentdriver import parse_events

    if not isinstance(value, list):
        raise TypeError("must be a list of events: {number, type, priority, signalable, intid, dynamic}")
    parse_events(value)


def timeout(default: float) -> Any:
    """An attrs field for a timeout key (seconds above 0)."""
    return attr.ib(default=default, converter=seconds)
