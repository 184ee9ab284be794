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

"""Parser for ``mdadm --detail --export <array>``.

The output is ``KEY=value`` lines: ``MD_LEVEL``, ``MD_DEVICES``,
``MD_METADATA``, ``MD_UUID``, ``MD_DEVNAME`` (the name under /dev/md/),
``MD_NAME`` (the metadata name, ``homehost:name`` unless created with
``--homehost=any``) and per member ``MD_DEVICE_<key>_ROLE`` (a slot
number, ``spare``, ``faulty`` or ``journal``) and ``MD_DEVICE_<key>_DEV``.
"""

import dataclasses
import re
from typing import Optional

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

_LINE = re.compile(r'^(?P<key>[A-Za-z][\w.-]*)=(?P<value>.*)$')
_MEMBER_KEY = re.compile(r'^MD_DEVICE_(?P<key>.+)_(?P<field>ROLE|DEV)$')
_ROLES = frozenset(('spare', 'faulty', 'journal'))


@dataclasses.dataclass(frozen=True)
class DetailMember:
    path: str                   # '/dev/nvme1n1'
    role: str                   # '0', '1', 'spare', 'faulty', 'journal'

    @property
    def slot(self):
        return int(self.role) if self.role.isdigit() else None


@dataclasses.dataclass(frozen=True)
class Detail:
    level: Optional[str]
    raid_devices: Optional[int]
    uuid: Optional[str]
    devname: Optional[str]
    md_name: Optional[str]      # without the 'homehost:' prefix
    members: tuple = ()


def strip_homehost(name):
    """'host:vol' -> 'vol'; 'vol' -> 'vol'."""
    if name is None:
        return None
    return name.split(':', 1)[1] if ':' in name else name


def _split(text):
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        match = _LINE.match(line)
        if not match:
            LOG.warning('Ignoring malformed mdadm --detail line %r', line)
            continue
        values[match['key']] = match['value']
    return values


def _members(values):
    fields = {}
    for key, value in values.items():
        match = _MEMBER_KEY.match(key)
        if match:
            fields.setdefault(match['key'], {})[match['field']] = value
    members = []
    for key in sorted(fields):
        item = fields[key]
        role = item.get('ROLE', '')
        if 'DEV' not in item or not (role.isdigit() or role in _ROLES):
            LOG.warning('Ignoring incomplete mdadm member %s: %s', key, item)
            continue
        members.append(DetailMember(path=item['DEV'], role=role))
    return tuple(members)


def parse_detail_export(text):
    """Parse the output of ``mdadm --detail --export``.

    :returns: :class:`Detail`; fields that are absent or malformed are None.
    """
    values = _split(text or '')
    devices = values.get('MD_DEVICES', '')
    return Detail(
        level=values.get('MD_LEVEL') or None,
        raid_devices=int(devices) if devices.isdigit() else None,
        uuid=values.get('MD_UUID') or None,
        devname=values.get('MD_DEVNAME') or None,
        md_name=strip_homehost(values.get('MD_NAME') or None),
        members=_members(values))
