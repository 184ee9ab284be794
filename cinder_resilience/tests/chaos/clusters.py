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

"""Multi-node coordination clusters, each member its own process.

Every member listens on the address it is given (127.0.0.1, or an address
inside a namespace the run created) on free ports, in a temp dir; a member
can be paused (SIGSTOP), resumed, killed and restarted with its data.  The
``url`` of a cluster is what an operator would write in cinder.conf:

* ZooKeeper: every member, through tooz's ``hosts`` option (kazoo moves to
  another member when its member fails);
* redis: the three sentinels (``sentinel`` + ``sentinel_fallback``); redis-py
  asks them for the current primary on each new connection;
* etcd: tooz's etcd3gw driver talks to one address, so the URL names an
  ``etcd gateway`` (etcd's own TCP proxy, run on the client host) that
  forwards to any member that accepts connections.
"""

import functools
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

from cinder_resilience.tests.functional import servers as coord_servers
from cinder_resilience.tests import waiting

ZOOKEEPER_CLASSPATH = '/etc/zookeeper/conf:/usr/share/java/zookeeper.jar'
SENTINEL_MASTER = 'chaos'


free_port = coord_servers.free_port


#: A member still refusing connections is "not yet", not an error.
wait_until = functools.partial(waiting.wait_until, tolerate=(OSError,))


def ask(host, port, request, size=4096, timeout=1.0):
    """Send ``request`` over TCP and return what comes back (or b'')."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            chunks = []
            while True:
                chunk = sock.recv(size)
                if not chunk:
                    break
                chunks.append(chunk)
                if request.endswith(b'\r\n'):
                    break
            return b''.join(chunks)
    except OSError:
        return b''


class Member(object):
    """One server process: ``start``, ``pause``, ``resume``, ``kill``."""

    def __init__(self, name, host, workdir, netns=None):
        self.name = name
        self.host = host
        self.netns = netns
        self.workdir = os.path.join(workdir, name)
        os.makedirs(self.workdir, exist_ok=True)
        self.process = None
        self.paused = False

    def command(self):
        raise NotImplementedError

    def start(self):
        argv = self.command()
        if self.netns:
            argv = ['ip', 'netns', 'exec', self.netns] + argv
        log = open(os.path.join(self.workdir, 'server.log'), 'ab')
        with log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.workdir,
                start_new_session=True)
        self.paused = False

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def _signal(self, sig):
        if self.running:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass

    def pause(self):
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self._signal(signal.SIGCONT)
        self.paused = False

    def kill(self):
        if self.process is None:
            return
        self._signal(signal.SIGKILL)
        self._signal(signal.SIGCONT)
        self.process.wait()
        self.process = None
        self.paused = False


class Cluster(object):
    """Members plus the client's view of them."""

    name = None
    backend = None
    start_timeout = 60.0

    def __init__(self, workdir, hosts, netns=(None, None, None), lease=3):
        self.workdir = tempfile.mkdtemp(prefix='chaos-%s-' % self.name,
                                        dir=workdir)
        self.hosts = list(hosts)
        self.netns = list(netns)
        self.lease = lease
        self.members = []

    def start(self):
        for member in self.all_members():
            member.start()
        wait_until(self.ready, self.start_timeout, self.name)

    def all_members(self):
        return list(self.members)

    def stop(self):
        for member in self.all_members():
            member.kill()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self, member, down_for):
        member.kill()
        time.sleep(down_for)
        member.start()

    def ready(self):
        raise NotImplementedError

    def leader(self):
        """The member that orders writes now (None if none)."""
        raise NotImplementedError

    def follower(self):
        lead = self.leader()
        for member in self.members:
            if member is not lead and member.running:
                return member
        return None


class EtcdMember(Member):

    def __init__(self, name, host, workdir, netns, token, peers):
        super().__init__(name, host, workdir, netns)
        self.port = free_port()
        self.peer_port = free_port()
        self.token = token
        self.peers = peers

    @property
    def client_url(self):
        return 'http://%s:%d' % (self.host, self.port)

    @property
    def peer_url(self):
        return 'http://%s:%d' % (self.host, self.peer_port)

    def command(self):
        return ['etcd', '--name', self.name,
                '--data-dir', os.path.join(self.workdir, 'data'),
                '--listen-client-urls', self.client_url,
                '--advertise-client-urls', self.client_url,
                '--listen-peer-urls', self.peer_url,
                '--initial-advertise-peer-urls', self.peer_url,
                '--initial-cluster', self.peers(),
                '--initial-cluster-state', 'new',
                '--initial-cluster-token', self.token,
                '--log-level', 'warn']

    def status(self):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=1)
        try:
            conn.request('POST', '/v3/maintenance/status', body='{}')
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def healthy(self):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=1)
        try:
            conn.request('GET', '/health')
            return b'"true"' in conn.getresponse().read()
        finally:
            conn.close()


