"""Errors every part of apflab's command line may raise, in a module of their own.

The subcommand modules (apflab.perf.cli, apflab.report.cli, apflab.nightly.cli) raise
:class:`CliError` and apflab.cli prints it; keeping it here means no package imports
the command line back.
"""

from __future__ import annotations


class CliError(Exception):
    """A user error: printed as one line (``apflab: error: ...``), exit status 2."""


#: The exit status of a command cut short by Ctrl-C (128 + SIGINT, as a shell reports it).
INTERRUPTED = 130
