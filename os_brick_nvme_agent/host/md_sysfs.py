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

"""Reader for an MD array's sysfs directory (``/sys/block/mdX/md``).

The attribute formats are those of the kernel's md driver (see the
kernel's Documentation/admin-guide/md.rst): ``degraded`` and
``raid_disks`` are integers, ``array_state``, ``sync_action`` and
``level`` are single words, each member has a ``dev-<name>`` directory
with ``state`` (comma separated flags), ``slot`` (a number or ``none``)
and ``block`` (a link to the member's block device).

The ``parse_*`` functions are pure; :func:`read_md_dir` is the only one
touching files. A value that does not parse is logged and reported as
None so that the caller can skip the array rather than act on a guess.
"""

import dataclasses
import os
from typing import Optional

from oslo_log import log as logging

from os_brick_nvme_agent.host import sysfs

LOG = logging.getLogger(__name__)

ARRAY_STATES = frozenset((
    'clear', 'inactive', 'suspended', 'readonly', 'read-auto', 'clean',
    'active', 'write-pending', 'active-idle', 'broken'))
SYNC_ACTIONS = frozenset((
    'idle', 'resync', 'recover', 'check', 'repair', 'reshape', 'frozen'))
MEMBER_FLAGS = frozenset((
    'faulty', 'in_sync', 'journal', 'write_mostly', 'blocked', 'spare',
    'write_error', 'want_replacement', 'replacement', 'external_bbl',
    'failfast'))


@dataclasses.dataclass(frozen=True)
class MdMember:
    device: str                 # kernel name of the block device
    flags: frozenset            # parsed 'state'
    slot: Optional[int]         # None for 'none'


@dataclasses.dataclass(frozen=True)
class MdSysfs:
    name: str
    level: Optional[str]
    raid_disks: Optional[int]
    degraded: Optional[int]
    array_state: Optional[str]
    sync_action: Optional[str]
    members: tuple = ()
    complete: bool = True       # False: a member could not be read


def parse_int(text):
    """'1\\n' -> 1; anything else -> None."""
    try:
        return int(text.strip())
    except (AttributeError, ValueError):
        return None


def parse_word(text, allowed):
    """Return the single word in ``text`` if it is one of ``allowed``."""
    if text is None:
        return None
    word = text.strip()
    return word if word in allowed else None


def parse_array_state(text):
    return parse_word(text, ARRAY_STATES)


def parse_sync_action(text):
    return parse_word(text, SYNC_ACTIONS)


def parse_member_state(text):
    """'in_sync,failfast\\n' -> frozenset; None if a flag is unknown."""
    if text is None:
        return None
    flags = frozenset(flag for flag in text.strip().split(',') if flag)
    if not flags or not flags <= MEMBER_FLAGS:
        return None
    return flags


def parse_slot(text):
    """'none' -> None, '1' -> 1; raises ValueError on anything else."""
    word = (text or '').strip()
    if word == 'none':
        return None
    if word.isdigit():
        return int(word)
    raise ValueError('bad slot %r' % text)


def _read_member(md_dir, entry):
    directory = os.path.join(md_dir, entry)
    flags = parse_member_state(sysfs.read(os.path.join(directory, 'state')))
    try:
        slot = parse_slot(sysfs.read(os.path.join(directory, 'slot')))
    except ValueError:
        flags = None
    target = None
    try:
        target = os.readlink(os.path.join(directory, 'block'))
    except OSError:
        pass
    device = os.path.basename(target) if target else entry[len('dev-'):]
    if flags is None:
        LOG.warning('Skipping member %s of %s: unreadable state or slot',
                    entry, md_dir)
        return None
    return MdMember(device=device, flags=flags, slot=slot)


def read_md_dir(md_dir, name):
    """Read ``/sys/block/<name>/md``.

    :param md_dir: path of the ``md`` directory.
    :param name: kernel name of the array ('md127').
    :returns: :class:`MdSysfs`, or None when the directory is gone.
    """
    try:
        entries = sorted(os.listdir(md_dir))
    except OSError:
        return None
    members = []
    complete = True
    for entry in entries:
        if entry.startswith('dev-'):
            member = _read_member(md_dir, entry)
            if member is None:
                complete = False
            else:
                members.append(member)
    return MdSysfs(
        name=name,
        level=parse_word(sysfs.read(os.path.join(md_dir, 'level')),
                         {'raid0', 'raid1', 'raid4', 'raid5', 'raid6',
                          'raid10', 'linear', 'multipath', 'faulty', ''}),
        raid_disks=parse_int(sysfs.read(os.path.join(md_dir, 'raid_disks'))),
        degraded=parse_int(sysfs.read(os.path.join(md_dir, 'degraded'))),
        array_state=parse_array_state(
            sysfs.read(os.path.join(md_dir, 'array_state'))),
        sync_action=parse_sync_action(
            sysfs.read(os.path.join(md_dir, 'sync_action'))),
        members=tuple(members),
        complete=complete)
