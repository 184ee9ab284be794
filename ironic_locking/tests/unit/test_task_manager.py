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
database (``objects.Node.reserve`` under another host name). Time is a fake
clock that only the injected ``sleep`` advances, so nothing really sleeps.
"""

import fixtures
from ironic.common import exception as ironic_exc
from ironic.conductor import task_manager as ironic_task_manager
from ironic import objects
from ironic.tests.unit.db import base as db_base
from ironic.tests.unit.objects import utils as obj_utils

from ironic_locking import opts
from ironic_locking import task_manager

OTHER_HOST = 'other-conductor'


class FakeTime(object):
    """A clock and a sleep: sleeping advances the clock, and may release."""

    def __init__(self, on_sleep=None):
        self.now = 1000.0
        self.sleeps = []
        self.on_sleep = on_sleep

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(len(self.sleeps))


class RetryingTaskManagerTest(db_base.DbTestCase):

    def setUp(self):
        super().setUp()
        opts.register_opts(task_manager.CONF)
        self.node = obj_utils.create_test_node(self.context)
        self.time = FakeTime()
        self.useFixture(fixtures.MockPatchObject(
            task_manager.TaskManager, 'clock', staticmethod(self.time.clock)))
        self.useFixture(fixtures.MockPatchObject(
            task_manager.TaskManager, 'sleep', staticmethod(self.time.sleep)))
        self.useFixture(fixtures.MockPatchObject(
            task_manager.TaskManager, 'rand', staticmethod(lambda: 0.5)))
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

    def hold(self):
        objects.Node.reserve(self.context, OTHER_HOST, self.node.id)
        self.reserve_calls = 0

    def release_after(self, sleeps):
        def on_sleep(count):
            if count == sleeps:
                objects.Node.release(self.context, OTHER_HOST, self.node.id)
        self.time.on_sleep = on_sleep

    def reservation(self):
        return objects.Node.get_by_id(self.context, self.node.id).reservation

    def acquire(self, **kwargs):
        kwargs.setdefault('purpose', 'unit test')
        return task_manager.acquire(self.context, self.node.uuid,
                                    load_driver=False, **kwargs)

    def retry_lines(self):
        return [line for line in self.logs.output.splitlines()
                if 'retrying the reservation' in line]

    def test_is_ironic_task_manager(self):
        with self.acquire() as task:
            self.assertIsInstance(task, ironic_task_manager.TaskManager)
            self.assertEqual('fake-mini', self.reservation())
            self.assertFalse(task.shared)
        self.assertIsNone(self.reservation())
        self.assertEqual([], self.time.sleeps)

    def test_waits_until_holder_releases(self):
        self.hold()
        self.release_after(4)
        with self.acquire() as task:
            self.assertEqual(self.node.uuid, task.node.uuid)
            self.assertEqual('fake-mini', self.reservation())
        self.assertEqual(5, self.reserve_calls)
        # Equal jitter at rand=0.5: 3/4 of 0.05, 0.1, 0.2, 0.4.
        for expected, slept in zip([0.0375, 0.075, 0.15, 0.3],
                                   self.time.sleeps, strict=True):
            self.assertAlmostEqual(expected, slept)

    def test_each_retry_logged_once_with_node_and_purpose(self):
        self.hold()
        self.release_after(6)
        with self.acquire(purpose='power sync'):
            pass
        lines = self.retry_lines()
        self.assertEqual(6, len(lines))
        for line in lines:
            self.assertIn(self.node.uuid, line)
            self.assertIn('power sync', line)
            self.assertIn(OTHER_HOST, line)
        # Short waits are DEBUG; once a second is at stake, WARNING.
        levels = [line.split()[0] for line in lines]
        self.assertEqual(['DEBUG'] * 5 + ['WARNING'], levels)

    def test_gives_up_after_patience_naming_holder(self):
        self.hold()
        exc = self.assertRaises(ironic_exc.NodeLocked, self.acquire)
        self.assertAlmostEqual(3.0, sum(self.time.sleeps))
        message = str(exc)
        self.assertIn(self.node.uuid, message)
        self.assertIn(OTHER_HOST, message)
        self.assertIn('3.00 seconds', message)
        self.assertIn('unit test', message)
        self.assertIn('%d attempt(s)' % self.reserve_calls, message)
        self.assertEqual(409, exc.code)
        self.assertEqual(OTHER_HOST, self.reservation())

    def test_fixed_strategy_matches_ironic(self):
        self.config(node_locked_retry_strategy=opts.STRATEGY_FIXED,
                    group='conductor')
        self.hold()
        self.assertRaises(ironic_exc.NodeLocked, self.acquire)
        self.assertEqual([1.0, 1.0], self.time.sleeps)
        self.assertEqual(3, self.reserve_calls)

    def test_fixed_strategy_each_retry_is_a_warning(self):
        self.config(node_locked_retry_strategy=opts.STRATEGY_FIXED,
                    group='conductor')
        self.hold()
        self.release_after(1)
        with self.acquire():
            pass
        self.assertEqual(1, len(self.retry_lines()))
        self.assertTrue(self.retry_lines()[0].startswith('WARNING'))

    def test_retry_false_makes_one_attempt(self):
        self.hold()
        self.assertRaises(ironic_exc.NodeLocked, self.acquire, retry=False)
        self.assertEqual(1, self.reserve_calls)
        self.assertEqual([], self.time.sleeps)

    def test_one_attempt_configured_disables_retrying(self):
        self.config(node_locked_retry_attempts=1, group='conductor')
        self.hold()
        exc = self.assertRaises(ironic_exc.NodeLocked, self.acquire)
        self.assertEqual(1, self.reserve_calls)
        self.assertIn('1 attempt(s)', str(exc))

    def test_deadline_cuts_waiting_short(self):
        self.config(node_locked_retry_deadline=0.5, group='conductor')
        self.hold()
        self.assertRaises(ironic_exc.NodeLocked, self.acquire)
        self.assertAlmostEqual(0.5, sum(self.time.sleeps))

    def test_patient_outlasts_patience(self):
        self.hold()
        self.release_after(30)
        with self.acquire(patient=True):
            self.assertEqual('fake-mini', self.reservation())
        self.assertGreater(sum(self.time.sleeps), 3.0)
        self.assertLessEqual(max(self.time.sleeps), 0.5)

    def test_shared_lock_never_waits(self):
        self.hold()
        with self.acquire(shared=True) as task:
            self.assertTrue(task.shared)
        self.assertEqual(0, self.reserve_calls)
        self.assertEqual([], self.time.sleeps)
        self.assertEqual(OTHER_HOST, self.reservation())

    def test_upgrade_lock_retries(self):
        with self.acquire(shared=True) as task:
            self.hold()
            self.release_after(2)
            task.upgrade_lock(purpose='upgrade')
            self.assertFalse(task.shared)
            self.assertEqual('fake-mini', self.reservation())
        self.assertEqual(3, self.reserve_calls)

    def test_upgrade_lock_retry_false(self):
        with self.acquire(shared=True) as task:
            self.hold()
            self.assertRaises(ironic_exc.NodeLocked, task.upgrade_lock,
                              retry=False)
            self.assertTrue(task.shared)
        self.assertEqual(1, self.reserve_calls)

    def test_other_errors_are_not_retried(self):
        exc = self.assertRaises(ironic_exc.NodeNotFound,
                                task_manager.acquire, self.context,
                                'c4e0a5b4-6f1c-4c38-9a0c-6a8a1d1d0c11')
        self.assertIsNotNone(exc)
        self.assertEqual([], self.time.sleeps)

    def test_node_deleted_while_waiting_is_not_retried(self):
        self.hold()

        def delete(count):
            if count == 1:
                self.dbapi.release_node(OTHER_HOST, self.node.id)
                self.dbapi.destroy_node(self.node.id)
        self.time.on_sleep = delete
        self.assertRaises(ironic_exc.NodeNotFound, self.acquire)
        self.assertEqual(1, len(self.time.sleeps))

    def test_require_exclusive_lock_accepts_ours(self):
        @ironic_task_manager.require_exclusive_lock
        def needs_lock(task):
            return task.node.uuid

        with self.acquire() as task:
            self.assertEqual(self.node.uuid, needs_lock(task))
        with self.acquire(shared=True) as task:
            self.assertRaises(ironic_exc.ExclusiveLockRequired,
                              needs_lock, task)
