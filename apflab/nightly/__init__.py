"""``apflab nightly``: one run of the suites spread over many lab places through labgrid.

labgrid's coordinator owns the boards (places, tags, reservations, who holds what);
this package only asks it for places, runs pytest-xdist with one worker per place, and
gives every place back, whatever happens. docs/nightly.md describes the whole flow.
"""
