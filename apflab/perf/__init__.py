"""The performance model of the seed's APF scenarios (docs/perf-model.md).

A discrete-event model of one guest on one host, built from physical quantities
(apflab.perf.params): scenario A (heavy swap-in under a cgroup limit) reproduces the
published table; scenario B (post-copy migration during the job) is predicted with the
parameters calibrated on A. ``apflab simulate scenario-a|scenario-b`` prints the tables.
"""
