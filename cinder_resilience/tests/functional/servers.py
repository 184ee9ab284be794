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

"""Real coordination servers on 127.0.0.1, each on free ports in a temp dir.

Every server is a ``fixtures.Fixture`` that can also be driven by hand
(``start()`` / ``stop()`` / ``kill()`` / ``restart()``), which is what the
chaos test, the benchmark and the demo scene do.  ``url`` is the tooz URL;
``options`` are appended to it as a query string so a test can shorten lock
and session timeouts.  A server whose binary is not installed makes
``available()`` return a reason string, and ``SkipIfMissing`` turns it into
a clear test skip (a failure when ``CI`` is set: see ``tests.missing``).
"""

import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse

import fixtures

from cinder_resilience import tests
from cinder_resilience.tests import waiting

ZOOKEEPER_JARS = ('/usr/share/java/zookeeper.jar',)
ZOOKEEPER_CONF = '/etc/zookeeper/conf'


def free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def port_open(port):
    """True when something accepts connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=0.5):
            return True
    except OSError:
        return False


class Server(fixtures.Fixture):
    """One server process; subclasses give the command and readiness."""

    name = None
    scheme = None
    binary = None
    start_timeout = 20.0

    def __init__(self, options=None, durable=False):
        """``durable``: sync every write to disk as in production.

        The benchmarks ask for it.  Tests do not, so that a busy machine's
        I/O cannot stall a short session; a killed server still keeps all
        the page cache holds.  Only ZooKeeper has the choice here (etcd
        3.4 always syncs; the redis server keeps nothing on disk).
        """
        super().__init__()
        self.options = dict(options or {})
        self.durable = durable
        self.port = None
        self.process = None
        self.workdir = None
        self._log = None

    @classmethod
    def available(cls):
        """None when the server can run here, else why it cannot."""
        if shutil.which(cls.binary) is None:
            return ('%s server binary %r is not installed (bindep: see '
                    'bindep.txt)' % (cls.name, cls.binary))
        return None

    @property
    def url(self):
        query = urllib.parse.urlencode(sorted(self.options.items()))
        base = '%s://127.0.0.1:%d' % (self.scheme, self.port)
        return base + ('?' + query if query else '')

    def _setUp(self):
        self.start()
        self.addCleanup(self.cleanup_all)

    def prepare(self):
        """Pick ports and a work dir once; they survive restarts."""
        self.workdir = tempfile.mkdtemp(prefix='coord-%s-' % self.name)
        self.port = free_port()

    def start(self):
        if self.workdir is None:
            self.prepare()
        self._log = open(os.path.join(self.workdir, 'server.log'), 'ab')
        self.process = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=self.workdir,
            start_new_session=True)
        try:
            waiting.wait_until(self._ready_or_dead, self.start_timeout,
                               self.name, interval=0.05)
        except RuntimeError:
            self.kill()
            raise
        if self.process.poll() is not None:
            raise RuntimeError('%s exited at start, see %s' % (
                self.name, os.path.join(self.workdir, 'server.log')))
        return self

    def _ready_or_dead(self):
        return self.process.poll() is not None or self.ready()

    def _signal(self, sig, wait):
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(wait)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self):
        """Graceful stop (SIGTERM, then SIGKILL after 10 s)."""
        self._signal(signal.SIGTERM, 10)

    def kill(self):
        """Crash the server: SIGKILL, no chance to flush anything."""
        self._signal(signal.SIGKILL, 10)

    def restart(self, down_for=0.0):
        self.kill()
        if down_for:
            time.sleep(down_for)
        self.start()

    def cleanup_all(self):
        self.kill()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def command(self):
        raise NotImplementedError

    def ready(self):
        raise NotImplementedError

    def answers(self, request, reply):
        """True if the server answers ``request`` with ``reply`` first."""
        try:
            with socket.create_connection(('127.0.0.1', self.port),
                                          timeout=0.5) as sock:
                sock.sendall(request)
                return sock.recv(len(reply)) == reply
        except OSError:
            return False


class RedisServer(Server):
    """redis-server without persistence: a restart loses every key."""

    name = 'redis'
    scheme = 'redis'
    binary = 'redis-server'

    def command(self):
        return [self.binary, '--port', str(self.port), '--bind', '127.0.0.1',
                '--dir', self.workdir, '--save', '', '--appendonly', 'no']

    def ready(self):
        return self.answers(b'PING\r\n', b'+PONG')


class EtcdServer(Server):
    """Single-member etcd 3.4; its data dir survives restarts."""

    name = 'etcd'
    scheme = 'etcd3+http'
    binary = 'etcd'

    def prepare(self):
        super().prepare()
        self.peer_port = free_port()

    def command(self):
        client = 'http://127.0.0.1:%d' % self.port
        peer = 'http://127.0.0.1:%d' % self.peer_port
        return [self.binary, '--name', 'n0',
                '--data-dir', os.path.join(self.workdir, 'data'),
                '--listen-client-urls', client,
                '--advertise-client-urls', client,
                '--listen-peer-urls', peer,
                '--initial-advertise-peer-urls', peer,
                '--initial-cluster', 'n0=' + peer,
                '--log-level', 'warn']

    def ready(self):
        conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=1)
        try:
            conn.request('GET', '/health')
            return b'true' in conn.getresponse().read()
        except OSError:
            return False
        finally:
            conn.close()


class ZookeeperServer(Server):
    """Standalone ZooKeeper 3.8; its data dir survives restarts.

    ``tickTime`` is 250 ms so that clients may ask for short sessions (the
    server allows 2 to 20 ticks).  Unless ``durable``, ``forceSync=no``:
    otherwise a session handshake waits for an fsync that the rest of a
    busy CI machine can delay past 3 s.
    """

    name = 'zookeeper'
    scheme = 'zookeeper'
    binary = 'java'
    start_timeout = 60.0
    tick_ms = 250

    @classmethod
    def available(cls):
        missing = super().available()
        if missing:
            return missing
        if not all(os.path.exists(jar) for jar in ZOOKEEPER_JARS):
            return ('zookeeper is not installed (%s missing; Debian package '
                    '"zookeeper")' % ', '.join(ZOOKEEPER_JARS))
        return None

    def prepare(self):
        super().prepare()
        self.max_session_ms = self.tick_ms * 80
        cfg = os.path.join(self.workdir, 'zoo.cfg')
        with open(cfg, 'w') as f:
            f.write('tickTime=%d\n' % self.tick_ms)
            f.write('dataDir=%s\n' % os.path.join(self.workdir, 'data'))
            f.write('clientPort=%d\n' % self.port)
            f.write('clientPortAddress=127.0.0.1\n')
            f.write('maxSessionTimeout=%d\n' % self.max_session_ms)
            f.write('admin.enableServer=false\n')
            if not self.durable:
                f.write('forceSync=no\n')
            f.write('4lw.commands.whitelist=srvr\n')
        self.config = cfg

    def command(self):
        classpath = ':'.join((ZOOKEEPER_CONF,) + ZOOKEEPER_JARS)
        return ['java', '-Xmx256m', '-XX:+UseSerialGC',
                '-XX:TieredStopAtLevel=1',
                '-Dzookeeper.log.dir=%s' % self.workdir,
                '-cp', classpath,
                'org.apache.zookeeper.server.ZooKeeperServerMain',
                self.config]

    def ready(self):
        # 'ruok' says imok as soon as the port is bound, before the database
        # is loaded; 'srvr' reports a mode only once requests are served.
        return self.answers(b'srvr', b'Zookeeper version:')


class MemcachedServer(Server):
    """memcached (no fencing token; unsafe for active-active, see docs)."""

    name = 'memcached'
    scheme = 'memcached'
    binary = 'memcached'

    def command(self):
        return [self.binary, '-u', 'nobody', '-l', '127.0.0.1',
                '-p', str(self.port), '-U', '0', '-m', '16']

    def ready(self):
        return self.answers(b'version\r\n', b'VERSION')


SERVERS = {cls.name: cls for cls in (RedisServer, ZookeeperServer,
                                     EtcdServer, MemcachedServer)}


class SkipIfMissing(fixtures.Fixture):
    """Skip the calling test when a server cannot run here (fail under CI)."""

    def __init__(self, test, server_cls):
        super().__init__()
        self.test = test
        self.server_cls = server_cls

    def setUp(self):
        # Raised before fixtures' setUp, which would wrap it together with
        # a SetupError and turn the skip into an error.
        reason = self.server_cls.available()
        if reason:
            raise tests.missing(reason)
        super().setUp()
