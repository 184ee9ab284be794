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

"""The agent's durable memory: what it saw and what it decided.

The engine is level-triggered: it decides from what it observes. A few
facts cannot be observed again after a restart, though: since when a
replica has been out of its array, when it was reported, whether its
replacement was asked for, the highest replica-set generation seen, and
the step the agent was about to take. :class:`AgentState` holds them as
immutable values and :class:`StateStore` keeps them in one JSON file that
is replaced atomically, so a crash at any instant leaves either the old or
the new state on disk, never a mix.

Times are wall-clock seconds (``time.time()``) so that they keep their
meaning across a reboot.
"""

import dataclasses
import json
import os
from typing import Optional

from oslo_log import log as logging

from os_brick_nvme_agent import fileutils
from os_brick_nvme_agent import model

LOG = logging.getLogger(__name__)

FORMAT_VERSION = 1

__all__ = ['ReplicaRecord', 'VolumeRecord', 'AgentState', 'StateStore',
           'CorruptState', 'action_to_dict', 'action_from_dict',
           'dumps', 'loads']


class CorruptState(ValueError):
    """The serialised state cannot be understood."""


@dataclasses.dataclass(frozen=True)
class ReplicaRecord:
    """What the agent remembers about one replica of a volume."""

    replica_id: str
    nqn: str
    first_seen: float               # first time the engine saw it in the set
    was_member: bool = False        # seen in sync in the array at least once
    faulty_since: Optional[float] = None
    reported_at: Optional[float] = None     # last report sent
    reported_state: Optional[str] = None    # what it said ('faulty', ...)
    reported_gen: int = 0           # replica-set generation when it said it
    requested_at: Optional[float] = None    # last replacement request
    connect_at: Optional[float] = None      # last connect attempt
    rejoins: int = 0                # re-adds since it was last in sync
    # Joined the set after the volume was first seen (a replacement).
    newcomer: bool = False


@dataclasses.dataclass(frozen=True)
class VolumeRecord:
    """What the agent remembers about one volume (one MD array)."""

    volume_id: str
    generation: int = 0             # highest replica-set generation seen
    replicas: tuple = ()            # tuple[ReplicaRecord, ...]
    retiring: tuple = ()            # NQNs of retired legs to disconnect
    pending: tuple = ()             # model.Action objects of the last pass
    grace_period: Optional[float] = None    # the provisioner's, if any

    def replica(self, replica_id):
        for record in self.replicas:
            if record.replica_id == replica_id:
                return record
        return None


@dataclasses.dataclass(frozen=True)
class AgentState:
    """Everything the agent remembers, keyed by volume id."""

    volumes: tuple = ()             # tuple[VolumeRecord, ...], sorted by id

    def volume(self, volume_id):
        for record in self.volumes:
            if record.volume_id == volume_id:
                return record
        return None

    def with_volume(self, record):
        """Return a copy where ``record`` replaces its volume's record."""
        others = [v for v in self.volumes if v.volume_id != record.volume_id]
        others.append(record)
        return AgentState(tuple(sorted(others, key=lambda v: v.volume_id)))

    def without_volume(self, volume_id):
        return AgentState(tuple(v for v in self.volumes
                                if v.volume_id != volume_id))

    def pending_actions(self):
        """All actions the last reconcile pass decided, in order."""
        return [action for volume in self.volumes
                for action in volume.pending]


# Serialisation of actions (the "pending step") ---------------------------

_ACTION_TYPES = {cls.__name__: cls for cls in (
    model.ReportReplicaState, model.RequestReplacement, model.ConnectReplica,
    model.AddLeg, model.ReAddLeg, model.FailLeg, model.RemoveLeg,
    model.DisconnectController)}


def _replica_to_dict(replica):
    return {'id': replica.id, 'nqn': replica.nqn,
            'state': replica.state.value, 'ns_uuid': replica.ns_uuid,
            'portals': [{'transport': p.transport, 'address': p.address,
                         'port': p.port} for p in replica.portals]}


def _replica_from_dict(data):
    portals = tuple(model.Portal(p['transport'], p['address'], int(p['port']))
                    for p in data['portals'])
    return model.Replica(id=data['id'], nqn=data['nqn'], portals=portals,
                         state=model.ReplicaState(data['state']),
                         ns_uuid=data.get('ns_uuid'))