class EtcdGateway(Member):

    def __init__(self, workdir, endpoints):
        super().__init__('gateway', '127.0.0.1', workdir)
        self.port = free_port()
        self.endpoints = endpoints

    def command(self):
        return ['etcd', 'gateway', 'start',
                '--endpoints', ','.join(self.endpoints),
                '--listen-addr', '127.0.0.1:%d' % self.port,
                '--retry-delay', '1s']


class EtcdCluster(Cluster):
    """Three etcd 3.4 members and an ``etcd gateway`` for the client."""

    name = 'etcd'
    backend = 'etcd3'

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        token = 'chaos-' + uuid.uuid4().hex[:8]
        self.members = [
            EtcdMember('n%d' % i, self.hosts[i], self.workdir, self.netns[i],
                       token, self._peers)
            for i in range(3)]
        self.gateway = EtcdGateway(self.workdir, [
            '%s:%d' % (m.host, m.port) for m in self.members])

    def _peers(self):
        return ','.join('%s=%s' % (m.name, m.peer_url) for m in self.members)

    def all_members(self):
        return self.members + [self.gateway]

    @property
    def url(self):
        return ('etcd3+http://127.0.0.1:%d?lock_timeout=%d&timeout=2'
                % (self.gateway.port, self.lease))

    def ready(self):
        return (all(m.healthy() for m in self.members)
                and self.gateway.running)

    def leader(self):
        for member in self.members:
            if not member.running or member.paused:
                continue
            try:
                status = member.status()
            except (OSError, ValueError):
                continue
            if status.get('leader') == status['header']['member_id']:
                return member
        return None


class ZookeeperMember(Member):

    tick_ms = 250

    def __init__(self, name, host, workdir, netns, myid):
        super().__init__(name, host, workdir, netns)
        self.myid = myid
        self.port = free_port()
        self.quorum_port = free_port()
        self.election_port = free_port()

    def configure(self, members):
        data = os.path.join(self.workdir, 'data')
        os.makedirs(data, exist_ok=True)
        with open(os.path.join(data, 'myid'), 'w') as f:
            f.write('%d\n' % self.myid)
        lines = ['tickTime=%d' % self.tick_ms, 'initLimit=40',
                 'syncLimit=10', 'dataDir=%s' % data,
                 'clientPort=%d' % self.port,
                 'clientPortAddress=%s' % self.host,
                 'maxSessionTimeout=20000', 'admin.enableServer=false',
                 '4lw.commands.whitelist=ruok,srvr']
        for m in members:
            lines.append('server.%d=%s:%d:%d' % (
                m.myid, m.host, m.quorum_port, m.election_port))
        self.config = os.path.join(self.workdir, 'zoo.cfg')
        with open(self.config, 'w') as f:
            f.write('\n'.join(lines) + '\n')

    def command(self):
        return ['java', '-Xmx192m', '-XX:+UseSerialGC',
                '-XX:TieredStopAtLevel=1',
                '-Dzookeeper.log.dir=%s' % self.workdir,
                '-cp', ZOOKEEPER_CLASSPATH,
                'org.apache.zookeeper.server.quorum.QuorumPeerMain',
                self.config]

    def mode(self):
        reply = ask(self.host, self.port, b'srvr')
        for line in reply.decode('utf-8', 'replace').splitlines():
            if line.startswith('Mode:'):
                return line.split(':', 1)[1].strip()
        return None


class ZookeeperCluster(Cluster):
    """A three-member ZooKeeper 3.8 ensemble (tickTime 250 ms)."""

    name = 'zookeeper'
    backend = 'zookeeper'
    start_timeout = 120.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.members = [
            ZookeeperMember('zk%d' % (i + 1), self.hosts[i], self.workdir,
                            self.netns[i], i + 1)
            for i in range(3)]
        for member in self.members:
            member.configure(self.members)

    @property
    def url(self):
        first, others = self.members[0], self.members[1:]
        hosts = ''.join('&hosts=%s:%d' % (m.host, m.port) for m in others)
        return 'zookeeper://%s:%d?timeout=%d%s' % (
            first.host, first.port, self.lease, hosts)

    def ready(self):
        return all(m.mode() in ('leader', 'follower') for m in self.members)

    def leader(self):
        for member in self.members:
            if member.running and not member.paused:
                if member.mode() == 'leader':
                    return member
        return None


