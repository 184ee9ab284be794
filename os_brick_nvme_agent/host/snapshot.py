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

"""Build a :class:`model.HostState` from /proc, /sys and /dev.

Arrays come from ``/proc/mdstat`` (or, if it cannot be read, from the
``md*`` entries of ``/sys/block``); their details from md sysfs; the
metadata name os-brick gave an array from its ``/dev/md/<name>`` link
(or ``/run/mdadm/map``). An array whose attributes cannot all be read is
left out of the snapshot: the engine then leaves it alone this pass.
"""

import os

from oslo_log import log as logging

from os_brick_nvme_agent.host import fabrics
from os_brick_nvme_agent.host import md_sysfs
from os_brick_nvme_agent.host import mdstat
from os_brick_nvme_agent.host import sysfs
from os_brick_nvme_agent import model

LOG = logging.getLogger(__name__)


def map_uuid(text):
    """The array UUID of a map line in the form ``mdadm --detail`` shows.

    mdadm's map file holds the UUID as four 32-bit words in host order; on
    the little-endian hosts this agent runs on each word reads
    byte-reversed next to MD_UUID (recorded: b9701cb9 vs b91c70b9).
    """
    words = text.split(':')
    if len(words) != 4 or not all(len(w) == 8 for w in words):
        return None
    try:
        return ':'.join(bytes.fromhex(w)[::-1].hex() for w in words)
    except ValueError:
        return None


def parse_mdadm_map(text):
    """Parse /run/mdadm/map: 'md127 1.2 <uuid> /dev/md/<name>' lines.

    :returns: dict kernel name -> (uuid, name under /dev/md or None).
    """
    result = {}
    for line in (text or '').splitlines():
        fields = line.split()
        if len(fields) != 4 or not fields[0].startswith('md'):
            continue
        path = fields[3]
        name = path[len('/dev/md/'):] if path.startswith('/dev/md/') else None
        result[fields[0]] = (map_uuid(fields[2]), name or None)
    return result


def leg_state(flags, slot):
    """Map md member flags and slot to a :class:`model.LegState`."""
    if 'faulty' in flags:
        return model.LegState.FAULTY
    if slot is None:
        return model.LegState.SPARE
    if 'in_sync' in flags:
        return model.LegState.IN_SYNC
    return model.LegState.REBUILDING


def build_legs(md, namespaces):
    """Legs of one array, with a MISSING leg for every empty slot.

    :param md: :class:`md_sysfs.MdSysfs` of the array.
    :param namespaces: dict device -> (subsysnqn, ns_uuid).
    """
    legs = []
    used = set()
    for member in md.members:
        if 'journal' in member.flags:
            continue
        nqn, uuid = namespaces.get(member.device, (None, None))
        legs.append(model.Leg(device=member.device, slot=member.slot,
                              state=leg_state(member.flags, member.slot),
                              subsysnqn=nqn, ns_uuid=uuid))
        if member.slot is not None:
            used.add(member.slot)
    for slot in range(md.raid_disks or 0):
        if slot not in used:
            legs.append(model.Leg(device=None, slot=slot,
                                  state=model.LegState.MISSING))
    return tuple(legs)


def _md_links(root):
    """dict kernel name -> name under /dev/md/."""
    base = os.path.join(root, 'dev/md')
    links = {}
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return links
    for name in names:
        try:
            target = os.readlink(os.path.join(base, name))
        except OSError:
            continue
        links[os.path.basename(target)] = name
    return links


def _array_names(root):
    text = sysfs.read(os.path.join(root, 'proc/mdstat'))
    if text is not None:
        return sorted(mdstat.parse_mdstat(text))
    try:
        return sorted(name for name in os.listdir(os.path.join(root,
                                                               'sys/block'))
                      if name.startswith('md'))
    except OSError:
        return []


def _md_name(name, links, mdmap):
    if name in links:
        return links[name]
    return mdmap.get(name, (None, None))[1]


def _usable(md):
    return (md is not None and md.complete and
            md.raid_disks is not None and md.degraded is not None and
            md.array_state is not None)


def _read_array(root, name, links, mdmap):
    md = md_sysfs.read_md_dir(os.path.join(root, 'sys/block', name, 'md'),
                              name)
    if not _usable(md):
        LOG.warning('Leaving %s out of this snapshot: its md sysfs '
                    'attributes are missing or malformed', name)
        return None
    namespaces = {member.device: fabrics.read_namespace(root, member.device)
                  for member in md.members}
    return model.Array(
        name=name, md_name=_md_name(name, links, mdmap),
        uuid=mdmap.get(name, (None, None))[0], level=md.level or '',
        raid_disks=md.raid_disks, degraded=md.degraded,
        array_state=md.array_state,
        sync_action=md.sync_action or 'idle',
        legs=build_legs(md, namespaces))


def read_host_state(root='/'):
    """Snapshot the MD arrays and NVMe-oF controllers of the host.

    :param root: prefix of /proc, /sys, /dev and /run (tests use a tree).
    :returns: :class:`model.HostState`.
    """
    links = _md_links(root)
    mdmap = parse_mdadm_map(
        sysfs.read(os.path.join(root, 'run/mdadm/map')))
    arrays = []
    for name in _array_names(root):
        array = _read_array(root, name, links, mdmap)
        if array is not None:
            arrays.append(array)
    return model.HostState(arrays=tuple(arrays),
                           controllers=fabrics.read_controllers(root))
