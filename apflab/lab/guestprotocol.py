"""GuestProtocol: what a labgrid driver offers when it can hand out a Guest.

Every kind of target (the model, the bare-metal agent on a console, a Linux guest)
has a driver implementing this protocol, so the pytest plugin asks the target for
``GuestProtocol`` and never for a concrete driver class.
"""

from __future__ import annotations

import abc

from apflab.guest import Guest


class GuestProtocol(abc.ABC):
    @abc.abstractmethod
    def guest(self) -> Guest:
        """The Guest for this target, ready for use (booted, hello exchanged)."""
