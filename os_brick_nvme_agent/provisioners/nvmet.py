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

"""A provisioner backed by the Linux kernel NVMe target: ``nvmet``.

Each replica is a file-backed namespace in its own nvmet subsystem, linked
to one TCP (or RDMA) port, all through configfs
(``/sys/kernel/config/nvmet``)::

    subsystems/<prefix>:<volume>-<replica>/
        attr_allow_any_host                 1 unless allowed_hosts is set
        allowed_hosts/<hostnqn> -> hosts/<hostnqn>
        namespaces/1/{device_path, device_uuid, buffered_io, enable}
    ports/<port_id>/{addr_trtype, addr_adrfam, addr_traddr, addr_trsvcid}
    ports/<port_id>/subsystems/<nqn> -> subsystems/<nqn>

The replica sets live in a small JSON file (``state_file``) that is written
before configfs is touched; every call first finishes what the file lists
as pending (exports not yet done, retired replicas not yet torn down), so
a crash between the two converges on the next call. A finished export is
not redone, so a replica unexported by hand stays unexported.
:meth:`NvmetProvisioner.create_volume` and
:meth:`~NvmetProvisioner.delete_volume` provision volumes for labs and
tests; the agent itself only uses the four base-class calls. A replacement
creates a new, empty replica (md resyncs it) and retires the faulty one:
unexported, its backing file deleted.

Caveats: needs root and the ``nvmet`` plus ``nvmet-tcp`` (or
``nvmet-rdma``) modules; ``buffered_io`` is set where the kernel has it
(tmpfs backing files need it, having no O_DIRECT).
"""

import ipaddress
import json
import os
import uuid

from oslo_config import cfg
from oslo_log import log as logging

from os_brick_nvme_agent import exception
from os_brick_nvme_agent import model
from os_brick_nvme_agent.provisioners import base

LOG = logging.getLogger(__name__)

CONFIG_GROUP = 'provisioner_nvmet'
CONFIG_OPTS = [
    cfg.StrOpt('configfs_root', default='/sys/kernel/config/nvmet',
               help='Where the nvmet configfs tree is mounted.'),
    cfg.StrOpt('state_file',
               default='/var/lib/os-brick-nvme-agent/nvmet-replicas.json',
               help='JSON file holding the replica sets this provisioner '
                    'manages.'),
    cfg.StrOpt('backing_dir', default='/var/lib/os-brick-nvme-agent/nvmet',
               help='Directory for the replicas\' backing files.'),
    cfg.StrOpt('nqn_prefix',
               default='nqn.2014-08.org.openstack:os-brick-nvme-agent',
               help='Subsystem NQNs are "<prefix>:<volume>-<replica>".'),
    cfg.IntOpt('port_id', default=1, min=1, max=65535,
               help='nvmet port number (configfs ports/<id>) to export on.'),
    cfg.StrOpt('transport', default='tcp', choices=['tcp', 'rdma'],
               help='Transport of the nvmet port.'),
    cfg.StrOpt('address', default='127.0.0.1',
               help='IP address the nvmet port listens on.'),
    cfg.PortOpt('port', default=4420,
                help='TCP/RDMA service port of the nvmet port.'),
    cfg.ListOpt('allowed_hosts', default=[],
                help='Host NQNs allowed to connect; empty allows any host.'),
    cfg.IntOpt('default_replicas', default=2, min=1, max=8,
               help='Replicas per volume for create_volume().'),
]

_NSID = '1'


class ConfigFS(object):
    """The few filesystem operations nvmet configfs needs.

    On real configfs the kernel creates attribute files on ``mkdir`` and
    drops them on ``rmdir``; tests substitute a subclass that imitates it
    in a plain directory.
    """

    def __init__(self, root):
        self.root = root

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def exists(self, *parts):
        return os.path.lexists(self.path(*parts))

    def mkdir(self, *parts):
        if not self.exists(*parts):
            os.mkdir(self.path(*parts))

    def rmdir(self, *parts):
        if self.exists(*parts):
            os.rmdir(self.path(*parts))

    def write(self, value, *parts):
        with open(self.path(*parts), 'w') as f:
            f.write('%s\n' % value)

    def read(self, *parts):
        with open(self.path(*parts)) as f:
            return f.read().strip()

    def link(self, target_parts, *parts):
        if not self.exists(*parts):
            os.symlink(self.path(*target_parts), self.path(*parts))

    def unlink(self, *parts):
        if self.exists(*parts):
            os.unlink(self.path(*parts))

    def listdir(self, *parts):
        try:
            return sorted(os.listdir(self.path(*parts)))
        except FileNotFoundError:
            return []


