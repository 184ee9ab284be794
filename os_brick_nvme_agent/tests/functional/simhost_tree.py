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

"""Render a simulated host's state as /proc, /sys and /dev files.

Used by :mod:`simhost`: every change of the state rewrites the tree with
per-file atomic renames, as a reader of the real files would see them
change one at a time.
"""

import os
import shutil


def in_sync_count(array):
    return sum(1 for m in array['members'].values()
               if 'in_sync' in m['flags'])


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as handle:
        handle.write(text)
    os.replace(tmp, path)


def _link(path, target):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, path)


def _prune(directory, keep):
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return
    for entry in entries:
        if entry not in keep:
            path = os.path.join(directory, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)


def _mdstat_text(state):
    lines = ['Personalities : [raid1] ']
    for name in sorted(state['arrays']):
        array = state['arrays'][name]
        members = []
        for device, member in sorted(array['members'].items(),
                                     key=lambda item: item[0]):
            flag = ('(F)' if 'faulty' in member['flags'] else
                    '(S)' if member['slot'] is None else '')
            members.append('%s[%d]%s' % (device, member['slot'] if
                                         member['slot'] is not None else 9,
                                         flag))
        slots = ''.join('U' if any(m['slot'] == s and 'in_sync' in m['flags']
                                   for m in array['members'].values())
                        else '_' for s in range(array['raid_disks']))
        lines.append('%s : active raid1 %s' % (name, ' '.join(members)))
        lines.append('      1046528 blocks super 1.2 [%d/%d] [%s]' % (
            array['raid_disks'], slots.count('U'), slots))
        if array['resync']:
            lines.append('      [=>...................]  recovery = 5.0% '
                         '(52326/1046528) finish=0.1min speed=52326K/sec')
        lines.append('      bitmap: 0/1 pages [0KB], 65536KB chunk')
        lines.append('')
    lines.append('unused devices: <none>')
    return '\n'.join(lines) + '\n'


def _render_array(root, name, array):
    md = os.path.join(root, 'sys/block', name, 'md')
    in_sync = in_sync_count(array)
    values = {'level': 'raid1', 'raid_disks': str(array['raid_disks']),
              'degraded': str(array['raid_disks'] - in_sync),
              'array_state': 'clean',
              'sync_action': 'recover' if array['resync'] else 'idle'}
    for attr, value in values.items():
        _write(os.path.join(md, attr), value + '\n')
    keep = set(values)
    for device, member in array['members'].items():
        entry = 'dev-' + device
        keep.add(entry)
        flags = list(member['flags'])
        _write(os.path.join(md, entry, 'state'), ','.join(flags) + '\n')
        slot = member['slot']
        _write(os.path.join(md, entry, 'slot'),
               ('none' if slot is None else str(slot)) + '\n')
        _link(os.path.join(md, entry, 'block'), '../../../' + device)
    _prune(md, keep)
    _link(os.path.join(root, 'dev/md', array['alias']), '../' + name)


def _render_controllers(root, state):
    ctl_base = os.path.join(root, 'sys/class/nvme-fabrics/ctl')
    blocks = set()
    for name, ctrl in state['controllers'].items():
        ctl = os.path.join(ctl_base, name)
        _write(os.path.join(ctl, 'subsysnqn'), ctrl['nqn'] + '\n')
        _write(os.path.join(ctl, 'transport'), ctrl['transport'] + '\n')
        _write(os.path.join(ctl, 'state'), ctrl['state'] + '\n')
        _write(os.path.join(ctl, 'address'), 'traddr=%s,trsvcid=%s\n' % (
            ctrl['address'], ctrl['port']))
        tmo = os.path.join(ctl, 'fast_io_fail_tmo')
        if not os.path.exists(tmo):
            # the kernel's default; the agent's writes then stay, as on a
            # real controller
            _write(tmo, 'off\n')
        os.makedirs(os.path.join(ctl, ctrl['device']), exist_ok=True)
        block = os.path.join(root, 'sys/block', ctrl['device'])
        _write(os.path.join(block, 'uuid'),
               state['targets'][ctrl['nqn']]['ns_uuid'] + '\n')
        _link(os.path.join(block, 'device'),
              '../../class/nvme-fabrics/ctl/' + name)
        _write(os.path.join(root, 'dev', ctrl['device']), '')
        blocks.add(ctrl['device'])
    _prune(ctl_base, set(state['controllers']))
    return blocks


def render(root, state):
    blocks = _render_controllers(root, state)
    for name, array in state['arrays'].items():
        _render_array(root, name, array)
        blocks.add(name)
    _prune(os.path.join(root, 'sys/block'), blocks)
    _prune(os.path.join(root, 'dev/md'),
           {a['alias'] for a in state['arrays'].values()})
    _write(os.path.join(root, 'proc/mdstat'), _mdstat_text(state))
