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

"""A simulated host: md arrays and NVMe-oF controllers in a directory tree.

:class:`SimHost` keeps the state of a small host (fabrics targets,
controllers, MD RAID1 arrays) in ``<root>/simhost.json`` and renders it as
the files the agent reads: ``proc/mdstat``, ``sys/block/md*/md/...``,
``sys/class/nvme-fabrics/ctl/...``, ``sys/block/nvme*``, ``dev/md/<alias>``.
It also writes fake ``mdadm`` and ``nvme`` executables into ``<root>/bin``
that change that state the way the real commands and the kernel would
(``--fail``/``--remove``/``--add``/``--re-add``/``--detail --export``,
``connect``/``disconnect``), so the agent can run unchanged against it.

A resync takes ``resync_seconds`` of wall time and completes when the tree
is next rendered (every fake command and :meth:`SimHost.render` render).
"""

import contextlib
import fcntl
import json
import os
import sys
import time

from os_brick_nvme_agent.tests.functional import simhost_tree

STATE = 'simhost.json'
LOCK = 'simhost.lock'
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))

_SCRIPT = '''#!{python}
import sys
sys.path.insert(0, {repo!r})
from os_brick_nvme_agent.tests.functional import simhost
sys.exit(simhost.{func}({root!r}, sys.argv[1:]))
'''


class SimHost(object):
    """Create or open a simulated host under ``root``."""

    def __init__(self, root, resync_seconds=0.5):
        self.root = os.path.abspath(root)
        self.resync_seconds = resync_seconds
        if not os.path.exists(self._path(STATE)):
            os.makedirs(self._path('bin'), exist_ok=True)
            self._save({'targets': {}, 'controllers': {}, 'arrays': {},
                        'next_ctrl': 1, 'next_md': 127, 'log': [],
                        'resync_seconds': resync_seconds})
            for name, func in (('mdadm', 'mdadm_main'),
                               ('nvme', 'nvme_main')):
                self._write_script(name, func)
            self.render()

    # Paths and persistence ------------------------------------------------

    def _path(self, *parts):
        return os.path.join(self.root, *parts)

    @property
    def mdadm(self):
        return self._path('bin', 'mdadm')

    @property
    def nvme(self):
        return self._path('bin', 'nvme')

    def _write_script(self, name, func):
        path = self._path('bin', name)
        with open(path, 'w') as handle:
            handle.write(_SCRIPT.format(python=sys.executable, repo=REPO_ROOT,
                                        func=func, root=self.root))
        os.chmod(path, 0o755)

    def _load(self):
        with open(self._path(STATE)) as handle:
            return json.load(handle)

    def _save(self, state):
        tmp = self._path(STATE + '.tmp')
        with open(tmp, 'w') as handle:
            json.dump(state, handle, indent=1, sort_keys=True)
        os.replace(tmp, self._path(STATE))

    @contextlib.contextmanager
    def _locked(self):
        with open(self._path(LOCK), 'a') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._load()
            yield state
            _settle(state)
            self._save(state)
            simhost_tree.render(self.root, state)

    def state(self):
        return self._load()

    def render(self):
        """Complete due resyncs and rewrite the tree."""
        with self._locked():
            pass

    # Building a host ------------------------------------------------------

    def add_target(self, nqn, address='192.0.2.10', port=4420,
                   transport='tcp', ns_uuid=None):
        with self._locked() as state:
            state['targets'][nqn] = {
                'address': address, 'port': int(port),
                'transport': transport, 'up': True,
                'ns_uuid': ns_uuid or _uuid_for(nqn)}

    def connect(self, nqn):
        """Connect a target as os-brick would; returns the device name."""
        with self._locked() as state:
            target = state['targets'][nqn]
            code, out = _nvme_connect(state, nqn, target['address'],
                                      target['port'])
            if code:
                raise RuntimeError(out)
            return _device_of(state, nqn)

    def create_array(self, alias, devices, missing=()):
        """mdadm -C /dev/md/<alias> -N <alias> --level 1 over ``devices``.

        ``missing`` lists the NQNs of members that were part of the array
        but are absent now: os-brick assembled it degraded (LP 1938870),
        their slots are empty and they may be re-added.
        """
        with self._locked() as state:
            name = 'md%d' % state['next_md']
            state['next_md'] -= 1
            members = {dev: {'slot': slot, 'flags': ['in_sync', 'failfast']}
                       for slot, dev in enumerate(devices)}
            state['arrays'][name] = {
                'alias': alias, 'raid_disks': len(devices) + len(missing),
                'members': members, 'resync': {},
                'former': ([_nqn_of(state, dev) for dev in devices]
                           + list(missing))}
            return name

    # Faults -----------------------------------------------------------------

    def kill_target(self, nqn):
        """The target stops answering; md fails the legs on it."""
        with self._locked() as state:
            state['targets'][nqn]['up'] = False
            for ctrl in state['controllers'].values():
                if ctrl['nqn'] == nqn:
                    ctrl['state'] = 'connecting'
                    _md_error(state, ctrl['device'])

    def drop_controllers(self, nqn):
        """ctrl-loss-tmo expired: the kernel deletes the controllers."""
        with self._locked() as state:
            _delete_controllers(state, nqn)

    def restore_target(self, nqn):
        """The target answers again; 'connecting' controllers go live."""
        with self._locked() as state:
            state['targets'][nqn]['up'] = True
            for ctrl in state['controllers'].values():
                if ctrl['nqn'] == nqn and ctrl['state'] == 'connecting':
                    ctrl['state'] = 'live'

    # Queries ----------------------------------------------------------------

    def array(self, name):
        return self._load()['arrays'].get(name)

    def member_nqns(self, name):
        """dict nqn -> flags of the members of array ``name``."""
        state = self._load()
        return {_nqn_of(state, dev): member['flags']
                for dev, member in state['arrays'][name]['members'].items()}

    def commands(self):
        return self._load()['log']

    def hold(self, *patterns):
        """Make the next fake command containing a pattern block."""
        with open(self._path('hold'), 'w') as handle:
            handle.write('\n'.join(patterns) + '\n')

    def held(self):
        """The blocked command line, or None."""
        try:
            with open(self._path('held')) as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def release(self):
        for name in ('hold', 'held'):
            try:
                os.unlink(self._path(name))
            except FileNotFoundError:
                pass


