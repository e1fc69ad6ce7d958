"""The line apflab-vmm prints before it starts the guest (docs/vmm-channel.md, "The announce line").

It says which SDEI mode the VMM chose, what the host kernel offers (``caps``) and the
kernel release, so a driver knows from the console, before the agent's ready line,
whether SDEI is dispatched in the kernel, forwarded to the host's model, or absent.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "APFLAB-VMM "
EXIT_PREFIX = "APFLAB-VMM-EXIT "
VERSION = 1
MODES = ("kernel", "forward", "none")


class AnnounceError(ValueError):
    """Not an announce line this version of apflab understands (the message says why)."""


@dataclass(frozen=True)
class Announce:
    sdei: str
    vcpus: int
    kernel: str
    ipa_bits: int
    caps: frozenset[str]
    channel: str | None
    setup_ms: float
    sdei_version: int | None = None
    apf_version: int | None = None


def find_announce(text: str) -> Announce | None:
    """The announce line in console text, if one has arrived (the last one counts)."""
    found = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(PREFIX):
            found = parse_announce(line)
    return found


def find_exit(text: str) -> tuple[int, str] | None:
    """(status, reason) of the VMM's ``APFLAB-VMM-EXIT status=<n> reason=<text>`` line, if any."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith(EXIT_PREFIX):
            status, _, reason = line[len(EXIT_PREFIX) :].partition(" reason=")
            if status.startswith("status=") and status[7:].lstrip("-").isdigit():
                return int(status[7:]), reason
    return None


def parse_announce(line: str) -> Announce:
    tokens = line.strip().split()
    if len(tokens) < 2 or tokens[0] != PREFIX.strip():
        raise AnnounceError(f"not an announce line: {line[:80]!r}")
    if tokens[1] != str(VERSION):
        raise AnnounceError(f"announce line version {tokens[1]}; apflab reads version {VERSION}")
    fields = dict(t.split("=", 1) for t in tokens[2:] if "=" in t)
    try:
        sdei, vcpus, kernel = fields["sdei"], int(fields["vcpus"]), fields["kernel"]
        ipa, caps, channel, setup = int(fields["ipa"]), fields["caps"], fields["channel"], float(fields["setup_ms"])
        sdei_version = int(fields["sdei_version"], 16) if "sdei_version" in fields else None
        apf_version = int(fields["apf_version"], 16) if "apf_version" in fields else None
    except (KeyError, ValueError) as exc:
        raise AnnounceError(f"announce line lacks or garbles {exc}: {line[:120]!r}") from None
    if sdei not in MODES:
        raise AnnounceError(f"announce line: unknown sdei mode {sdei!r}")
    return Announce(
        sdei,
        vcpus,
        kernel,
        ipa,
        frozenset(c for c in caps.split(",") if c),
        None if channel == "-" else channel,
        setup,
        sdei_version,
        apf_version,
    )
