"""Every SDEI case needs a target with SDEI: the session's one SDEI_VERSION probe decides."""

from __future__ import annotations

import pytest

from apflab.testing import Guest


@pytest.fixture(autouse=True)
def _needs_sdei(apflab_guest: Guest) -> None:
    apflab_guest.require("sdei", "SDEI_VERSION answered NOT_SUPPORTED: the target has no SDEI")