def action_to_dict(action):
    """Return a JSON-friendly dict describing ``action``."""
    data = {'type': type(action).__name__}
    for field in dataclasses.fields(action):
        value = getattr(action, field.name)
        if isinstance(value, model.Replica):
            value = _replica_to_dict(value)
        elif isinstance(value, model.ReplicaState):
            value = value.value
        data[field.name] = value
    return data


def action_from_dict(data):
    """Rebuild an action from :func:`action_to_dict` output."""
    try:
        cls = _ACTION_TYPES[data['type']]
        kwargs = {k: v for k, v in data.items() if k != 'type'}
        if 'replica' in kwargs:
            kwargs['replica'] = _replica_from_dict(kwargs['replica'])
        if 'state' in kwargs:
            kwargs['state'] = model.ReplicaState(kwargs['state'])
        return cls(**kwargs)
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptState('bad action %r: %s' % (data, exc))


# Serialisation of the whole state -----------------------------------------

_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(ReplicaRecord))


def _volume_to_dict(volume):
    return {'volume_id': volume.volume_id,
            'generation': volume.generation,
            'replicas': [{name: getattr(r, name) for name in _RECORD_FIELDS}
                         for r in volume.replicas],
            'retiring': list(volume.retiring),
            'pending': [action_to_dict(a) for a in volume.pending],
            'grace_period': volume.grace_period}


def _volume_from_dict(data):
    replicas = tuple(ReplicaRecord(**item) for item in data['replicas'])
    pending = tuple(action_from_dict(item)
                    for item in data.get('pending', ()))
    grace = data.get('grace_period')
    return VolumeRecord(volume_id=str(data['volume_id']),
                        generation=int(data['generation']),
                        replicas=replicas,
                        retiring=tuple(str(n) for n in data['retiring']),
                        pending=pending,
                        grace_period=None if grace is None else float(grace))


def dumps(state):
    """Serialise ``state`` to a JSON string."""
    return json.dumps({'version': FORMAT_VERSION,
                       'volumes': [_volume_to_dict(v) for v in state.volumes]},
                      sort_keys=True, separators=(',', ':'))


def loads(text):
    """Parse :func:`dumps` output.

    :raises CorruptState: the text is not a state this version understands.
    """
    try:
        data = json.loads(text)
        if data.get('version') != FORMAT_VERSION:
            raise CorruptState('unknown state version %r'
                               % data.get('version'))
        volumes = [_volume_from_dict(v) for v in data['volumes']]
    except CorruptState:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise CorruptState(str(exc))
    return AgentState(tuple(sorted(volumes, key=lambda v: v.volume_id)))


class StateStore(object):
    """Keeps an :class:`AgentState` in one file, replaced atomically.

    :param path: the state file; its directory is created if missing.
    """

    def __init__(self, path):
        self.path = path

    def load(self):
        """Return the saved state, or an empty one.

        A missing file gives an empty state. A file that cannot be parsed
        is logged, renamed to ``<path>.corrupt-<n>`` for inspection and
        replaced by an empty state: a bad file never stops the agent.
        """
        try:
            with open(self.path, 'rb') as f:
                raw = f.read()
        except FileNotFoundError:
            return AgentState()
        try:
            return loads(raw.decode('utf-8'))
        except (CorruptState, UnicodeDecodeError) as exc:
            aside = self._move_aside()
            LOG.error('State file %(path)s is corrupt (%(err)s); moved it '
                      'to %(aside)s and starting from an empty state.',
                      {'path': self.path, 'err': exc, 'aside': aside})
            return AgentState()

    def save(self, state):
        """Write ``state``: temporary file, fsync, rename, fsync the dir."""
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fileutils.write_file_atomically(self.path, dumps(state))
        fileutils.fsync_dir(directory)

    def _move_aside(self):
        n = 0
        while os.path.exists('%s.corrupt-%d' % (self.path, n)):
            n += 1
        aside = '%s.corrupt-%d' % (self.path, n)
        os.replace(self.path, aside)
        return aside
