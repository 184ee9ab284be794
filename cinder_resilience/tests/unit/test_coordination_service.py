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

"""The coordinator follows the volume service's life (file backend)."""

from cinder import coordination as cinder_coordination
import fixtures
from oslo_concurrency import lockutils
from oslo_config import cfg
from oslotest import base

from cinder_resilience import coordination
from cinder_resilience import coordination_service
from cinder_resilience import external_locks
from cinder_resilience import host_patches


class RecordingManager(object):
    def __init__(self, events):
        self.events = events

    def init_host(self, service_id=None, added_to_cluster=None):
        self.events.append(('init_host', service_id))


class Manager(coordination_service.CoordinationMixin, RecordingManager):
    pass


class CoordinationMixinTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.path = self.useFixture(fixtures.TempDir()).path
        self.useFixture(fixtures.FakeLogger())
        coordination.register_opts(cfg.CONF)
        self.addCleanup(cfg.CONF.clear_override, 'route_external_locks',
                        'coordination')
        self.addCleanup(host_patches.uninstall_all)
        self.events = []
        self.manager = Manager(self.events)
        self.manager.coordinator = coordination.Coordinator(
            prefix='cinder-', backend_url='file://' + self.path)
        self.addCleanup(self.manager.coordinator.stop)

    def test_started_before_driver_and_stopped_with_service(self):
        coord = self.manager.coordinator
        real_start = coord.start
        coord.start = lambda: (self.events.append(('start', None)),
                               real_start())
        self.manager.init_host(service_id=7)
        self.assertEqual([('start', None), ('init_host', 7)], self.events)
        self.assertTrue(coord.started)
        self.assertFalse(external_locks.installed())
        lock = coord.get_lock('vol')
        lock.acquire()
        # cinder's Service.stop() stops cinder's coordinator: ours follows.
        cinder_coordination.COORDINATOR.stop()
        self.assertFalse(coord.started)
        self.assertFalse(lock.acquired)

    def test_route_external_locks_option(self):
        cfg.CONF.set_override('route_external_locks', True, 'coordination')
        self.manager.init_host(service_id=1)
        self.assertIs(self.manager.coordinator,
                      lockutils.external_lock.routed_to)
        # A second start (service restart in-process) wraps stop only once.
        self.manager.stop_coordination()
        self.assertFalse(external_locks.installed())
        upstream = cinder_coordination.COORDINATOR
        self.assertNotIn('stop', vars(upstream))
        self.manager.init_host(service_id=1)
        self.assertEqual(1, len(host_patches.FOLLOW_CINDER_STOP.replacements))
        upstream.stop()
        self.assertFalse(external_locks.installed())
        self.assertFalse(self.manager.coordinator.started)
        # Nothing is left on cinder's coordinator once it has fired.
        self.assertNotIn('stop', vars(upstream))
        self.assertFalse(host_patches.FOLLOW_CINDER_STOP.installed)