def _uuid_for(nqn):
    import uuid
    return str(uuid.uuid5(uuid.NAMESPACE_URL, nqn))


def _device_of(state, nqn):
    for ctrl in state['controllers'].values():
        if ctrl['nqn'] == nqn:
            return ctrl['device']
    return None


def _nqn_of(state, device):
    for ctrl in state['controllers'].values():
        if ctrl['device'] == device:
            return ctrl['nqn']
    return state.get('gone', {}).get(device)


# State changes shared by the fake commands and the fault injection ----------

def _md_error(state, device):
    """What md does on an I/O error: fail the member unless it is the last."""
    for array in state['arrays'].values():
        member = array['members'].get(device)
        if member is None or 'faulty' in member['flags']:
            continue
        if ('in_sync' in member['flags']
                and simhost_tree.in_sync_count(array) == 1):
            continue            # raid1 keeps its last working leg
        member['flags'] = ['faulty', 'failfast']
        member['slot'] = None
        array['resync'].pop(device, None)


def _delete_controllers(state, nqn):
    for name in [n for n, c in state['controllers'].items()
                 if c['nqn'] == nqn]:
        device = state['controllers'][name]['device']
        _md_error(state, device)
        state.setdefault('gone', {})[device] = nqn
        del state['controllers'][name]


def _nvme_connect(state, nqn, address, port):
    target = state['targets'].get(nqn)
    for ctrl in state['controllers'].values():
        if ctrl['nqn'] == nqn:
            return 114, 'already connected'
    if (target is None or not target['up'] or target['address'] != address
            or int(target['port']) != int(port)):
        return 1, 'Failed to write to /dev/nvme-fabrics: Connection refused'
    number = state['next_ctrl']
    state['next_ctrl'] += 1
    state['controllers']['nvme%d' % number] = {
        'nqn': nqn, 'address': address, 'port': int(port),
        'transport': target['transport'], 'state': 'live',
        'device': 'nvme%dn1' % number}
    return 0, ''


def _free_slot(array):
    used = {m['slot'] for m in array['members'].values()
            if m['slot'] is not None}
    for slot in range(array['raid_disks']):
        if slot not in used:
            return slot
    return None


def _settle(state):
    now = time.time()
    for array in state['arrays'].values():
        for device, done_at in list(array['resync'].items()):
            member = array['members'].get(device)
            if member is not None and now >= done_at:
                member['flags'] = ['in_sync', 'failfast']
                del array['resync'][device]
        for device, member in array['members'].items():
            if member['slot'] is None and 'spare' in member['flags']:
                slot = _free_slot(array)
                if slot is not None:
                    member['slot'] = slot
                    array['resync'][device] = now + state['resync_seconds']


def _mdadm_manage(state, array_name, op, device):
    array = state['arrays'].get(array_name)
    if array is None:
        return 1, 'mdadm: cannot open /dev/%s: No such file' % array_name
    members = array['members']
    if op == '--remove' and device in ('failed', 'detached'):
        for dev in [d for d, m in members.items() if 'faulty' in m['flags']]:
            del members[dev]
        return 0, ''
    if op in ('--fail', '--remove') and device not in members:
        return 1, 'mdadm: %s does not appear to be a member' % device
    if op == '--fail':
        if ('in_sync' in members[device]['flags']
                and simhost_tree.in_sync_count(array) == 1):
            return 1, 'mdadm: set device faulty failed for %s' % device
        _md_error(state, device)
        return 0, 'mdadm: set /dev/%s faulty in /dev/%s' % (device,
                                                            array_name)
    if op == '--remove':
        if members[device]['slot'] is not None:
            return 1, 'mdadm: hot remove failed: Device or resource busy'
        del members[device]
        return 0, 'mdadm: hot removed /dev/%s' % device
    return _mdadm_add(state, array, op, device)


