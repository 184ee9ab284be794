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

"""The retrying TaskManager against ironic's real classes and sqlite DB.

Another conductor's hold on the node is a real reservation in ironic's test
database (``objects.Node.reserve`` under another host name); a hold in this
conductor is one of our own task managers. Time is a fake clock that only
the injected ``wait_for_turn`` advances, and only when nothing wakes the
waiter, so nothing really sleeps.
"""

import fixtures
from ironic.common import exception as ironic_exc
from ironic.conductor import task_manager as ironic_task_manager
from ironic import objects
from ironic.tests.unit.db import base as db_base
from ironic.tests.unit.objects import utils as obj_utils

from ironic_locking import handoff
from ironic_locking import opts
from ironic_locking import task_manager

OTHER_HOST = 'other-conductor'


class FakeTime(object):
    """A clock and a wait: a wait that nothing ends advances the clock."""

    def __init__(self):
        self.now = 1000.0
        self.waits = []
        self.slept = 0.0
        self.on_wait = None

    def clock(self):
        return self.now

    def wait_for_turn(self, event, timeout):
        self.waits.append(timeout)
        if self.on_wait:
            self.on_wait(len(self.waits))
        if event.is_set():
            return True
        self.now += timeout
        self.slept += timeout
        return False


class RetryingTaskManagerTest(db_base.DbTestCase):

    def setUp(self):
        super().setUp()
        opts.register_opts(task_manager.CONF)
        self.node = obj_utils.create_test_node(self.context)
        self.time = FakeTime()
        self.registry = handoff.Registry()
        for name, value in [('clock', staticmethod(self.time.clock)),
                            ('wait_for_turn',
                             staticmethod(self.time.wait_for_turn)),
                            ('rand', staticmethod(lambda: 0.5)),
                            ('handoff', self.registry)]:
            self.useFixture(fixtures.MockPatchObject(
                task_manager.TaskManager, name, value))
        self.reserve_calls = 0
        real_reserve = objects.Node.reserve

        def counting_reserve(*args, **kwargs):
            self.reserve_calls += 1
            return real_reserve(*args, **kwargs)
        self.useFixture(fixtures.MockPatchObject(
            objects.Node, 'reserve', counting_reserve))
        # ironic's first schema migration runs alembic's fileConfig(),
        # which disables every logger that existed before it; ours did.
        self.useFixture(fixtures.MockPatchObject(
            task_manager.LOG.logger, 'disabled', False))
        self.logs = self.useFixture(fixtures.FakeLogger(
            name='ironic_locking.task_manager', level='DEBUG',
            format='%(levelname)s %(message)s'))

    def hold_elsewhere(self):
        objects.Node.reserve(self.context, OTHER_HOST, self.node.id)
        self.reserve_calls = 0

    def release_elsewhere(self):
        objects.Node.release(self.context, OTHER_HOST, self.node.id)

    def on_wait(self, number, action):
        def on_wait(count):
            if count == number:
                action()
        self.time.on_wait = on_wait

    def hold_here(self):
        holder = self.acquire(purpose='holder')
        self.reserve_calls = 0
        return holder

    def reservation(self):
        return objects.Node.get_by_id(self.context, self.node.id).reservation

    def acquire(self, **kwargs):
        kwargs.setdefault('purpose', 'unit test')
        return task_manager.acquire(self.context, self.node.uuid,
                                    load_driver=False, **kwargs)

    def lines(self, level=None, text=''):
        return [line for line in self.logs.output.splitlines()
                if text in line and (level is None or
                                     line.startswith(level + ' '))]

    def test_is_ironic_task_manager(self):
        with self.acquire() as task:
            self.assertIsInstance(task, ironic_task_manager.TaskManager)
            self.assertEqual('fake-mini', self.reservation())
            self.assertFalse(task.shared)
        self.assertIsNone(self.reservation())
        self.assertEqual([], self.time.waits)
        self.assertEqual(set(), self.registry.nodes())

    # A holder in another conductor: polls, with ironic's semantics.

    def test_polls_until_other_conductor_releases(self):
        self.hold_elsewhere()
        self.on_wait(1, self.release_elsewhere)
        with self.acquire() as task:
            self.assertEqual(self.node.uuid, task.node.uuid)
            self.assertEqual('fake-mini', self.reservation())
        self.assertEqual(2, self.reserve_calls)
        # rand=0.5: between half and all of the 1 s interval.
        self.assertEqual([0.75], self.time.waits)

    def test_gives_up_after_ironic_attempts_and_patience(self):
        self.hold_elsewhere()
        exc = self.assertRaises(ironic_exc.NodeLocked, self.acquire)
        # ironic: 3 attempts, the last 2 s after the first.
        self.assertEqual(3, self.reserve_calls)
        self.assertAlmostEqual(2.0, self.time.slept)
        self.assertEqual([0.75, 1.25], self.time.waits)
        message = str(exc)
        for text in (self.node.uuid, OTHER_HOST, '3 attempt(s)',
                     '2.00 seconds', 'unit test'):
            self.assertIn(text, message)
        self.assertEqual(409, exc.code)
        self.assertEqual(OTHER_HOST, self.reservation())
        self.assertEqual(set(), self.registry.nodes())

    def test_logs_debug_per_retry_and_one_warning_at_give_up(self):
        self.hold_elsewhere()
        self.assertRaises(ironic_exc.NodeLocked, self.acquire)
        retries = self.lines(text='retrying the reservation')
        self.assertEqual(2, len(retries))
        self.assertEqual(2, len(self.lines('DEBUG', 'retrying')))
        warnings = self.lines('WARNING')
        self.assertEqual(1, len(warnings))
        for text in ('gave up', OTHER_HOST, '3 attempt(s)', '2.00 seconds'):
            self.assertIn(text, warnings[0])

    def test_ironic_default_interval_and_attempts(self):
        # What ironic's own test checks, at ironic's defaults.
        self.config(node_locked_retry_attempts=3,
                    node_locked_retry_interval=1, group='conductor')
        self.hold_elsewhere()
        self.assertRaises(ironic_exc.NodeLocked, self.acquire)
        self.assertEqual(3, self.reserve_calls)

    def test_fixed_strategy_is_ironic_schedule(self):
        self.config(node_locked_retry_strategy=opts.STRATEGY_FIXED,
                    group='conductor')
        self.hold_elsewhere()
        self.assertRaises(ironic_exc.NodeLocked, self.acquire)
        self.assertEqual([1.0, 1.0], self.time.waits)
        self.assertEqual(3, self.reserve_calls)

    def test_zero_interval_makes_ironic_attempts_at_once(self):
        self.config(node_locked_retry_attempts=4,
                    node_locked_retry_interval=0, group='conductor')
        self.hold_elsewhere()
        self.assertRaises(ironic_exc.NodeLocked, self.acquire)
        self.assertEqual(4, self.reserve_calls)
        self.assertEqual(0.0, self.time.slept)

    def test_retry_false_makes_one_attempt(self):
        self.hold_elsewhere()
        self.assertRaises(ironic_exc.NodeLocked, self.acquire, retry=False)
        self.assertEqual(1, self.reserve_calls)
        self.assertEqual([], self.time.waits)

    def test_one_attempt_configured_disables_retrying(self):
        self.config(node_locked_retry_attempts=1, group='conductor')
        self.hold_elsewhere()
        exc = self.assertRaises(ironic_exc.NodeLocked, self.acquire)
        self.assertEqual(1, self.reserve_calls)
        self.assertIn('1 attempt(s)', str(exc))

    def test_deadline_cuts_waiting_short(self):
        self.config(node_locked_retry_attempts=10,
                    node_locked_retry_deadline=0.5, group='conductor')
        self.hold_elsewhere()
        self.assertRaises(ironic_exc.NodeLocked, self.acquire)
        self.assertAlmostEqual(0.5, self.time.slept)

    def test_patient_outlasts_patience(self):
        self.hold_elsewhere()
        self.on_wait(30, self.release_elsewhere)
        with self.acquire(patient=True):
            self.assertEqual('fake-mini', self.reservation())
        self.assertEqual(31, self.reserve_calls)
        self.assertEqual([0.75] * 29, self.time.waits[:-1])

    def test_patient_warns_once_a_minute(self):
        self.hold_elsewhere()
        # 200 waits of 0.75 s: 150 s.
        self.on_wait(200, self.release_elsewhere)
        with self.acquire(patient=True):
            pass
        warnings = self.lines('WARNING', 'still locked')
        self.assertEqual(2, len(warnings))
        self.assertIn(OTHER_HOST, warnings[0])
        self.assertEqual([], self.lines('WARNING', 'gave up'))

    # A holder in this conductor: the release hands the node over.

    def test_release_here_hands_over_at_once(self):
        holder = self.hold_here()
        self.on_wait(1, holder.release_resources)
        with self.acquire() as task:
            self.assertEqual('fake-mini', self.reservation())
            self.assertFalse(task.shared)
        # One query: no attempt was spent while the holder had the node.
        self.assertEqual(1, self.reserve_calls)
        self.assertEqual(0.0, self.time.slept)
        self.assertEqual(set(), self.registry.nodes())

    def test_waits_for_holder_here_for_ironic_patience(self):
        self.hold_here()
        exc = self.assertRaises(ironic_exc.NodeLocked, self.acquire)
        # It waited for the release, up to ironic's 2 s, then looked once.
        self.assertEqual([2.0], self.time.waits)
        self.assertEqual(1, self.reserve_calls)
        self.assertIn('fake-mini', str(exc))
        self.assertIn('2.00 seconds', str(exc))

    def test_patient_waits_for_holder_here_until_release(self):
        holder = self.hold_here()
        self.on_wait(3, holder.release_resources)
        with self.acquire(patient=True):
            pass
        # Two minute-long waits without a release, each followed by a
        # look at the database, then the release.
        self.assertEqual([60.0, 60.0, 60.0], self.time.waits)
        self.assertEqual(3, self.reserve_calls)
        self.assertEqual(2, len(self.lines('WARNING', 'still locked')))

    def test_wake_up_is_not_an_attempt(self):
        holder = self.hold_here()

        def released_then_taken_elsewhere():
            holder.release_resources()
            objects.Node.reserve(self.context, OTHER_HOST, self.node.id)
            self.reserve_calls -= 1
        self.on_wait(1, released_then_taken_elsewhere)
        exc = self.assertRaises(ironic_exc.NodeLocked, self.acquire)
        # The attempt after the wake-up was free; ironic's 3 followed.
        self.assertEqual(4, self.reserve_calls)
        self.assertIn('4 attempt(s)', str(exc))
        self.assertIn(OTHER_HOST, str(exc))

    def test_downgrade_hands_over(self):
        holder = self.hold_here()
        ticket = self.registry.arrive(self.node.uuid)
        self.assertFalse(ticket.event.is_set())
        holder.downgrade_lock()
        self.assertTrue(ticket.event.is_set())
        self.assertIsNone(self.reservation())
        holder.release_resources()

    def test_release_here_after_failed_load_hands_over(self):
        holder = self.hold_here()
        ticket = self.registry.arrive(self.node.uuid)
        self.useFixture(fixtures.MockPatchObject(
            objects.Node, 'release', side_effect=ironic_exc.NodeNotFound(
                node=self.node.uuid)))
        holder.release_resources()
        self.assertTrue(ticket.event.is_set())

    def test_release_is_signalled_once(self):
        holder = self.hold_here()
        holder.release_resources()
        ticket = self.registry.arrive(self.node.uuid)
        self.assertTrue(ticket.event.is_set())
        ticket.event.clear()
        self.registry.acquired(ticket, self.node.uuid)
        second = self.registry.arrive(self.node.uuid)
        holder.release_resources()
        self.assertFalse(second.event.is_set())

    # ironic's other modes.

    def test_shared_lock_never_waits(self):
        self.hold_elsewhere()
        with self.acquire(shared=True) as task:
            self.assertTrue(task.shared)
        self.assertEqual(0, self.reserve_calls)
        self.assertEqual([], self.time.waits)
        self.assertEqual(OTHER_HOST, self.reservation())

    def test_upgrade_lock_retries(self):
        with self.acquire(shared=True) as task:
            self.hold_elsewhere()
            self.on_wait(2, self.release_elsewhere)
            task.upgrade_lock(purpose='upgrade')
            self.assertFalse(task.shared)
            self.assertEqual('fake-mini', self.reservation())
        self.assertEqual(3, self.reserve_calls)
        self.assertIsNone(self.reservation())

    def test_upgrade_lock_retry_false(self):
        with self.acquire(shared=True) as task:
            self.hold_elsewhere()
            self.assertRaises(ironic_exc.NodeLocked, task.upgrade_lock,
                              retry=False)
            self.assertTrue(task.shared)
        self.assertEqual(1, self.reserve_calls)

    def test_other_errors_are_not_retried(self):
        self.assertRaises(ironic_exc.NodeNotFound,
                          task_manager.acquire, self.context,
                          'c4e0a5b4-6f1c-4c38-9a0c-6a8a1d1d0c11')
        self.assertEqual([], self.time.waits)

    def test_node_deleted_while_waiting_is_not_retried(self):
        self.hold_elsewhere()

        def delete():
            self.dbapi.release_node(OTHER_HOST, self.node.id)
            self.dbapi.destroy_node(self.node.id)
        self.on_wait(1, delete)
        self.assertRaises(ironic_exc.NodeNotFound, self.acquire)
        self.assertEqual(1, len(self.time.waits))
        self.assertEqual(set(), self.registry.nodes())

    def test_require_exclusive_lock_accepts_ours(self):
        @ironic_task_manager.require_exclusive_lock
        def needs_lock(task):
            return task.node.uuid

        with self.acquire() as task:
            self.assertEqual(self.node.uuid, needs_lock(task))
        with self.acquire(shared=True) as task:
            self.assertRaises(ironic_exc.ExclusiveLockRequired,
                              needs_lock, task)
