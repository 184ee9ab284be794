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

"""Parser for ``/proc/mdstat``.

Each array takes one header line (``md127 : active raid1 nvme2n1[1](F)
nvme1n1[0]``) followed by indented detail lines, the first of which ends
with the slot map (``[2/1] [U_]``); a progress line may show a running
resync or recovery. Anything that does not fit is logged and skipped: a
half-parsed array is never reported.
"""

import dataclasses
import re
from typing import Optional

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

_HEADER = re.compile(r'^(?P<name>md\w+)\s*:\s*(?P<rest>.*)$')
_MEMBER = re.compile(
    r'^(?P<dev>[\w.:-]+)\[(?P<role>\d+)\](?P<flags>(\(\w\))*)$')
_SLOTS = re.compile(
    r'\[(?P<total>\d+)/(?P<working>\d+)\]\s+\[(?P<map>[U_]*)\]')
_PROGRESS = re.compile(
    r'(?P<action>recovery|resync|reshape|check|repair)\s*=\s*'
    r'(?P<percent>\d+(?:\.\d+)?)%')
_FLAGS = {'F': 'faulty', 'S': 'spare', 'W': 'write_mostly',
          'R': 'replacement', 'J': 'journal'}


@dataclasses.dataclass(frozen=True)
class Member:
    device: str
    role: int
    flags: frozenset = frozenset()


@dataclasses.dataclass(frozen=True)
class MdstatArray:
    name: str
    active: bool
    readonly: bool
    level: Optional[str]
    members: tuple = ()
    raid_disks: Optional[int] = None
    working_disks: Optional[int] = None
    slot_map: Optional[str] = None        # 'U_' for a degraded raid1
    action: Optional[str] = None          # 'recovery', 'resync', ...
    progress: Optional[float] = None      # percent done


def _parse_member(token):
    match = _MEMBER.match(token)
    if not match:
        return None
    flags = frozenset(_FLAGS.get(flag, flag)
                      for flag in re.findall(r'\((\w)\)', match['flags']))
    return Member(match['dev'], int(match['role']), flags)


def _parse_header(name, rest):
    words = rest.split()
    if not words or words[0] not in ('active', 'inactive'):
        return None
    active = words.pop(0) == 'active'
    readonly = False
    if words and words[0].startswith('(') and words[0].endswith(')'):
        readonly = words.pop(0) in ('(read-only)', '(auto-read-only)')
    level = None
    if active and words and not _MEMBER.match(words[0]):
        level = words.pop(0)
    members = []
    for token in words:
        member = _parse_member(token)
        if member is None:
            return None
        members.append(member)
    return MdstatArray(name=name, active=active, readonly=readonly,
                       level=level, members=tuple(members))


def _apply_details(array, lines):
    for line in lines:
        slots = _SLOTS.search(line)
        if slots:
            array = dataclasses.replace(
                array, raid_disks=int(slots['total']),
                working_disks=int(slots['working']), slot_map=slots['map'])
        progress = _PROGRESS.search(line)
        if progress:
            array = dataclasses.replace(
                array, action=progress['action'],
                progress=float(progress['percent']))
    return array


def _blocks(text):
    """Split the text into (header line, [detail lines]) per array."""
    current = None
    for line in text.splitlines():
        if _HEADER.match(line):
            if current:
                yield current
            current = (line, [])
        elif current and line[:1].isspace() and line.strip():
            current[1].append(line)
        else:
            if current:
                yield current
            current = None
    if current:
        yield current


def parse_mdstat(text):
    """Parse the text of /proc/mdstat.

    :param text: the file's content.
    :returns: dict kernel name ('md127') -> :class:`MdstatArray`; arrays
        whose header cannot be parsed are logged and left out.
    """
    arrays = {}
    for header, details in _blocks(text):
        match = _HEADER.match(header)
        array = _parse_header(match['name'], match['rest'])
        if array is None:
            LOG.warning('Skipping unparsable /proc/mdstat entry: %r', header)
            continue
        arrays[array.name] = _apply_details(array, details)
    return arrays
