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

"""cinder's own coordinator served by ours (real cinder, file backend)."""

from unittest import mock

from cinder import coordination as cinder_coordination
import fixtures
from oslo_concurrency import lockutils
from oslo_config import cfg
from oslotest import base
from tooz import coordination as tooz_coordination

from cinder_resilience import coordination
from cinder_resilience import coordination_service
from cinder_resilience import exception
from cinder_resilience import external_locks
from cinder_resilience import host_patches


class RecordingManager(object):
    def __init__(self, events):
        self.events = events

    def init_host(self, service_id=None, added_to_cluster=None):
        self.events.append(('init_host', service_id))

    def reset(self):
        self.events.append(('reset', None))


class Manager(coordination_service.CoordinationMixin, RecordingManager):

    def stop_coordination(self):
        self.events.append(('stop_coordination', None))
        super().stop_coordination()


class CinderCoordinatorTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.path = self.useFixture(fixtures.TempDir()).path
        self.useFixture(fixtures.FakeLogger())
        coordination.register_opts(cfg.CONF)
        cfg.CONF.set_override('backend_url', 'file://' + self.path,
                              'coordination')
        self.addCleanup(cfg.CONF.clear_override, 'backend_url',
                        'coordination')
        self.addCleanup(cfg.CONF.clear_override, 'route_external_locks',
                        'coordination')
        self.upstream = cinder_coordination.COORDINATOR
        self.before = dict(vars(self.upstream))
        self.addCleanup(host_patches.uninstall_all)
        self.addCleanup(self.upstream.stop)
        self.ours = coordination.Coordinator(prefix='cinder-')
        self.addCleanup(self.ours.stop)
        self.events = []

    def make_manager(self):
        Manager.coordinator = self.ours
        self.addCleanup(setattr, Manager, 'coordinator', None)
        return Manager(self.events)

    def test_cinder_locks_are_ours_and_stop_undoes_everything(self):
        self.make_manager()
        self.assertIsInstance(cinder_coordination.coordination,
                              host_patches.ToozForCinder)
        self.upstream.start()     # what cinder's Service.start() does
        self.assertTrue(coordination_service.routed())
        self.assertTrue(self.ours.started)
        lock = self.upstream.get_lock('vol-1-delete_volume')
        self.assertIsInstance(lock, coordination_service.CinderLock)
        self.assertEqual('cinder-vol-1-delete_volume', lock.name)
        self.upstream.stop()      # what cinder's Service.stop() does
        self.assertFalse(self.ours.started)
        self.assertIs(tooz_coordination, cinder_coordination.coordination)
        self.assertFalse(host_patches.CINDER_COORDINATOR.installed)
        self.assertEqual([('stop_coordination', None)], self.events)
        after = dict(vars(self.upstream))
        after.pop('_file_path'), self.before.pop('_file_path')
        self.assertEqual(self.before, after)

    def test_synchronized_bound_at_import_uses_ours(self):
        self.make_manager()
        self.upstream.start()

        # Decorated like cinder's manager: coordinator=COORDINATOR bound.
        @cinder_coordination.synchronized('{vol}-delete_volume')
        def delete(vol):
            return [held.name for held in self.ours.held_locks()]

        self.assertEqual(['cinder-v1-delete_volume'], delete('v1'))
        self.assertEqual([], self.ours.held_locks())

    def test_failed_nonblocking_acquire_does_not_run_the_body(self):
        self.make_manager()
        self.upstream.start()
        ran = []

        @cinder_coordination.synchronized('{vol}', blocking=False)
        def body(vol):
            ran.append(vol)

        # A stock cinder coordinator elsewhere holds the very same key.
        stock = cinder_coordination.Coordinator(prefix='cinder-')
        self.addCleanup(stock.stop)
        with mock.patch.object(cinder_coordination, 'coordination',
                               tooz_coordination):
            stock.start()
        held = stock.get_lock('v2')
        self.assertTrue(held.acquire(blocking=False))
        self.assertRaises(tooz_coordination.LockAcquireFailed, body, 'v2')
        self.assertEqual([], ran)
        with self.upstream.get_lock('v3'):
            # ... and ours excludes the stock one.
            self.assertFalse(stock.get_lock('v3').acquire(blocking=False))
        held.release()
        body('v2')
        self.assertEqual(['v2'], ran)

    def test_timed_acquire_raises(self):
        self.make_manager()
        self.upstream.start()
        other = coordination.Coordinator(
            prefix='cinder-', backend_url='file://' + self.path)
        self.addCleanup(other.stop)
        other.start()
        other.get_lock('v').acquire()
        self.assertRaises(exception.LockAcquireFailed,
                          self.upstream.get_lock('v').acquire, 0.01)

    def test_already_started_stock_coordinator_is_taken_over(self):
        self.upstream.start()
        self.assertFalse(coordination_service.routed())
        self.make_manager()
        self.assertTrue(coordination_service.routed())
        self.assertTrue(self.ours.started)

    def test_other_coordinator_instances_keep_tooz(self):
        self.make_manager()
        other = cinder_coordination.Coordinator(prefix='cinder-')
        self.addCleanup(other.stop)
        other.start()
        self.assertNotIsInstance(other.coordinator,
                                 coordination_service.CinderDriver)
        self.assertFalse(self.ours.started)

    def test_class_level_mocks_still_mock(self):
        # cinder's unit tests mock Coordinator.get_lock on the class.
        self.make_manager()
        self.upstream.start()
        with mock.patch.object(cinder_coordination.Coordinator,
                               'get_lock') as get_lock:
            self.upstream.get_lock('x')
        get_lock.assert_called_once_with('x')

    def test_reset_enables_again_after_stop(self):
        manager = self.make_manager()
        self.upstream.start()
        self.upstream.stop()
        self.assertFalse(host_patches.CINDER_COORDINATOR.installed)
        manager.reset()
        self.assertIn(('reset', None), self.events)
        self.upstream.start()
        self.assertTrue(coordination_service.routed())

    def test_stop_coordination_alone_stops_both(self):
        manager = self.make_manager()
        self.upstream.start()
        manager.stop_coordination()
        self.assertFalse(self.upstream.started)
        self.assertFalse(self.ours.started)
        self.assertFalse(host_patches.CINDER_COORDINATOR.installed)

    def test_init_host_logs_which_coordinator_serves(self):
        logs = self.useFixture(fixtures.FakeLogger(
            name='cinder_resilience.coordination_service'))
        manager = self.make_manager()
        manager.init_host(service_id=3)
        self.assertIn('not started through cinder_resilience', logs.output)
        self.upstream.start()
        manager.init_host(service_id=3)
        self.assertIn('served by the file coordination backend',
                      logs.output)

    def test_route_external_locks_option(self):
        cfg.CONF.set_override('route_external_locks', True, 'coordination')
        self.make_manager()
        self.upstream.start()
        self.assertIs(self.ours, lockutils.external_lock.routed_to)
        self.upstream.stop()
        self.assertFalse(external_locks.installed())
