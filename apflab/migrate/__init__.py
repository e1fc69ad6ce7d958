"""Live migration of a QEMU guest between two hosts, driven through QMP and SSH.

labgrid's QEMUDriver starts one QEMU and speaks QMP through a helper that throws
asynchronous events away; migration needs two QEMUs, the destination possibly on
another host, and the MIGRATION/STOP/RESUME events as they happen. The pieces:

* :mod:`apflab.migrate.qmp`: qemu.qmp's QMPClient on a loop thread, events timestamped;
* :mod:`apflab.migrate.remote`: a host reached over SSH (paramiko, strict host keys);
* :mod:`apflab.migrate.localsshd`: a throwaway OpenSSH server on 127.0.0.1 for tests;
* :mod:`apflab.migrate.destination`: the destination QEMU (``-incoming defer``) on a host;
* :mod:`apflab.migrate.console`: a console read from a byte stream, with expect();
* :mod:`apflab.migrate.figures`: what ``query-migrate`` reports, as the seed's table;
* :mod:`apflab.migrate.session`: one migration, pre-copy or post-copy, checked end to end.

The labgrid side is :class:`apflab.lab.migrationdriver.MigrationDriver`.
"""

from __future__ import annotations


class MigrationError(Exception):
    """A migration, or the machinery around it, failed; the message has both sides' state."""


class HostError(MigrationError):
    """An SSH host could not be reached, refused the login, or showed an unexpected host key."""


class DestinationError(MigrationError):
    """The destination QEMU did not start, or died."""
