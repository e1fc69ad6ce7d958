"""Hosts a migration destination can run on, as labgrid resources and drivers.

``SSHHost`` (resource) + ``SSHHostDriver``: a lab host reached with a key, its host key
pinned in a known_hosts file. ``LocalSSHHostDriver``: a throwaway OpenSSH server on
127.0.0.1 started when the driver is activated (the project's own "remote" host). Both
implement :class:`MigrationHostProtocol`, which the MigrationDriver binds to.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory
from labgrid.resource.common import Resource

from apflab.lab import keys
from apflab.migrate.localsshd import LocalSSHServer
from apflab.migrate.remote import RemoteHost


class MigrationHostProtocol(abc.ABC):
    """A host where a destination QEMU can be started over SSH."""

    @abc.abstractmethod
    def remote(self) -> RemoteHost:
        """A connected (or connectable) SSH session to the host."""

    @abc.abstractmethod
    def qemu_binary(self) -> str:
        """The QEMU binary on that host."""

    @abc.abstractmethod
    def migration_address(self) -> str:
        """The address the source QEMU connects to for the migration stream."""


@target_factory.reg_resource
@attr.s(eq=False)
class SSHHost(Resource):
    """A lab host for destination QEMUs.

    Args:
        address (str): host name or address (SSH and, unless migration_address is set, the stream)
        port (int): SSH port
        username (str): login user
        keyfile (str): private key for the login
        known_hosts (str): known_hosts file holding the host's key (checked strictly)
        qemu_bin (str): QEMU binary on the host
        migration_address (str): address the source connects to for the migration stream
    """

    address = attr.ib(validator=attr.validators.instance_of(str))
    keyfile = attr.ib(validator=attr.validators.instance_of(str))
    known_hosts = attr.ib(validator=attr.validators.instance_of(str))
    port = attr.ib(default=22, validator=attr.validators.instance_of(int))
    username = attr.ib(default="root", validator=attr.validators.instance_of(str))
    qemu_bin = attr.ib(default="qemu-system-aarch64", validator=attr.validators.instance_of(str))
    migration_address = attr.ib(default="", validator=attr.validators.instance_of(str))


@target_factory.reg_driver
@attr.s(eq=False)
class SSHHostDriver(Driver, MigrationHostProtocol):
    bindings: ClassVar[dict] = {"host": "SSHHost"}
    connect_timeout = keys.timeout(15.0)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._remote: RemoteHost | None = None

    def _path(self, path: str) -> str:
        return self.target.env.config.resolve_path(path) if self.target.env else path

    @Driver.check_active
    def remote(self) -> RemoteHost:
        if self._remote is None:
            h = self.host
            self._remote = RemoteHost(
                h.address, h.port, h.username, self._path(h.keyfile), self._path(h.known_hosts), self.connect_timeout
            )
        return self._remote

    def qemu_binary(self) -> str:
        return self.host.qemu_bin

    def migration_address(self) -> str:
        return self.host.migration_address or self.host.address

    def on_deactivate(self) -> None:
        if self._remote is not None:
            self._remote.close()
            self._remote = None


@target_factory.reg_driver
@attr.s(eq=False)
class LocalSSHHostDriver(Driver, MigrationHostProtocol):
    """A throwaway sshd on 127.0.0.1 (new host and client keys each activation).

    Args:
        qemu_bin (str): QEMU binary on this machine
        start_timeout (float): seconds for sshd to answer
    """

    bindings: ClassVar[dict] = {}
    qemu_bin = attr.ib(default="qemu-system-aarch64", validator=attr.validators.instance_of(str))
    start_timeout = keys.timeout(15.0)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.server: LocalSSHServer | None = None
        self._remote: RemoteHost | None = None

    def on_activate(self) -> None:
        self.server = LocalSSHServer(start_timeout=self.start_timeout).start()

    def on_deactivate(self) -> None:
        if self._remote is not None:
            self._remote.close()
            self._remote = None
        if self.server is not None:
            self.server.stop()
            self.server = None

    @Driver.check_active
    def remote(self) -> RemoteHost:
        if self._remote is None:
            s = self.server
            assert s is not None
            self._remote = RemoteHost(s.address, s.port, s.username, s.keyfile, s.known_hosts)
        return self._remote

    def qemu_binary(self) -> str:
        return self.qemu_bin

    def migration_address(self) -> str:
        return "127.0.0.1"
