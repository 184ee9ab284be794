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

"""Two network namespaces joined by one veth pair, to partition a member.

Namespace ``a`` holds the run (harness, workers, most members), namespace
``b`` the member to cut off.  They share a /30 from 198.18.0.0/15 (the
block reserved for network tests), which exists only on the two veth ends:
nothing is routed to or from the host's own namespace.  ``set_link(False)``
takes b's end down, a partition both ways that leaves TCP connections
hanging (no reset), as a pulled cable or a dead switch port does.
"""

import os
import random
import shutil
import signal
import subprocess
import uuid


def unavailable():
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return 'network namespaces need root'
    if shutil.which('ip') is None:
        return 'iproute2 (ip) is not installed'
    return None


def _ip(*argv):
    subprocess.run(('ip',) + argv, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


class Pair(object):
    """Namespaces ``a`` and ``b`` with ``addr_a`` / ``addr_b`` on a veth."""

    def __init__(self, a=None, b=None, addr_a=None, addr_b=None):
        tag = uuid.uuid4().hex[:6]
        self.a = a or 'chaos-%s-a' % tag
        self.b = b or 'chaos-%s-b' % tag
        self.veth_b = 'ch%sb' % self.b.split('-')[1]
        if addr_a is None:
            base = random.randrange(0, 512 * 64) * 4
            net = '198.%d.%d.%d' % (18 + base // 65536, base // 256 % 256,
                                    base % 256)
            prefix, last = net.rsplit('.', 1)
            addr_a = '%s.%d' % (prefix, int(last) + 1)
            addr_b = '%s.%d' % (prefix, int(last) + 2)
        self.addr_a, self.addr_b = addr_a, addr_b

    def describe(self):
        """Arguments that rebuild this object inside namespace a."""
        return '%s,%s,%s,%s' % (self.a, self.b, self.addr_a, self.addr_b)

    @classmethod
    def from_description(cls, text):
        return cls(*text.split(','))

    def create(self):
        veth_a = self.veth_b[:-1] + 'a'
        _ip('netns', 'add', self.a)
        _ip('netns', 'add', self.b)
        _ip('link', 'add', veth_a, 'netns', self.a, 'type', 'veth',
            'peer', 'name', self.veth_b, 'netns', self.b)
        for ns, dev, addr in ((self.a, veth_a, self.addr_a),
                              (self.b, self.veth_b, self.addr_b)):
            _ip('-n', ns, 'addr', 'add', addr + '/30', 'dev', dev)
            _ip('-n', ns, 'link', 'set', 'lo', 'up')
            _ip('-n', ns, 'link', 'set', dev, 'up')

    def set_link(self, up):
        _ip('-n', self.b, 'link', 'set', self.veth_b,
            'up' if up else 'down')

    def pids(self, ns):
        out = subprocess.run(['ip', 'netns', 'pids', ns],
                             stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True).stdout
        return [int(p) for p in out.split()]

    def destroy(self):
        """Kill whatever still runs inside, then delete both namespaces."""
        for ns in (self.b, self.a):
            for pid in self.pids(ns):
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            subprocess.call(['ip', 'netns', 'del', ns],
                            stderr=subprocess.DEVNULL)
