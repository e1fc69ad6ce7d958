"""A FAKE regression of the reference model, for a run to have one: ``-p tests.model_regression``.

Loaded into pytest as a plugin, it makes the model's PE_MASK answer 0 when it masked the
PE (what the v4 series does: deviation ``pe_mask_returns_zero``) whatever the target's
profile says, as a broken change to apflab/model/sdei.py would. Under the ``spec``
profile the cases that check PE_MASK's answer then FAIL, for real: the run, the checks,
the results and the report are all the real thing. tests/test_report_trend.py makes one
night of such a run, so a trend has new failures to find and, the night after, fixes.
"""

from __future__ import annotations

from apflab.model.sdei_events import SdeiEvents

BROKEN = "pe_mask_returns_zero"
_carried = SdeiEvents.dev


def _dev(self: SdeiEvents, name: str) -> bool:
    return name == BROKEN or _carried(self, name)


SdeiEvents.dev = _dev  # type: ignore[method-assign]
