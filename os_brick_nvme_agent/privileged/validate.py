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

"""Validation of every argument handed to a privileged command.

Each validator returns the value in canonical form or raises
:class:`~os_brick_nvme_agent.exception.InvalidArgument`. They run inside
the privileged functions, so the privileged side never trusts its caller;
the exception travels back over the privsep channel to the caller.
"""

import ipaddress
import re

from os_brick_nvme_agent import exception

# NVMe base specification: an NQN is at most 223 bytes, 'nqn.' followed by
# a date and a reverse domain, or the UUID form; printable ASCII without
# spaces. Shell metacharacters cannot do harm without a shell, but a value
# starting with '-' could be read as an option, hence the first character.
_NQN = re.compile(r'^nqn\.[0-9A-Za-z][\x21-\x7e]{0,218}$')
_HOSTNAME = re.compile(
    r'^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
    r'(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$')
_MD_DEVICE = re.compile(r'^md(?:\d{1,4}|_d\d{1,4})$')
_CONTROLLER = re.compile(r'^nvme\d{1,5}$')
_MEMBER_DEVICE = re.compile(r'^nvme\d{1,5}(?:c\d{1,5})?n\d{1,5}(?:p\d{1,3})?$')
TRANSPORTS = ('tcp', 'rdma')


def reject(kind, value):
    raise exception.InvalidArgument('invalid %s: %r' % (kind, value))


def nqn(value):
    if not isinstance(value, str) or not _NQN.fullmatch(value):
        reject('NQN', value)
    return value


def address(value):
    """An IPv4/IPv6 address or a DNS name."""
    if not isinstance(value, str):
        reject('address', value)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(value):
        reject('address', value)
    return value


def port(value):
    if isinstance(value, bool):
        reject('port', value)
    try:
        number = int(str(value), 10)
    except ValueError:
        reject('port', value)
    if not 1 <= number <= 65535:
        reject('port', value)
    return str(number)


def transport(value):
    if value not in TRANSPORTS:
        reject('transport', value)
    return value


def ctrl_loss_tmo(value):
    if isinstance(value, bool) or not isinstance(value, int):
        reject('ctrl-loss-tmo', value)
    if not -1 <= value <= 86400:
        reject('ctrl-loss-tmo', value)
    return str(value)


def fast_io_fail_tmo(value):
    """Seconds before queued I/O fails on a lost controller, -1 = off."""
    if isinstance(value, bool) or not isinstance(value, int):
        reject('fast_io_fail_tmo', value)
    if not -1 <= value <= 86400:
        reject('fast_io_fail_tmo', value)
    return str(value)


def controller(value):
    """Kernel name of an NVMe controller ('nvme1'), returned as is."""
    if not isinstance(value, str) or not _CONTROLLER.fullmatch(value):
        reject('controller', value)
    return value


def md_device(value):
    """Kernel name of an MD array ('md127') -> '/dev/md127'."""
    if not isinstance(value, str) or not _MD_DEVICE.fullmatch(value):
        reject('md device', value)
    return '/dev/' + value


def member_device(value):
    """Kernel name of an NVMe namespace ('nvme1n1') -> '/dev/nvme1n1'."""
    if not isinstance(value, str) or not _MEMBER_DEVICE.fullmatch(value):
        reject('member device', value)
    return '/dev/' + value


def removable_device(value):
    """A member device, or mdadm's 'failed'/'detached' keywords."""
    if value in ('failed', 'detached'):
        return value
    return member_device(value)
