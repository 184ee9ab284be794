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

"""The interface every replica provisioner plugin implements.

A provisioner is the service that owns a volume's replicas: it knows which
NVMe-oF subsystems hold them, records their state and builds replacements.
The agent only ever talks to it through this class. Plugins are found
under the ``os_brick_nvme_agent.provisioners`` entry-point namespace (see
:func:`os_brick_nvme_agent.provisioners.load`).

A plugin module declares its options as ``CONFIG_OPTS`` in the group
``CONFIG_GROUP`` and registers them in ``__init__`` (``register_opts`` below
does it), so ``oslo-config-generator`` lists them and no import has side
effects.

Errors are translated at the plugin's edge: an outage (connection refused,
timeout, 5xx, unreadable file) raises
:class:`~os_brick_nvme_agent.exception.ProvisionerUnavailable`, an answer
that cannot be understood raises
:class:`~os_brick_nvme_agent.exception.MalformedReply`. Nothing else should
escape.
"""

import abc

from os_brick_nvme_agent import exception
from os_brick_nvme_agent import fileutils
from os_brick_nvme_agent import model

__all__ = ['Provisioner', 'replica_set_from_dict', 'replica_to_dict',
           'parse_replica_state', 'write_file_atomically']


class Provisioner(abc.ABC):
    """A source of replica sets and a sink for replica reports.

    :param conf: an ``oslo_config.cfg.ConfigOpts``; the plugin registers its
        own options group on it.
    """

    #: options group of the plugin; subclasses override both.
    CONFIG_GROUP = None
    CONFIG_OPTS = []

    def __init__(self, conf):
        self.conf = conf
        if self.CONFIG_GROUP:
            conf.register_opts(self.CONFIG_OPTS, group=self.CONFIG_GROUP)

    @property
    def options(self):
        """The plugin's options group on ``conf``."""
        return getattr(self.conf, self.CONFIG_GROUP)

    @abc.abstractmethod
    def probe(self):
        """Check that the provisioner can be reached and used.

        :raises ProvisionerUnavailable: it cannot be reached now.
        :raises MalformedReply: it answered something unusable.
        """

    def send_event(self, event):
        """Tell the provisioner what happened to one of its volumes.

        Called with the journal's volume events (``fault_seen``: the volume
        is degraded; ``resync_done``: a replica is back in sync;
        ``replica_connected``: the host connected a replica's target;
        ``controller_disconnected``: it disconnected a retired one).
        Plugins whose backend keeps a host event log override it; the
        default does nothing.

        :param event: the journal entry (``event``, ``volume``, ``time``;
            ``replica`` and/or ``nqn``).
        :returns: True if the provisioner took the event.
        :raises NVMeAgentException: it could not be delivered.
        """
        return False

    @abc.abstractmethod
    def get_replica_set(self, volume_id):
        """Return the replicas of a volume.

        :param volume_id: the volume's alias (the MD array's name).
        :returns: a :class:`~os_brick_nvme_agent.model.ReplicaSet`, or None
            when the provisioner does not know the volume.
        :raises ProvisionerUnavailable: it cannot be reached now.
        :raises MalformedReply: its answer cannot be understood.
        """

    @abc.abstractmethod
    def report_replica_state(self, volume_id, replica_id, state):
        """Record what the host sees of a replica.

        Idempotent: reporting the state a replica already has is harmless.

        :param volume_id: the volume's alias.
        :param replica_id: a replica id from :meth:`get_replica_set`.
        :param state: a :class:`~os_brick_nvme_agent.model.ReplicaState`.
        :raises ProvisionerUnavailable: it cannot be reached now.
        :raises UnknownVolume, UnknownReplica: no such volume or replica.
        """

    @abc.abstractmethod
    def request_replacement(self, volume_id, replica_id):
        """Ask for a new replica in place of a faulty one.

        Idempotent: once the replica has left the set, asking again does
        nothing. The new replica shows up in a later
        :meth:`get_replica_set` with a higher generation.

        :param volume_id: the volume's alias.
        :param replica_id: the replica to replace.
        :raises ProvisionerUnavailable: it cannot be reached now.
        :raises UnknownVolume: no such volume.
        """


# Helpers for plugins that describe replica sets as plain data -----------

def replica_set_from_dict(volume_id, data):
    """Build a ReplicaSet from ``{'generation': n, 'replicas': [...]}``.

    Each replica is ``{'id', 'nqn', 'portals': [{'transport', 'address',
    'port'}], 'state' (optional, default available), 'ns_uuid'
    (optional)}``. A state name the agent does not know becomes
    ``UNKNOWN``. An optional ``grace_period`` (seconds, > 0) is the
    volume's own.

    :raises MalformedReply: the data does not have that shape.
    """
    try:
        generation = data['generation']
        if isinstance(generation, bool) or not isinstance(generation, int):
            raise TypeError('generation must be an integer')
        replicas = tuple(_replica_from_dict(r) for r in data['replicas'])
        grace = data.get('grace_period')
        if grace is not None and (isinstance(grace, bool) or
                                  not float(grace) > 0):
            raise ValueError('grace_period must be a number of seconds > 0')
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise exception.MalformedReply(
            'volume %s: bad replica set: %s' % (volume_id, exc))
    return model.ReplicaSet(volume_id, generation, replicas,
                            grace_period=None if grace is None
                            else float(grace))


def replica_to_dict(replica):
    """The inverse of the replica part of :func:`replica_set_from_dict`."""
    data = {'id': replica.id, 'nqn': replica.nqn,
            'state': replica.state.value,
            'portals': [{'transport': p.transport, 'address': p.address,
                         'port': p.port} for p in replica.portals]}
    if replica.ns_uuid:
        data['ns_uuid'] = replica.ns_uuid
    return data


def parse_replica_state(value):
    """Map a state name to ReplicaState; unknown names give UNKNOWN."""
    try:
        return model.ReplicaState(str(value).lower())
    except ValueError:
        return model.ReplicaState.UNKNOWN


def _replica_from_dict(data):
    portals = tuple(_portal_from_dict(p) for p in data['portals'])
    if not portals:
        raise ValueError('replica %s has no portal' % data.get('id'))
    ns_uuid = data.get('ns_uuid')
    return model.Replica(id=_text(data['id']), nqn=_text(data['nqn']),
                         portals=portals,
                         state=parse_replica_state(
                             data.get('state', 'available')),
                         ns_uuid=_text(ns_uuid) if ns_uuid else None)


def _portal_from_dict(data):
    port = data['port']
    if isinstance(port, bool) or not 0 < int(port) < 65536:
        raise ValueError('bad port %r' % (port,))
    return model.Portal(transport=_text(data['transport']).lower(),
                        address=_text(data['address']), port=int(port))


def _text(value):
    if not isinstance(value, str) or not value:
        raise TypeError('expected a non-empty string, got %r' % (value,))
    return value


#: Kept here for plugins: the file-backed provisioners write through it.
write_file_atomically = fileutils.write_file_atomically
