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

"""Reader for NVMe-oF controllers and namespaces in sysfs.

``/sys/class/nvme-fabrics/ctl/<nvmeN>`` holds one directory per fabrics
controller with ``subsysnqn``, ``transport``, ``address`` (e.g.
``traddr=10.0.0.5,trsvcid=4420,src_addr=10.0.0.2``) and ``state``
(``live``, ``connecting``, ``resetting``, ``deleting``, ...). A block
device ``/sys/block/<nvmeXnY>`` links through ``device`` to its
controller, or with native multipath to its ``nvme-subsysN``, both of
which expose ``subsysnqn``; the namespace's ``uuid`` sits next to it.
"""

import os
import re

from oslo_log import log as logging

from os_brick_nvme_agent.host import sysfs
from os_brick_nvme_agent import model

LOG = logging.getLogger(__name__)

CTL_DIR = 'sys/class/nvme-fabrics/ctl'
TRANSPORTS = frozenset(('tcp', 'rdma', 'fc', 'loop'))
CTRL_STATES = frozenset(('new', 'live', 'resetting', 'connecting',
                         'deleting', 'deleting (no IO)', 'dead'))
_CTRL_NAME = re.compile(r'^nvme\d+$')
# Namespace entries of a controller directory: 'nvme1n1', or with native
# multipath the path device 'nvme0c1n1' whose block device is 'nvme0n1'.
_NAMESPACE = re.compile(r'^nvme(?P<subsys>\d+)(?:c\d+)?n(?P<nsid>\d+)$')
_NQN = re.compile(r'^nqn\.[\x21-\x7e]{1,219}$')


def parse_address(text):
    """'traddr=1.2.3.4,trsvcid=4420' -> {'traddr': ..., 'trsvcid': ...}.

    :returns: a dict, or None when an item is not ``key=value``.
    """
    result = {}
    for item in (text or '').strip().split(','):
        if not item:
            continue
        key, sep, value = item.partition('=')
        if not sep or not key:
            return None
        result[key.strip()] = value.strip()
    return result


def namespace_devices(entries):
    """Block device names of the namespace entries of a controller dir.

    :param entries: names listed in /sys/class/nvme-fabrics/ctl/<ctrl>.
    :returns: sorted tuple, e.g. ('nvme0n1',) for ['nvme0c1n1', 'state'].
    """
    devices = set()
    for entry in entries:
        match = _NAMESPACE.match(entry)
        if match:
            devices.add('nvme%sn%s' % (match['subsys'], match['nsid']))
    return tuple(sorted(devices))


def parse_controller(name, files, namespaces=()):
    """Build a :class:`model.Controller` from the files of one controller.

    :param name: 'nvme1'.
    :param files: dict attribute -> text (None for an unreadable one).
    :param namespaces: block device names reached through it.
    :returns: the controller, or None when a value is malformed.
    """
    nqn = (files.get('subsysnqn') or '').strip()
    transport = (files.get('transport') or '').strip()
    state = (files.get('state') or '').strip()
    address = (files.get('address') or '').strip()
    if (not _CTRL_NAME.match(name) or not _NQN.match(nqn) or
            transport not in TRANSPORTS or state not in CTRL_STATES or
            parse_address(address) is None):
        return None
    return model.Controller(name=name, subsysnqn=nqn, transport=transport,
                            address=address, state=state,
                            namespaces=tuple(namespaces))


def read_controllers(root='/'):
    """Every fabrics controller under ``root``; malformed ones are skipped."""
    base = os.path.join(root, CTL_DIR)
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return ()
    controllers = []
    # The class directory also holds 'power', 'subsystem' and 'uevent'.
    for name in filter(_CTRL_NAME.match, names):
        files = {attr: sysfs.read(os.path.join(base, name, attr))
                 for attr in ('subsysnqn', 'transport', 'address', 'state')}
        try:
            entries = os.listdir(os.path.join(base, name))
        except OSError:
            entries = []
        ctrl = parse_controller(name, files, namespace_devices(entries))
        if ctrl is None:
            LOG.warning('Skipping NVMe-oF controller %s: unreadable or '
                        'malformed attributes %s', name, files)
            continue
        controllers.append(ctrl)
    return tuple(controllers)


def read_namespace(root, device):
    """(subsysnqn, uuid) of block device ``device`` ('nvme1n1').

    Either value is None when it cannot be read or is malformed.
    """
    block = os.path.join(root, 'sys/block', device)
    nqn = (sysfs.read(os.path.join(block, 'device', 'subsysnqn'))
           or '').strip()
    uuid = (sysfs.read(os.path.join(block, 'uuid')) or '').strip()
    return (nqn if _NQN.match(nqn) else None), (uuid or None)


def parse_fast_io_fail_tmo(text):
    """'5' -> 5, 'off' -> -1 (the kernel's rendering of -1), else None."""
    value = (text or '').strip()
    if value == 'off':
        return -1
    try:
        return int(value, 10)
    except ValueError:
        return None


def read_fast_io_fail_tmo(root, ctrl):
    """The controller's fast_io_fail_tmo in seconds (-1 = off), or None."""
    if not _CTRL_NAME.match(ctrl):
        return None
    return parse_fast_io_fail_tmo(sysfs.read(
        os.path.join(root, CTL_DIR, ctrl, 'fast_io_fail_tmo')))
