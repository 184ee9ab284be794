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

"""cinder_resilience.coordination against real redis, etcd and zookeeper.

Each test starts its own server on free ports (see servers.py) with short
lock/session timeouts (3 s) so that expiry is observable quickly.
"""

import logging
import subprocess
import sys
import threading
import time

import fixtures
from oslo_config import cfg
import testtools

from cinder_resilience import coordination
from cinder_resilience import coordination_service
from cinder_resilience import exception
from cinder_resilience import tests
from cinder_resilience.tests.functional import servers
from cinder_resilience.tests.functional import test_coordination_chaos as chaos
from cinder_resilience.tests import waiting

#: Lock / session lifetime given to every server here, in seconds.
LEASE = 3


class BackendMixin(object):
    server_cls = None
    #: Whether the backend gives fencing tokens.
    tokens = True
    #: How long the server stays down in the restart test.
    down_for = 0.3

    def setUp(self):
        super().setUp()
        self.useFixture(servers.SkipIfMissing(self, self.server_cls))
        self.logs = self.useFixture(fixtures.FakeLogger(
            level=logging.INFO, format='%(levelname)s %(name)s %(message)s'))
        self.server = self.useFixture(self.server_cls(self.server_options()))
        self.conf = cfg.ConfigOpts()
        coordination.register_opts(self.conf)
        self.conf([])
        self.conf.set_override('heartbeat', 0.2, 'coordination')
        self.conf.set_override('max_reconnect_backoff', 0.5, 'coordination')

    def server_options(self):
        return {'lock_timeout': str(LEASE)}

    def coordinator(self, **kwargs):
        coord = coordination.Coordinator(
            prefix='cinder-', conf=self.conf, backend_url=self.server.url,
            **kwargs)
        coord.start()
        self.addCleanup(self._stop_quietly, coord)
        return coord

    @staticmethod
    def _stop_quietly(coord):
        try:
            coord.stop()
        except Exception:
            pass  # The server may be gone already at cleanup.

    def wait_for(self, predicate, timeout, what):
        if not waiting.wait_for(predicate, timeout, interval=0.05):
            self.fail('%s did not happen within %ss' % (what, timeout))

    def hold_in_child(self, name):
        proc = subprocess.Popen(
            [sys.executable, '-m', chaos.__name__, 'hold', self.server.url,
             name], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.addCleanup(self._reap, proc)
        token = proc.stdout.readline()
        self.assertTrue(token.strip(), 'holder printed no token')
        return proc, int(token)

    @staticmethod
    def _reap(proc):
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def test_blocking_nonblocking_and_timeout(self):
        first, second = self.coordinator(), self.coordinator()
        held = first.get_lock('vol-1')
        self.assertTrue(held.acquire())
        waiter = second.get_lock('vol-1')
        self.assertFalse(waiter.acquire(blocking=False))
        started = time.monotonic()
        self.assertFalse(waiter.acquire(timeout=0.5))
        # It did wait (redis-py gives up one 0.1 s poll before the end): a
        # lower bound, which a slow machine cannot break.
        self.assertGreaterEqual(time.monotonic() - started, 0.35)
        timer = threading.Timer(0.5, held.release)
        timer.start()
        self.addCleanup(timer.cancel)
        self.assertTrue(waiter.acquire(timeout=15))
        self.assertTrue(waiter.release())

        @coordination.synchronized('vol-{n}', blocking=False,
                                   coordinator=second)
        def body(n):
            return n

        held.acquire()
        self.assertRaises(exception.LockAcquireFailed, body, 1)
        held.release()
        self.assertEqual(1, body(1))

    def assert_no_lost_increment(self, mode):
        """3 processes x 40 read-modify-write increments under ``mode``."""
        workdir = self.useFixture(fixtures.TempDir()).path
        harness = chaos.ChaosHarness(self.server, workdir, workers=3,
                                     count=40, mode=mode, faults=False)
        state = harness.run()
        self.assertEqual({'w0': 40, 'w1': 40, 'w2': 40}, state['done'])
        self.assertEqual(120, state['counter'])

    def test_stock_cinder_coordinator_and_ours_exclude_each_other(self):
        """Rolling upgrade: a stock cinder process next to a plugged one."""
        from cinder import coordination as cinder_coordination
        cfg.CONF.set_override('backend_url', self.server.url, 'coordination')
        self.addCleanup(cfg.CONF.clear_override, 'backend_url',
                        'coordination')
        stock = cinder_coordination.Coordinator(prefix='cinder-')
        stock.start()
        self.addCleanup(self._stop_quietly, stock)
        # Ours serves cinder's own COORDINATOR, as in a plugged service.
        ours = coordination.Coordinator(prefix='cinder-', conf=self.conf)
        self.addCleanup(self._stop_quietly, ours)
        self.addCleanup(coordination_service.disable, ours)
        coordination_service.enable(ours)
        cinder_coordination.COORDINATOR.start()
        self.assertTrue(coordination_service.routed())
        ran = []

        @cinder_coordination.synchronized('{vol}-delete_volume',
                                          blocking=False)
        def delete_volume(vol):
            ran.append(vol)

        theirs = stock.get_lock('v9-delete_volume')
        self.assertTrue(theirs.acquire(blocking=False))
        self.assertRaises(exception.LockAcquireFailed, delete_volume, 'v9')
        self.assertEqual([], ran)
        theirs.release()
        mine = cinder_coordination.COORDINATOR.get_lock('v9-delete_volume')
        with mine:
            self.assertFalse(
                stock.get_lock('v9-delete_volume').acquire(blocking=False))
        delete_volume('v9')
        self.assertEqual(['v9'], ran)
        cinder_coordination.COORDINATOR.stop()
        self.assertFalse(ours.started)

    def test_mutual_exclusion_across_processes(self):
        self.assert_no_lost_increment('locked')

    def test_cinder_external_locks_routed_across_processes(self):
        self.assert_no_lost_increment('external')

    def test_killed_holder_frees_lock_by_itself(self):
        # Nobody releases it: only the lease can free it. How soon is
        # measured by benchmarks/lock_failover.py, not asserted here.
        proc, token = self.hold_in_child('vol-k')
        coord = self.coordinator()
        lock = coord.get_lock('vol-k')
        self.assertFalse(lock.acquire(blocking=False))
        proc.kill()
        proc.wait()
        self.assertTrue(lock.acquire(timeout=LEASE + 120))
        if self.tokens:
            self.assertGreater(lock.fencing_token, token)
        lock.release()

    def test_restart_while_held_tells_the_holder(self):
        lost = []
        holder = self.coordinator(on_lock_lost=lost.append)
        lock = holder.get_lock('vol-r')
        lock.acquire()
        before = lock.fencing_token if self.tokens else 0
        self.server.restart(down_for=self.down_for)
        self.wait_for(lambda: lost, LEASE + 60, 'lost-lock report')
        self.assertEqual([lock], lost)
        self.assertTrue(lock.lost)
        self.assertRaises(exception.LockLost, lock.check)
        self.assertIn('ERROR cinder_resilience.locks Distributed '
                      'lock cinder-vol-r was lost', self.logs.output)
        self.assertFalse(lock.release())
        other = self.coordinator().get_lock('vol-r')
        self.assertTrue(other.acquire(timeout=LEASE + 60))
        if self.tokens:
            self.assertGreater(other.fencing_token, before)
        other.release()

    def test_fencing_tokens_strictly_increase(self):
        if not self.tokens:
            lock = self.coordinator().get_lock('vol-f')
            lock.acquire()
            self.assertRaises(exception.FencingTokenUnavailable,
                              lambda: lock.fencing_token)
            lock.release()
            return
        coords = [self.coordinator() for _ in range(3)]
        tokens = []
        for round_ in range(2):
            for n in range(12):
                lock = coords[n % 3].get_lock('vol-f')
                self.assertTrue(lock.acquire(timeout=10))
                tokens.append(lock.fencing_token)
                lock.release()
            if round_ == 0:
                self.server.restart(down_for=0.2)
                coords = [self.coordinator() for _ in range(3)]
        self.assertEqual(24, len(tokens))
        for earlier, later in zip(tokens, tokens[1:]):
            self.assertLess(earlier, later)


class RedisTest(BackendMixin, testtools.TestCase):
    """redis without persistence: a restart forgets every lock."""

    server_cls = servers.RedisServer


class EtcdTest(BackendMixin, testtools.TestCase):
    """etcd keeps locks across a restart.

    The holder's lease deadline passes while the server is down, and that is
    what it is told.
    """

    server_cls = servers.EtcdServer
    down_for = LEASE + 0.5


class ZookeeperTest(BackendMixin, testtools.TestCase):
    """zookeeper: the session is suspended as soon as the server goes."""

    server_cls = servers.ZookeeperServer

    def server_options(self):
        return {'timeout': str(LEASE)}


class MemcachedTest(BackendMixin, testtools.TestCase):
    """memcached: lease-based like redis, but no fencing token.

    Needs pymemcache; unsafe for active-active (the coordinator warns).
    """

    server_cls = servers.MemcachedServer
    tokens = False

    def setUp(self):
        try:
            import pymemcache  # noqa: F401
        except ImportError:
            raise tests.missing(
                'pymemcache is not installed (extra: memcached)')
        super().setUp()

    def test_warns_at_start(self):
        self.coordinator()
        self.assertIn('memcached is not safe for active-active',
                      self.logs.output)


class NegativeControlTest(testtools.TestCase):
    """Without the lock the chaos checker does see lost increments."""

    def test_unlocked_workers_lose_increments(self):
        workdir = self.useFixture(fixtures.TempDir()).path
        harness = chaos.ChaosHarness(None, workdir, workers=4, count=100,
                                     mode='none', faults=False)
        state = harness.run()
        self.assertEqual(400, sum(state['done'].values()))
        self.assertLess(state['counter'], 400)
