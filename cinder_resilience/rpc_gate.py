#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.

"""Hold a volume service's RPC servers until its driver is initialized.

cinder's ``Service.start()`` calls ``manager.init_host()``, then builds its
host, backend and cluster RPC servers with ``cinder.rpc.get_server`` and
starts them, then calls ``manager.init_host_with_rpc()``. A member whose
driver is down would consume cluster work it can only fail. When
``init_host`` ends without a driver, :func:`install` installs the
``HELD_RPC_SERVERS`` patch of :mod:`cinder_resilience.host_patches` (it
replaces ``cinder.rpc.get_server``) until ``init_host_with_rpc`` (or the
service stop): a server whose endpoints include that manager is built as
usual but returned as a :class:`HeldServer`, whose ``start()`` waits for
:meth:`Gate.open`. Every other server passes through unchanged.

Upstream names relied on: ``cinder.rpc.get_server`` (pinned in
host_patches), and the ``start``/``stop``/``wait``/``listener`` of the
oslo.messaging server it returns.
"""

import threading

from oslo_log import log as logging

from cinder_resilience import host_patches

LOG = logging.getLogger(__name__)


class HeldServer:
    """An oslo.messaging RPC server whose start waits for its gate."""

    def __init__(self, server, gate):
        self.server = server
        self.gate = gate
        self.started = False
        self.wanted = False

    def start(self):
        """Start now if the gate is open, else when it opens."""
        with self.gate.lock:
            self.wanted = True
            if self.gate.is_open:
                self._start()

    def _start(self):
        if not self.started:
            self.server.start()
            self.started = True

    def stop(self):
        with self.gate.lock:
            self.wanted = False
            if self.started:
                self.server.stop()

    def wait(self):
        if self.started:
            self.server.wait()

    def __getattr__(self, name):
        return getattr(self.server, name)


class Gate:
    """The RPC servers of one manager, held until :meth:`open`."""

    def __init__(self, manager):
        self.manager = manager
        self.lock = threading.Lock()
        self.is_open = False
        self.servers = []

    def hold(self, server):
        held = HeldServer(server, self)
        with self.lock:
            self.servers.append(held)
        return held

    def open(self):
        """Start the servers Service.start() asked to start.

        :returns: how many servers were started
        """
        with self.lock:
            self.is_open = True
            waiting = [s for s in self.servers if s.wanted and not s.started]
            for held in waiting:
                held._start()
        return len(waiting)

    def close(self):
        """Forget the servers (the service is stopping)."""
        with self.lock:
            self.is_open = False
            self.servers = []


#: Gates of the managers whose servers are held, by ``id(manager)``.
_GATES = {}


def _hold(target, endpoints, server):
    """``host_patches.HELD_RPC_SERVERS``' hook: hold it or hand it back."""
    for gate in list(_GATES.values()):
        if any(e is gate.manager for e in endpoints):
            LOG.info('RPC server %s is held until the volume driver '
                     'initializes.', target)
            return gate.hold(server)
    return server


def install(manager):
    """Hold the RPC servers built next for ``manager``; returns its Gate."""
    gate = _GATES.get(id(manager))
    if gate is None:
        gate = _GATES[id(manager)] = Gate(manager)
    if not host_patches.HELD_RPC_SERVERS.installed:
        host_patches.HELD_RPC_SERVERS.install(_hold)
    return gate


def uninstall(manager):
    """Stop holding servers for ``manager``; the last one restores cinder's.

    Servers already held stay held until their gate opens.
    """
    _GATES.pop(id(manager), None)
    if not _GATES:
        host_patches.HELD_RPC_SERVERS.uninstall()
