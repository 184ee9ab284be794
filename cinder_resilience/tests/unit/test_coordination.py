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

"""Unit tests of cinder_resilience.coordination on the real file backend."""

import collections
import logging
import time
from unittest import mock

import fixtures
from oslo_config import cfg
from oslotest import base
from tooz import coordination as tooz_coordination

from cinder_resilience import coordination
from cinder_resilience import exception
from cinder_resilience import opts

Volume = collections.namedtuple('Volume', 'id')


class FileCoordinatorFixture(fixtures.Fixture):
    """A started Coordinator on a private file:// directory."""

    def __init__(self, path, conf=None, **kwargs):
        super().__init__()
        self.path = path
        self.conf = conf or cfg.ConfigOpts()
        self.kwargs = kwargs

    def _setUp(self):
        self.coordinator = coordination.Coordinator(
            prefix='cinder-', conf=self.conf,
            backend_url='file://' + self.path, **self.kwargs)
        self.coordinator.start()
        self.addCleanup(self.coordinator.stop)


class CoordinationTestCase(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.path = self.useFixture(fixtures.TempDir()).path
        self.logs = self.useFixture(fixtures.FakeLogger(
            level=logging.DEBUG, format='%(levelname)s %(message)s'))
        self.lost = []
        self.coord = self.make_coordinator(on_lock_lost=self.lost.append)

    def make_coordinator(self, **kwargs):
        return self.useFixture(
            FileCoordinatorFixture(self.path, **kwargs)).coordinator


class BlockingArgumentTest(base.BaseTestCase):

    def test_conversions(self):
        self.assertIs(True, coordination.blocking_argument(True, None))
        self.assertIs(False, coordination.blocking_argument(False, None))
        self.assertIs(False, coordination.blocking_argument(False, 3))
        self.assertEqual(2.5, coordination.blocking_argument(True, 2.5))
        self.assertEqual(4.0, coordination.blocking_argument(4, None))


class OptionsTest(base.BaseTestCase):

    def test_cinder_backend_url_reused_and_ours_registered(self):
        from cinder import coordination as cinder_coordination
        conf = cfg.ConfigOpts()
        coordination.register_opts(conf)
        coordination.register_opts(conf)
        conf([])
        group = conf.coordination
        self.assertIs(cinder_coordination.coordination_opts[0],
                      conf._groups['coordination']._opts['backend_url']['opt'])
        self.assertEqual(1.0, group.heartbeat)
        self.assertEqual(0.1, group.initial_reconnect_backoff)
        self.assertEqual(60.0, group.max_reconnect_backoff)
        self.assertFalse(group.route_external_locks)
        ours = dict(opts.list_opts())['coordination']
        self.assertNotIn('backend_url', [o.name for o in ours])


class LockTest(CoordinationTestCase):

    def test_get_lock_before_start_raises(self):
        coord = coordination.Coordinator(backend_url='file://' + self.path)
        self.assertRaises(exception.CoordinatorNotStarted,
                          coord.get_lock, 'x')

    def test_exclusive_then_free(self):
        first = self.coord.get_lock('vol-1')
        second = self.coord.get_lock('vol-1')
        self.assertTrue(first.acquire())
        self.assertFalse(second.acquire(blocking=False))
        self.assertFalse(second.acquire(timeout=0.05))
        self.assertTrue(first.release())
        self.assertTrue(second.acquire(blocking=False))
        self.assertTrue(second.release())
        self.assertEqual('cinder-vol-1', first.name)

    def test_with_statement(self):
        with self.coord.get_lock('a') as lock:
            self.assertTrue(lock.acquired)
            self.assertEqual([lock], self.coord.held_locks())
        self.assertFalse(lock.acquired)
        self.assertEqual([], self.coord.held_locks())

    def test_fencing_tokens_grow_across_coordinators(self):
        other = self.make_coordinator()
        tokens = []
        for coord in (self.coord, other, self.coord, other):
            with coord.get_lock('vol-2') as lock:
                tokens.append(lock.fencing_token)
                self.assertEqual(tokens[-1], lock.fencing_token)
        self.assertEqual(sorted(set(tokens)), tokens)
        self.assertEqual(4, len(tokens))

    def test_timeout_exception_of_a_driver_means_not_acquired(self):
        lock = self.coord.get_lock('vol-t')
        lock.tooz_lock = mock.Mock()
        lock.tooz_lock.acquire.side_effect = KeyError('driver timeout')
        self.coord.timeout_errors = (KeyError,)
        self.assertFalse(lock.acquire(timeout=2))
        lock.tooz_lock.acquire.assert_called_once_with(2.0)
        self.assertFalse(lock.acquired)
        self.assertEqual([], self.coord.held_locks())

    def test_lease_deadline_set_on_lease_backends(self):
        lock = self.coord.get_lock('vol-l')
        lock.acquire()
        self.assertIsNone(lock.deadline)
        lock.release()
        self.coord.lease_seconds = 30.0
        before = time.monotonic()
        lock.acquire()
        self.assertGreaterEqual(lock.deadline, before + 27.0)
        self.assertLessEqual(lock.deadline, time.monotonic() + 30.0)
        lock.release()

    def test_token_of_unheld_lock_raises(self):
        lock = self.coord.get_lock('vol-3')
        self.assertRaises(exception.LockLost, lambda: lock.fencing_token)

    def test_release_refused_is_a_lost_lock(self):
        lock = self.coord.get_lock('vol-4')
        lock.add_lost_callback(self.lost.append)
        lock.acquire()
        lock.tooz_lock.release()  # released behind the holder's back
        self.assertFalse(lock.release())
        self.assertTrue(lock.lost)
        self.assertEqual([lock, lock], self.lost)
        self.assertIn('ERROR Distributed lock cinder-vol-4 was lost',
                      self.logs.output)

    def test_session_loss_marks_every_held_lock(self):
        held = [self.coord.get_lock(n) for n in ('a', 'b')]
        for lock in held:
            lock.acquire()
        spare = self.coord.get_lock('c')
        self.coord._session_lost('zookeeper session suspended')
        self.assertEqual(set(held), set(self.lost))
        self.assertFalse(spare.lost)
        self.assertRaises(exception.LockLost, held[0].check)
        self.assertRaises(exception.LockLost, lambda: held[0].fencing_token)
        # Releasing a lost lock frees it but reports it was not held.
        self.assertFalse(held[0].release())
        self.assertTrue(spare.acquire(blocking=False))

    def test_session_lost_during_release_is_reported(self):
        # kazoo's release swallows NoNodeError: after a pause past the
        # session timeout it reconnects and "releases" a node that is gone,
        # calling the session listeners while release() is under way.
        lock = self.coord.get_lock('e')
        lock.acquire()
        original = lock.tooz_lock.release

        def release_after_session_loss():
            self.coord._session_lost('zookeeper session suspended')
            return original()

        lock.tooz_lock.release = release_after_session_loss
        self.assertFalse(lock.release())
        self.assertEqual([lock], self.lost)
        self.assertIn('zookeeper session suspended', lock.lost_reason)

    def test_broken_callback_does_not_stop_others(self):
        lock = self.coord.get_lock('d')
        lock.add_lost_callback(mock.Mock(side_effect=RuntimeError('boom')))
        lock.acquire()
        lock.mark_lost('test')
        self.assertEqual([lock], self.lost)
        self.assertIn('Lost-lock callback', self.logs.output)

    def test_stop_releases_held_locks(self):
        other = self.make_coordinator()
        lock = other.get_lock('e')
        lock.acquire()
        other.stop()
        self.assertFalse(lock.acquired)
        self.assertRaises(exception.CoordinatorNotStarted, lock.acquire)
        self.assertTrue(self.coord.get_lock('e').acquire(blocking=False))

    def test_stop_survives_backend_errors(self):
        other = self.make_coordinator()
        lock = other.get_lock('f')
        lock.acquire()
        lock.tooz_lock.release = mock.Mock(side_effect=OSError('gone'))
        other.coordinator.stop = mock.Mock(side_effect=OSError('gone'))
        other.stop()
        self.assertFalse(other.started)
        self.assertTrue(lock.lost)
        self.assertIn('did not acknowledge the disconnect', self.logs.output)

    def test_file_backend_warns_at_start(self):
        self.assertIn('is not safe for active-active', self.logs.output)
        self.assertIn('file:// locks in %s' % self.path, self.logs.output)


class SynchronizedTest(CoordinationTestCase):

    def test_templated_names_sorted_and_deduplicated(self):
        taken = []
        real = self.coord.get_lock

        def spy(name):
            taken.append(name)
            return real(name)

        self.coord.get_lock = spy

        @coordination.synchronized('{vol.id}-{f_name}', 'a-{mode}',
                                   '{vol.id}-{f_name}', coordinator=self.coord)
        def resize(vol, mode):
            return [lock.name for lock in self.coord.held_locks()]

        held = resize(Volume('z9'), mode='fast')
        self.assertEqual(['a-fast', 'z9-resize'], taken)
        self.assertEqual({'cinder-a-fast', 'cinder-z9-resize'}, set(held))
        self.assertEqual([], self.coord.held_locks())

    def test_failed_nonblocking_acquire_does_not_run_body(self):
        calls = []

        @coordination.synchronized('{name}', blocking=False,
                                   coordinator=self.coord)
        def work(name):
            calls.append(name)

        blocker = self.make_coordinator().get_lock('v1')
        blocker.acquire()
        exc = self.assertRaises(exception.LockAcquireFailed, work, 'v1')
        self.assertIsInstance(exc, tooz_coordination.LockAcquireFailed)
        self.assertIsInstance(exc, exception.CinderResilienceException)
        self.assertEqual([], calls)
        self.assertIn('cinder-v1', str(exc))
        self.assertIn('non-blocking', str(exc))
        blocker.release()
        work('v1')
        self.assertEqual(['v1'], calls)

    def test_failed_timed_acquire_releases_locks_taken(self):
        calls = []

        @coordination.synchronized('a', 'b', timeout=0.05,
                                   coordinator=self.coord)
        def work():
            calls.append(1)

        blocker = self.make_coordinator().get_lock('b')
        blocker.acquire()
        exc = self.assertRaises(exception.LockAcquireFailed, work)
        self.assertIn('timeout 0.05s', str(exc))
        self.assertEqual([], calls)
        self.assertTrue(self.coord.get_lock('a').acquire(blocking=False))

    def test_body_exception_releases(self):
        @coordination.synchronized('{n}', coordinator=self.coord)
        def fail(n):
            raise ValueError(n)

        self.assertRaises(ValueError, fail, 'q')
        self.assertEqual([], self.coord.held_locks())
        self.assertTrue(self.coord.get_lock('q').acquire(blocking=False))

    def test_default_coordinator_looked_up_at_call_time(self):
        @coordination.synchronized('late')
        def work():
            return self.coord.held_locks()[0].name

        self.useFixture(fixtures.MockPatchObject(
            coordination, 'COORDINATOR', self.coord))
        self.assertEqual('cinder-late', work())

    def test_release_error_is_logged_not_raised(self):
        @coordination.synchronized('r', coordinator=self.coord)
        def work():
            lock = self.coord.held_locks()[0]
            lock.tooz_lock.release = mock.Mock(side_effect=OSError('disk'))
            return 'done'

        self.assertEqual('done', work())
        self.assertIn('Failed to release lock cinder-r', self.logs.output)
        self.assertEqual(1, len(self.lost))


class UnreachableBackendTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.logs = self.useFixture(fixtures.FakeLogger(
            level=logging.WARNING, format='%(levelname)s %(message)s'))

    def test_start_fails_fast_like_upstream(self):
        driver = mock.Mock()
        driver.start.side_effect = tooz_coordination.ToozConnectionError('x')
        coord = coordination.Coordinator(
            conf=cfg.ConfigOpts(), backend_url='redis://:pw@127.0.0.1:1')
        with mock.patch.object(tooz_coordination, 'get_coordinator',
                               return_value=driver) as get:
            self.assertRaises(tooz_coordination.ToozConnectionError,
                              coord.start)
        self.assertEqual(1, driver.start.call_count)
        self.assertFalse(coord.started)
        # The lease option is passed; the secret URL is never logged.
        self.assertEqual('redis://:pw@127.0.0.1:1?lock_timeout=2',
                         get.call_args[0][0])
        self.assertIn('redis unreachable at start', self.logs.output)
        self.assertNotIn('pw', self.logs.output)

    def test_etcd_client_errors_are_translated_at_start(self):
        from etcd3gw import exceptions as etcd_exc
        driver = mock.Mock()
        driver.start.side_effect = etcd_exc.ConnectionFailedError('refused')
        coord = coordination.Coordinator(
            conf=cfg.ConfigOpts(), backend_url='etcd3+http://127.0.0.1:1')
        with mock.patch.object(tooz_coordination, 'get_coordinator',
                               return_value=driver):
            self.assertRaises(tooz_coordination.ToozConnectionError,
                              coord.start)


class DisconnectedAcquireTest(CoordinationTestCase):
    """A lock requested while the backend is unreachable."""

    def setUp(self):
        super().setUp()
        self.waits = []
        self.coord._waiter = self.waits.append
        self.lock = self.coord.get_lock('vol')
        self.tooz_acquire = self.lock.tooz_lock.acquire
        self.lock.tooz_lock.acquire = mock.Mock(
            side_effect=tooz_coordination.ToozConnectionError('down'))

    def test_non_blocking_fails_without_waiting(self):
        self.assertFalse(self.lock.acquire(blocking=False))
        self.assertEqual([], self.waits)
        self.assertFalse(self.lock.acquired)

    def test_blocking_waits_with_backoff_until_reachable(self):
        self.lock.tooz_lock.acquire.side_effect = [
            tooz_coordination.ToozConnectionError('down')] * 3 + [True]
        self.assertTrue(self.lock.acquire())
        self.assertEqual(3, len(self.waits))
        self.assertTrue(all(0.1 <= w <= 60 for w in self.waits))
        self.assertIn('retrying in', self.logs.output)

    def test_timed_gives_up_at_its_deadline(self):
        clock = [100.0]
        self.useFixture(fixtures.MockPatch(
            'cinder_resilience.coordination.time.monotonic',
            side_effect=lambda: clock[0]))
        self.useFixture(fixtures.MockPatch(
            'cinder_resilience.locks.time.monotonic',
            side_effect=lambda: clock[0]))
        self.coord._waiter = lambda d: clock.__setitem__(0, clock[0] + d)
        self.assertFalse(self.lock.acquire(timeout=5))
        self.assertGreaterEqual(clock[0], 105.0)
        self.assertLess(clock[0], 106.0)
        # tooz got the time left, never more than asked.
        for call in self.lock.tooz_lock.acquire.call_args_list:
            self.assertLessEqual(call[0][0], 5.0)

    def test_synchronized_body_never_runs_unlocked(self):
        ran = []

        @coordination.synchronized('vol', blocking=False,
                                   coordinator=self.coord)
        def body():
            ran.append(1)

        self.coord.lock_for = lambda name, lock_class=None: self.lock
        self.assertRaises(exception.LockAcquireFailed, body)
        self.assertEqual([], ran)

    def test_stop_interrupts_a_waiting_acquire(self):
        def stop_while_waiting(delay):
            self.coord.stop()
            return True

        self.coord._waiter = stop_while_waiting
        self.assertRaises(exception.CoordinatorNotStarted, self.lock.acquire)