class NvmetProvisioner(base.Provisioner):
    """Replicas as file-backed namespaces of the local kernel NVMe target.

    Configure ``[nvme_agent] provisioner = nvmet`` and the
    ``[provisioner_nvmet]`` options.
    """

    CONFIG_GROUP = CONFIG_GROUP
    CONFIG_OPTS = CONFIG_OPTS

    def __init__(self, conf, configfs=None):
        super().__init__(conf)
        self._configfs = configfs

    @property
    def configfs(self):
        if self._configfs is None:
            self._configfs = ConfigFS(self.options.configfs_root)
        return self._configfs

    # The agent's interface --------------------------------------------------

    def probe(self):
        self._converge(self._load())

    def get_replica_set(self, volume_id):
        data = self._load()
        self._converge(data)
        volume = data['volumes'].get(volume_id)
        if volume is None:
            return None
        return base.replica_set_from_dict(volume_id, {
            'generation': volume['generation'],
            'replicas': [self._public(r) for r in volume['replicas']]})

    def report_replica_state(self, volume_id, replica_id, state):
        data = self._load()
        volume = self._volume(data, volume_id)
        replica = self._replica(volume, volume_id, replica_id)
        state = model.ReplicaState(state)
        if replica['state'] != state.value:
            replica['state'] = state.value
            volume['generation'] += 1
            self._save(data)

    def request_replacement(self, volume_id, replica_id):
        data = self._load()
        volume = self._volume(data, volume_id)
        old = [r for r in volume['replicas'] if r['id'] == replica_id]
        if old:
            new = self._new_replica(volume_id)
            volume['replicas'] = [r for r in volume['replicas']
                                  if r['id'] != replica_id] + [new]
            volume.setdefault('retired', []).append(old[0])
            volume['generation'] += 1
            self._save(data)        # intent first, configfs second
            LOG.info('nvmet: replica %(old)s of %(vol)s replaced by %(new)s',
                     {'old': replica_id, 'vol': volume_id, 'new': new['id']})
        self._converge(data)

    # Provisioning for labs and tests --------------------------------------

    def create_volume(self, volume_id, size_bytes, replicas=None):
        """Create a volume with its replicas exported; idempotent.

        :returns: the new volume's ReplicaSet.
        """
        data = self._load()
        if volume_id not in data['volumes']:
            count = replicas or self.options.default_replicas
            data['volumes'][volume_id] = {
                'generation': 1, 'size_bytes': int(size_bytes),
                'replicas': [self._new_replica(volume_id)
                             for _ in range(count)],
                'retired': []}
            self._save(data)
        self._converge(data)
        return self.get_replica_set(volume_id)

    def delete_volume(self, volume_id):
        """Unexport and delete every replica of a volume; idempotent."""
        data = self._load()
        volume = data['volumes'].get(volume_id)
        if volume is None:
            return
        volume['retired'] = volume.get('retired', []) + volume['replicas']
        volume['replicas'] = []
        volume['deleted'] = True
        self._save(data)
        self._converge(data)

    def backing_file(self, volume_id, replica_id):
        return os.path.join(self.options.backing_dir,
                            '%s-%s.img' % (volume_id, replica_id))

    # Replica records ------------------------------------------------------

    def _new_replica(self, volume_id):
        replica_id = 'r' + uuid.uuid4().hex[:8]
        return {'id': replica_id,
                'nqn': '%s:%s-%s' % (self.options.nqn_prefix, volume_id,
                                     replica_id),
                'ns_uuid': str(uuid.uuid4()),
                'state': model.ReplicaState.AVAILABLE.value}

    def _public(self, replica):
        portal = {'transport': self.options.transport,
                  'address': self.options.address, 'port': self.options.port}
        return {'id': replica['id'], 'nqn': replica['nqn'],
                'state': replica['state'], 'ns_uuid': replica['ns_uuid'],
                'portals': [portal]}

    def _volume(self, data, volume_id):
        volume = data['volumes'].get(volume_id)
        if volume is None or volume.get('deleted'):
            raise exception.UnknownVolume(volume_id)
        return volume

    @staticmethod
    def _replica(volume, volume_id, replica_id):
        for replica in volume['replicas']:
            if replica['id'] == replica_id:
                return replica
        raise exception.UnknownReplica('%s/%s' % (volume_id, replica_id))

    def _load(self):
        if not os.path.isdir(self.configfs.path('subsystems')):
            raise exception.ProvisionerUnavailable(
                'nvmet configfs not found at %s (modprobe nvmet, mount '
                'configfs)' % self.configfs.root)
        path = self.options.state_file
        try:
            with open(path, encoding='utf-8') as f:
                data = json.load(f)
        except FileNotFoundError:
            return {'volumes': {}}
        except (OSError, ValueError) as exc:
            raise exception.MalformedReply('%s: %s' % (path, exc))
        if not isinstance(data, dict) or \
                not isinstance(data.get('volumes'), dict):
            raise exception.MalformedReply('%s: no "volumes" mapping' % path)
        for volume_id, volume in data['volumes'].items():
            try:
                _check_volume(volume)
            except (KeyError, TypeError, ValueError) as exc:
                raise exception.MalformedReply('%s: volume %s: %s'
                                               % (path, volume_id, exc))
        return data

    def _save(self, data):
        path = self.options.state_file
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        base.write_file_atomically(path, json.dumps(data, indent=1,
                                                    sort_keys=True))

    # Making configfs match the records -------------------------------------

    def _converge(self, data):
        """Finish the exports and teardowns the records say are pending.

        An export that completed is not redone: if someone unexports a
        replica by hand (a fault injected on purpose, say), the plugin
        does not fight them; the agent sees the fault and heals it.
        """
        changed = False
        try:
            for volume_id, volume in sorted(data['volumes'].items()):
                for replica in volume['replicas']:
                    if not replica.get('exported'):
                        self._ensure_port()
                        self._export(volume_id, volume, replica)
                        replica['exported'] = changed = True
                for replica in volume.get('retired', []):
                    self._unexport(volume_id, replica)
        except OSError as exc:
            if changed:
                self._save(data)
            raise exception.ProvisionerUnavailable(
                'nvmet configfs %s: %s' % (self.configfs.root, exc))
        if self._forget_retired(data) or changed:
            self._save(data)

    def _forget_retired(self, data):
        changed = False
        for volume_id, volume in list(data['volumes'].items()):
            if volume.get('retired'):
                volume['retired'] = []
                changed = True
            if volume.get('deleted'):
                del data['volumes'][volume_id]
                changed = True
        return changed

    def _ensure_port(self):
        fs, port = self.configfs, str(self.options.port_id)
        fs.mkdir('ports', port)
        if fs.listdir('ports', port, 'subsystems'):
            return          # in use: the kernel refuses address changes
        address = self.options.address
        family = 'ipv6' if ipaddress.ip_address(address).version == 6 \
            else 'ipv4'
        for name, value in (('addr_trtype', self.options.transport),
                            ('addr_adrfam', family),
                            ('addr_traddr', address),
                            ('addr_trsvcid', self.options.port)):
            fs.write(value, 'ports', port, name)

    def _export(self, volume_id, volume, replica):
        fs, nqn = self.configfs, replica['nqn']
        backing = self.backing_file(volume_id, replica['id'])
        if not os.path.exists(backing):
            os.makedirs(os.path.dirname(backing), exist_ok=True)
            with open(backing, 'wb') as f:
                f.truncate(int(volume['size_bytes']))
        fs.mkdir('subsystems', nqn)
        self._set_hosts(nqn)
        ns = ('subsystems', nqn, 'namespaces', _NSID)
        fs.mkdir(*ns)
        if fs.read(*ns, 'enable') != '1':
            fs.write(backing, *ns, 'device_path')
            fs.write(replica['ns_uuid'], *ns, 'device_uuid')
            if fs.exists(*ns, 'buffered_io'):
                fs.write(1, *ns, 'buffered_io')
            fs.write(1, *ns, 'enable')
        fs.link(('subsystems', nqn),
                'ports', str(self.options.port_id), 'subsystems', nqn)

    def _set_hosts(self, nqn):
        fs, hosts = self.configfs, self.options.allowed_hosts
        wanted = '0' if hosts else '1'
        if fs.read('subsystems', nqn, 'attr_allow_any_host') != wanted:
            fs.write(wanted, 'subsystems', nqn, 'attr_allow_any_host')
        for host in hosts:
            fs.mkdir('hosts', host)
            fs.link(('hosts', host), 'subsystems', nqn, 'allowed_hosts', host)

    def _unexport(self, volume_id, replica):
        fs, nqn = self.configfs, replica['nqn']
        for port in fs.listdir('ports'):
            fs.unlink('ports', port, 'subsystems', nqn)
        if fs.exists('subsystems', nqn):
            for host in fs.listdir('subsystems', nqn, 'allowed_hosts'):
                fs.unlink('subsystems', nqn, 'allowed_hosts', host)
            for nsid in fs.listdir('subsystems', nqn, 'namespaces'):
                fs.write(0, 'subsystems', nqn, 'namespaces', nsid, 'enable')
                fs.rmdir('subsystems', nqn, 'namespaces', nsid)
            fs.rmdir('subsystems', nqn)
        try:
            os.unlink(self.backing_file(volume_id, replica['id']))
        except FileNotFoundError:
            pass
        LOG.info('nvmet: unexported %s', nqn)


def _check_volume(volume):
    """Raise KeyError/TypeError/ValueError unless ``volume`` is sound."""
    for key in ('generation', 'size_bytes'):
        if isinstance(volume[key], bool) or not isinstance(volume[key], int):
            raise TypeError('%s is not an integer' % key)
    for replica in volume['replicas'] + volume.get('retired', []):
        for key in ('id', 'nqn', 'ns_uuid', 'state'):
            if not isinstance(replica[key], str):
                raise TypeError('replica %s is not a string' % key)