class RedisMember(Member):

    def __init__(self, name, host, workdir, netns, replica_of=None):
        super().__init__(name, host, workdir, netns)
        self.port = free_port()
        self.replica_of = replica_of

    def command(self):
        argv = ['redis-server', '--port', str(self.port), '--bind', self.host,
                '--dir', self.workdir, '--save', '', '--appendonly', 'no',
                '--protected-mode', 'no']
        if self.replica_of is not None:
            argv += ['--replicaof', self.replica_of.host,
                     str(self.replica_of.port)]
            self.replica_of = None   # after a restart sentinel decides
        return argv


class SentinelMember(Member):

    def __init__(self, name, host, workdir, netns, primary):
        super().__init__(name, host, workdir, netns)
        self.port = free_port()
        self.config = os.path.join(self.workdir, 'sentinel.conf')
        with open(self.config, 'w') as f:
            f.write('port %d\nbind %s\ndir %s\nprotected-mode no\n'
                    'sentinel monitor %s %s %d 2\n'
                    'sentinel down-after-milliseconds %s 1000\n'
                    'sentinel failover-timeout %s 4000\n' % (
                        self.port, host, self.workdir, SENTINEL_MASTER,
                        primary.host, primary.port, SENTINEL_MASTER,
                        SENTINEL_MASTER))

    def command(self):
        return ['redis-sentinel', self.config]

    def primary(self):
        reply = ask(self.host, self.port, b'SENTINEL get-master-addr-by-name '
                    b'%s\r\n' % SENTINEL_MASTER.encode())
        parts = reply.split(b'\r\n')
        if len(parts) < 5 or not parts[0].startswith(b'*2'):
            return None
        return parts[2].decode(), int(parts[4])

    def ckquorum(self):
        reply = ask(self.host, self.port, b'SENTINEL ckquorum %s\r\n'
                    % SENTINEL_MASTER.encode())
        return reply.startswith(b'+OK')


class RedisSentinelCluster(Cluster):
    """redis primary + replica (no persistence) watched by 3 sentinels."""

    name = 'redis-sentinel'
    backend = 'redis'

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The primary takes slot 2, the one a partition can cut off.
        primary = RedisMember('r0', self.hosts[2], self.workdir,
                              self.netns[2])
        replica = RedisMember('r1', self.hosts[0], self.workdir,
                              self.netns[0], replica_of=primary)
        self.members = [primary, replica]
        self.sentinels = [
            SentinelMember('s%d' % i, self.hosts[0], self.workdir,
                           self.netns[0], primary) for i in range(3)]

    def all_members(self):
        return self.members + self.sentinels

    @property
    def url(self):
        first, others = self.sentinels[0], self.sentinels[1:]
        fallback = ''.join('&sentinel_fallback=%s:%d' % (s.host, s.port)
                           for s in others)
        return ('redis://%s:%d?sentinel=%s%s&lock_timeout=%d'
                '&socket_timeout=1&socket_connect_timeout=1' % (
                    first.host, first.port, SENTINEL_MASTER, fallback,
                    self.lease))

    def ready(self):
        return all(s.ckquorum() for s in self.sentinels) and all(
            b'role:' in ask(m.host, m.port, b'INFO replication\r\n')
            for m in self.members)

    def leader(self):
        for sentinel in self.sentinels:
            if not sentinel.running or sentinel.paused:
                continue
            address = sentinel.primary()
            for member in self.members:
                if address == (member.host, member.port):
                    return member
        return None


CLUSTERS = {cls.name: cls for cls in (EtcdCluster, ZookeeperCluster,
                                      RedisSentinelCluster)}


def missing_binaries(name):
    """Why cluster ``name`` cannot run here, or None."""
    needs = {'etcd': ['etcd'], 'zookeeper': ['java'],
             'redis-sentinel': ['redis-server', 'redis-sentinel']}[name]
    missing = [b for b in needs if shutil.which(b) is None]
    if name == 'zookeeper' and not os.path.exists(
            '/usr/share/java/zookeeper.jar'):
        missing.append('/usr/share/java/zookeeper.jar')
    if missing:
        return '%s needs %s (bindep.txt)' % (name, ', '.join(missing))
    return None
