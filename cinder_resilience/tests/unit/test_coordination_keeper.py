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

"""Lease keeper and backoff, with an injected clock (no real waiting)."""

import logging

import fixtures
from oslotest import base
from tooz import coordination as tooz_coordination

from cinder_resilience import coordination
from cinder_resilience import lease_keeper


class FakeClock(object):
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class ScriptedBackend(object):
    """Answers refresh() from a script: True, False or an exception."""

    name = 'scripted'
    lease_based = True
    lease_seconds = 10.0

    def __init__(self):
        self.answers = []
        self.refreshed = []

    def refresh(self, tooz_lock):
        self.refreshed.append(tooz_lock)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class FakeCoordinator(object):
    def __init__(self, backend):
        self.backend = backend
        self.locks = []
        self.lost_callbacks = []

    def held_locks(self):
        return list(self.locks)

    def is_held(self, lock):
        return lock in self.locks


class BackoffTest(base.BaseTestCase):

    def test_bounds_and_growth(self):
        backoff = lease_keeper.Backoff(0.1, 5.0, uniform=lambda a, b: b)
        delays = [backoff.next() for _ in range(6)]
        self.assertEqual([0.3, 0.9, 2.7, 5.0, 5.0, 5.0],
                         [round(d, 6) for d in delays])
        backoff.reset()
        self.assertAlmostEqual(0.3, backoff.next())

    def test_low_draw_stays_at_initial(self):
        backoff = lease_keeper.Backoff(0.5, 2.0, uniform=lambda a, b: a)
        self.assertEqual([0.5, 0.5], [backoff.next(), backoff.next()])

    def test_max_below_initial_is_raised(self):
        self.assertEqual(3.0, lease_keeper.Backoff(3.0, 1.0).maximum)

    def test_real_jitter_within_bounds(self):
        backoff = lease_keeper.Backoff(0.1, 1.0)
        for _ in range(50):
            self.assertTrue(0.1 <= backoff.next() <= 1.0)

    def test_beat_interval(self):
        self.assertEqual(1.0, lease_keeper.beat_interval(1.0, 30))
        self.assertEqual(1.0, lease_keeper.beat_interval(5.0, 3))
        self.assertEqual(2.0, lease_keeper.beat_interval(2.0, None))


class LeaseKeeperTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.logs = self.useFixture(fixtures.FakeLogger(
            level=logging.INFO, format='%(levelname)s %(message)s'))
        self.clock = FakeClock()
        self.backend = ScriptedBackend()
        self.coord = FakeCoordinator(self.backend)
        self.lost = []
        self.coord.lost_callbacks.append(self.lost.append)
        self.keeper = lease_keeper.LeaseKeeper(
            self.coord, 1.0, lease_keeper.Backoff(0.5, 4.0,
                                                  uniform=lambda a, b: b),
            clock=self.clock)

    def hold(self, name):
        lock = coordination.Lock(self.coord, name, object())
        lock.acquired = True
        lock.deadline = self.clock.now + 10.0
        self.coord.locks.append(lock)
        return lock

    def test_successful_refresh_extends_deadline(self):
        lock = self.hold('a')
        self.backend.answers = [True]
        self.clock.now += 3
        self.assertEqual(1.0, self.keeper.beat())
        self.assertEqual(113.0, lock.deadline)
        self.assertFalse(lock.lost)

    def test_not_owner_is_lost_at_once(self):
        lock = self.hold('b')
        self.backend.answers = [False]
        self.keeper.beat()
        self.assertTrue(lock.lost)
        self.assertEqual([lock], self.lost)
        self.assertIn('ERROR Distributed lock b was lost', self.logs.output)
        # A lost lock is not refreshed again.
        self.keeper.beat()
        self.assertEqual(1, len(self.backend.refreshed))

    def test_unreachable_backend_loses_lock_at_deadline(self):
        lock = self.hold('c')
        down = tooz_coordination.ToozConnectionError('connection refused')
        self.backend.answers = [down, down, down]
        self.clock.now += 5
        first = self.keeper.beat()
        self.assertFalse(lock.lost)
        self.assertEqual(1.5, first)
        self.assertEqual(1, self.logs.output.count('Cannot refresh'))
        self.clock.now += 4.9
        # Next wait never goes past the lease deadline.
        self.assertAlmostEqual(0.1, self.keeper.beat())
        self.assertFalse(lock.lost)
        self.clock.now += 0.1
        self.keeper.beat()
        self.assertTrue(lock.lost)
        self.assertIn('no lease refresh succeeded for 10.0s',
                      lock.lost_reason)
        self.assertEqual(1, self.logs.output.count('Cannot refresh'))

    def test_recovery_resets_backoff(self):
        lock = self.hold('d')
        down = tooz_coordination.ToozConnectionError('down')
        self.backend.answers = [down, down, True, down]
        self.assertEqual(1.5, self.keeper.beat())
        self.assertEqual(4.0, self.keeper.beat())
        self.assertEqual(1.0, self.keeper.beat())
        self.assertIn('refresh works again', self.logs.output)
        self.assertEqual(1.5, self.keeper.beat())
        self.assertFalse(lock.lost)

    def test_released_meanwhile_is_not_reported(self):
        lock = self.hold('e')
        self.backend.answers = [False]
        real = self.coord.held_locks
        self.coord.held_locks = lambda: real()
        snapshot = real()
        self.coord.held_locks = lambda: snapshot
        self.coord.locks.remove(lock)
        self.keeper.beat()
        self.assertFalse(lock.lost)

    def test_thread_stops_promptly(self):
        keeper = lease_keeper.LeaseKeeper(
            self.coord, 30.0, lease_keeper.Backoff(0.1, 1.0))
        keeper.start()
        keeper.stop()
        self.assertIsNone(keeper._thread)