def _mdadm_add(state, array, op, device):
    nqn = _nqn_of(state, device)
    live = any(c['device'] == device and c['state'] == 'live'
               for c in state['controllers'].values())
    if not live:
        return 1, 'mdadm: cannot find /dev/%s: No such device' % device
    if device in array['members']:
        return 1, 'mdadm: Cannot open /dev/%s: Device or resource busy' % (
            device)
    former = nqn in array['former']
    if op == '--re-add' and not former:
        return 1, 'mdadm: --re-add for /dev/%s is not possible' % device
    array['members'][device] = {'slot': None, 'flags': ['spare']}
    if nqn not in array['former']:
        array['former'].append(nqn)
    return 0, 'mdadm: %s /dev/%s' % (
        're-added' if op == '--re-add' else 'added', device)


def _detail_export(state, array_name):
    array = state['arrays'][array_name]
    lines = ['MD_LEVEL=raid1', 'MD_DEVICES=%d' % array['raid_disks'],
             'MD_METADATA=1.2', 'MD_DEVNAME=%s' % array['alias'],
             'MD_NAME=%s' % array['alias']]
    for device, member in sorted(array['members'].items()):
        role = ('faulty' if 'faulty' in member['flags'] else
                'spare' if member['slot'] is None else str(member['slot']))
        lines.append('MD_DEVICE_dev_%s_ROLE=%s' % (device, role))
        lines.append('MD_DEVICE_dev_%s_DEV=/dev/%s' % (device, device))
    return '\n'.join(lines)


def _strip_dev(path):
    return path[len('/dev/'):] if path.startswith('/dev/') else path


def _run_mdadm(state, argv):
    args = [a for a in argv if a != '--manage']
    if args[:2] == ['--detail', '--export'] and len(args) == 3:
        name = _strip_dev(args[2])
        if name not in state['arrays']:
            return 1, 'mdadm: cannot open %s' % args[2]
        return 0, _detail_export(state, name)
    if len(args) == 3 and args[1] in ('--fail', '--remove', '--add',
                                      '--re-add'):
        return _mdadm_manage(state, _strip_dev(args[0]), args[1],
                             _strip_dev(args[2]))
    return 2, 'mdadm: simulated host does not support %s' % ' '.join(argv)


def _option(argv, short):
    return argv[argv.index(short) + 1] if short in argv else None


def _run_nvme(state, argv):
    if argv[:1] == ['connect']:
        return _nvme_connect(state, _option(argv, '-n'), _option(argv, '-a'),
                             _option(argv, '-s') or 0)
    if argv[:1] == ['disconnect']:
        nqn = _option(argv, '-n')
        count = sum(1 for c in state['controllers'].values()
                    if c['nqn'] == nqn)
        _delete_controllers(state, nqn)
        return 0, 'NQN:%s disconnected %d controller(s)' % (nqn, count)
    return 2, 'nvme: simulated host does not support %s' % ' '.join(argv)


def _hold(root, words):
    """Block while ``<root>/hold`` names this command (crash-test helper).

    A test writes patterns such as ``mdadm --manage /dev/md127 --add`` into
    ``hold``, one a line; a command whose line contains one of them writes
    itself into ``held`` and waits until ``hold`` is removed (or it is
    killed).
    """
    path = os.path.join(root, 'hold')
    try:
        with open(path) as handle:
            patterns = [p for p in handle.read().splitlines() if p.strip()]
    except FileNotFoundError:
        return
    if not any(pattern in ' '.join(words) for pattern in patterns):
        return
    with open(os.path.join(root, 'held.tmp'), 'w') as handle:
        handle.write(' '.join(words))
    os.replace(os.path.join(root, 'held.tmp'), os.path.join(root, 'held'))
    while os.path.exists(path):
        time.sleep(0.05)


def _main(root, argv, program, runner):
    _hold(root, [program] + list(argv))
    host = SimHost(root)
    with host._locked() as state:
        code, out = runner(state, argv)
        state['log'].append([program] + list(argv) + ['=> %d' % code])
    (sys.stdout if code == 0 else sys.stderr).write(out + '\n')
    return code


def mdadm_main(root, argv):
    return _main(root, argv, 'mdadm', _run_mdadm)


def nvme_main(root, argv):
    return _main(root, argv, 'nvme', _run_nvme)
