"""Reports people read: HTML and Markdown from JUnit and metrics, merge, compare, plots.

``apflab report build|merge|compare`` (apflab.report.cli). docs/reports.md describes the
report, the comparison rules and the errors bad input gives.
"""
