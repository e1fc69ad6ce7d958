"""ModelDriver: the reference model as a labgrid target.

With ``transport: inprocess`` the model runs inside the test process; with
``transport: pipe`` the driver starts ``apflab agent --target model`` and talks the
agent protocol to it, exactly as it would to the bare-metal agent on a UART.
"""

from __future__ import annotations

from typing import ClassVar

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory

from apflab.agent.client import AgentGuest, ProcessStream, RoundTrips, model_agent_argv
from apflab.guest import Guest
from apflab.lab import keys
from apflab.lab.guestprotocol import GuestProtocol, SessionFigures
from apflab.lab.targetinfo import describe
from apflab.model.guest import ModelGuest
from apflab.model.platform import PLATFORMS
from apflab.profiles import PROFILES, get_profile


@target_factory.reg_driver
@attr.s(eq=False)
class ModelDriver(Driver, GuestProtocol):
    """Binds to nothing: the model needs no hardware.

    Args:
        profile (str): behaviour profile, ``spec`` or ``kvm-v4``
        pes (int): number of PEs (processing elements / vCPUs)
        el (int): exception level the guest agent runs at (1 or 2)
        transport (str): ``inprocess`` or ``pipe``
        timeout (float): seconds to wait for each reply over the pipe
        requires (list): capabilities the target must have (apflab/capabilities.py): the
            model implements them, so lacking one fails every case instead of skipping it
        strict_deviations (bool): every deviation of the profile a case names must show at
            least once in the session (a deviation the model never shows is a broken model)
    """

    bindings: ClassVar[dict] = {}

    profile = attr.ib(default="spec", validator=attr.validators.in_(sorted(PROFILES)))
    pes = attr.ib(default=4, validator=keys.integer(1, 64))
    el = attr.ib(default=1, validator=attr.validators.in_([1, 2]))
    transport = attr.ib(default="inprocess", validator=attr.validators.in_(["inprocess", "pipe"]))
    timeout = keys.timeout(10.0)
    requires = attr.ib(factory=list, validator=keys.capabilities)
    strict_deviations = attr.ib(default=False, validator=attr.validators.instance_of(bool))

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._guest: Guest | None = None
        self.round_trips: RoundTrips | None = None  # over the pipe: the protocol's round trips

    def session_figures(self) -> SessionFigures:
        return SessionFigures(round_trips=self.round_trips)

    def on_deactivate(self) -> None:
        if self._guest is not None:
            self._guest.close()
            self._guest = None

    @Driver.check_active
    def guest(self) -> Guest:
        if self._guest is None:
            profile = get_profile(self.profile)
            guest: Guest
            if self.transport == "inprocess":
                guest = ModelGuest(self.target.name, profile, self.pes, self.el)
            else:
                stream = ProcessStream(model_agent_argv(self.profile, self.pes, self.el))
                guest = AgentGuest(stream, self.target.name, timeout=self.timeout)
                self.round_trips = guest.round_trips
            # SDEI has no discovery: the events are the model platform's, over the pipe too.
            guest.info = describe(
                self.target.name,
                guest,
                profile=profile,
                events=PLATFORMS[profile.platform].events,
                secure_intids=PLATFORMS[profile.platform].secure_intids,
                requires=self.requires,
                strict_deviations=self.strict_deviations,
            )
            self._guest = guest
        return self._guest
