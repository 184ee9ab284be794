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

"""A provisioner that reads replica sets from a file: ``static``.

The file (JSON, or YAML when the name does not end in ``.json``) maps each
volume alias to its replica set::

    volumes:
      volume-1234:
        generation: 1
        replicas:
          - id: r1
            nqn: nqn.2014-08.org.example:vol-1234-r1
            state: available
            portals: [{transport: tcp, address: 192.0.2.10, port: 4420}]
          - id: r2
            ...
        spares:                 # optional: ready-made replacements
          - id: r3
            nqn: ...
            portals: [...]

Reports write the replica's new state back into the file and raise the
generation. A replacement request takes the first spare into the set and
drops the faulty replica; with no spare left, the replica is marked
``replacing`` and listed under ``requests`` for a person (or a test) to
act on. The agent's volume events (degraded, healed) are appended to the
volume's ``events`` list. Every write is atomic, so an operator can edit
the file by hand with ``mv`` as well, and the agent never reads half a
file.

The parsed file is kept between calls and read again only when its inode,
modification time or size changes (an edit, or a ``mv`` over it); the
agent's own writes refresh it. Every agent pass asks for every volume, so
this saves parsing the whole file once per volume.

Caveats: there is no locking against a concurrent editor besides the
atomic replace; meant for labs, tests and small static deployments.
"""

import copy
import json
import os

from oslo_config import cfg
from oslo_log import log as logging
import yaml

from os_brick_nvme_agent import exception
from os_brick_nvme_agent import model
from os_brick_nvme_agent.provisioners import base

LOG = logging.getLogger(__name__)

CONFIG_GROUP = 'provisioner_static'
#: Volume events (Provisioner.send_event) kept per volume in the file.
EVENTS_KEPT = 50
CONFIG_OPTS = [
    cfg.StrOpt('path',
               default='/etc/os-brick-nvme-agent/replicas.yaml',
               help='File describing every volume\'s replica set (YAML, or '
                    'JSON when the name ends in .json). The agent writes '
                    'reports and replacements back into it.'),
]


class StaticProvisioner(base.Provisioner):
    """Replica sets kept in a local file.

    Configure ``[nvme_agent] provisioner = static`` and
    ``[provisioner_static] path``.
    """

    CONFIG_GROUP = CONFIG_GROUP
    CONFIG_OPTS = CONFIG_OPTS

    def __init__(self, conf):
        super().__init__(conf)
        self._cache = None      # ((path, st_ino, st_mtime_ns, st_size), doc)

    @property
    def path(self):
        return self.options.path

    def probe(self):
        self._document()

    def get_replica_set(self, volume_id):
        volume = self._document()['volumes'].get(volume_id)
        if volume is None:
            return None
        if not isinstance(volume, dict):
            raise exception.MalformedReply(
                '%s: volume %s is not a mapping' % (self.path, volume_id))
        return base.replica_set_from_dict(volume_id, volume)

    def report_replica_state(self, volume_id, replica_id, state):
        data = self._read()
        volume = self._volume(data, volume_id)
        replica = self._replica(volume, volume_id, replica_id)
        state = model.ReplicaState(state)
        if replica.get('state', 'available') == state.value:
            return
        replica['state'] = state.value
        volume['generation'] = volume['generation'] + 1
        self._write(data)
        LOG.info('Recorded replica %(rep)s of %(vol)s as %(state)s in '
                 '%(path)s', {'rep': replica_id, 'vol': volume_id,
                              'state': state.value, 'path': self.path})

    def request_replacement(self, volume_id, replica_id):
        data = self._read()
        volume = self._volume(data, volume_id)
        ids = [r.get('id') for r in volume['replicas']]
        if replica_id not in ids:
            return          # already replaced
        spares = volume.get('spares') or []
        if spares:
            spare = spares.pop(0)
            base.replica_set_from_dict(volume_id, {     # validates the spare
                'generation': 0, 'replicas': [spare]})
            volume['replicas'] = [r for r in volume['replicas']
                                  if r.get('id') != replica_id] + [spare]
            volume['spares'] = spares
            what = 'replaced it with spare %s' % spare.get('id')
        else:
            replica = self._replica(volume, volume_id, replica_id)
            if replica.get('state') == model.ReplicaState.REPLACING.value:
                return
            replica['state'] = model.ReplicaState.REPLACING.value
            requests = volume.setdefault('requests', [])
            requests.append({'replace': replica_id})
            what = 'no spare left; request recorded'
        volume['generation'] = volume['generation'] + 1
        self._write(data)
        LOG.info('Replacement of replica %(rep)s of %(vol)s: %(what)s',
                 {'rep': replica_id, 'vol': volume_id, 'what': what})

    def send_event(self, event):
        """Append the event to the volume's ``events`` list (newest kept).

        The volume's replica set and generation are left as they are.
        """
        data = self._read()
        volume = data['volumes'].get(event.get('volume'))
        if not isinstance(volume, dict):
            return False    # not one of ours
        events = volume.get('events')
        events = events if isinstance(events, list) else []
        events.append({k: event[k] for k in sorted(event)})
        volume['events'] = events[-EVENTS_KEPT:]
        self._write(data)
        return True

    # File access ----------------------------------------------------------

    def _is_json(self):
        return self.path.endswith('.json')

    def _read(self):
        """A copy of the document that the caller may change and write."""
        return copy.deepcopy(self._document())

    def _document(self):
        """The parsed file, shared: read it, never change it."""
        try:
            with open(self.path, encoding='utf-8') as f:
                key = _file_key(self.path, os.fstat(f.fileno()))
                if self._cache is not None and self._cache[0] == key:
                    return self._cache[1]
                text = f.read()
        except OSError as exc:
            raise exception.ProvisionerUnavailable(
                'cannot read %s: %s' % (self.path, exc))
        data = self._parse(text)
        self._cache = (key, data)
        return data

    def _parse(self, text):
        try:
            data = json.loads(text) if self._is_json() else \
                yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise exception.MalformedReply('%s: %s' % (self.path, exc))
        if not isinstance(data, dict) or \
                not isinstance(data.get('volumes', {}), dict):
            raise exception.MalformedReply(
                '%s: expected a mapping with a "volumes" mapping' % self.path)
        data.setdefault('volumes', {})
        return data

    def _write(self, data):
        if self._is_json():
            text = json.dumps(data, indent=2, sort_keys=True)
        else:
            text = yaml.safe_dump(data, default_flow_style=False)
        self._cache = None
        try:
            base.write_file_atomically(self.path, text,
                                       mode=_mode_of(self.path))
            key = _file_key(self.path, os.stat(self.path))
        except OSError as exc:
            raise exception.ProvisionerUnavailable(
                'cannot write %s: %s' % (self.path, exc))
        # What was just written, as a reader would parse it (JSON/YAML
        # turn tuples into lists and so on).
        self._cache = (key, self._parse(text))

    def _volume(self, data, volume_id):
        volume = data['volumes'].get(volume_id)
        if volume is None:
            raise exception.UnknownVolume(volume_id)
        base.replica_set_from_dict(volume_id, volume)   # validates
        return volume

    @staticmethod
    def _replica(volume, volume_id, replica_id):
        for replica in volume['replicas']:
            if replica.get('id') == replica_id:
                return replica
        raise exception.UnknownReplica('%s/%s' % (volume_id, replica_id))


def _file_key(path, st):
    """What identifies one version of the file."""
    return (path, st.st_ino, st.st_mtime_ns, st.st_size)


def _mode_of(path):
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        return 0o600
