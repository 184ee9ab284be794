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

"""A member whose driver is down takes no work and shows down.

cinder's ``Service.start()`` is replayed step by step: ``init_host``, the
three RPC servers built with the real ``cinder.rpc.get_server`` on
oslo.messaging's fake transport, then ``init_host_with_rpc``.
"""

import datetime
import logging

from cinder.db import api as db_api
from cinder import objects
from cinder import rpc
import fixtures
import oslo_messaging as messaging
from oslo_utils import timeutils

from cinder_resilience import coordination
from cinder_resilience import member_cleanup
from cinder_resilience import rpc_gate
from cinder_resilience.tests.functional import late_backend
from cinder_resilience.tests.unit import test_manager

CLUSTER = 'unit-cluster@gated'


class ServiceStartTestCase(test_manager.ManagerTestCase):

    def start_service(self, vm, cluster=None):
        """init_host, the RPC servers, init_host_with_rpc: Service.start."""
        self.service = self.cinder.create_service(test_manager.HOST)
        if cluster:
            self.service.cluster_name = cluster
            self.service.save()
            objects.Cluster(self.cinder.context, name=cluster,
                            binary='cinder-volume').create()
        vm.init_host(added_to_cluster=None, service_id=self.service.id)
        servers = []
        for topic, server in (('cinder-volume', 'unit-host'),
                              ('cinder-volume.%s' % vm.host, 'unit-host'),
                              ('cinder-volume.%s' % CLUSTER, 'unit-cluster')):
            target = messaging.Target(topic=topic, server=server)
            servers.append(rpc.get_server(target, [vm], None))
            servers[-1].start()
        self.addCleanup(self._stop_servers, servers)
        vm.init_host_with_rpc()
        return servers

    def _stop_servers(self, servers):
        for server in servers:
            server.stop()
            server.wait()

    def consuming(self, servers):
        return [getattr(s, 'server', s).listener is not None
                for s in servers]


class HeldRPCServersTest(ServiceStartTestCase):

    def test_driver_down_servers_held(self):
        vm = self.make_manager(test_manager.Gate(100))
        servers = self.start_service(vm)
        self.assertEqual([False] * 3, self.consuming(servers))
        self.assertIsInstance(servers[0], rpc_gate.HeldServer)

    def test_cinders_get_server_restored_after_start(self):
        original = rpc.get_server
        vm = self.make_manager(test_manager.Gate(100))
        self.start_service(vm)
        self.assertIs(original, rpc.get_server)

    def test_late_success_starts_the_held_servers(self):
        vm = self.make_manager(test_manager.Gate(5))
        servers = self.start_service(vm)
        self.runner.run()
        self.assertTrue(vm.driver.initialized)
        self.assertEqual([True] * 3, self.consuming(servers))
        self.assertIn('3 RPC servers started, the service is up',
                      self.log.output)

    def test_start_time_success_servers_are_cinders(self):
        vm = self.make_manager(test_manager.Gate(0))
        servers = self.start_service(vm)
        self.assertNotIsInstance(servers[0], rpc_gate.HeldServer)
        self.assertEqual([True] * 3, self.consuming(servers))

    def test_success_during_the_counted_attempts_holds_nothing(self):
        vm = self.make_manager(test_manager.Gate(2))
        servers = self.start_service(vm)
        self.assertEqual([True] * 3, self.consuming(servers))

    def test_permanent_error_servers_stay_held(self):
        vm = self.make_manager(test_manager.Gate(100, ImportError('sdk')))
        servers = self.start_service(vm)
        self.assertEqual([False] * 3, self.consuming(servers))

    def test_other_managers_servers_pass_through(self):
        vm = self.make_manager(test_manager.Gate(100))
        vm.init_host(added_to_cluster=None, service_id=None)
        self.addCleanup(rpc_gate.uninstall, vm)
        target = messaging.Target(topic='cinder-scheduler', server='x')
        other = rpc.get_server(target, [object()], None)
        self.assertNotIsInstance(other, rpc_gate.HeldServer)

    def test_stop_while_held_restores_and_stops_cleanly(self):
        original = rpc.get_server
        vm = self.make_manager(test_manager.Gate(100))
        vm.init_host(added_to_cluster=None, service_id=None)
        self.assertIsNot(original, rpc.get_server)
        target = messaging.Target(topic='cinder-volume', server='unit-host')
        held = rpc.get_server(target, [vm], None)
        held.start()
        vm.stop_reinit()
        self.assertIs(original, rpc.get_server)
        held.stop()
        held.wait()
        self.assertIsNone(held.server.listener)


class ReportsDownTest(ServiceStartTestCase):

    def _service(self):
        return objects.Service.get_by_id(self.cinder.context,
                                         self.service.id)

    def _listed_up(self):
        services = objects.ServiceList.get_all(
            self.cinder.context, {'host': test_manager.HOST, 'is_up': True})
        return [s.id for s in services]

    def test_down_at_once_in_every_view(self):
        vm = self.make_manager(test_manager.Gate(100), cluster=CLUSTER)
        self.start_service(vm, cluster=CLUSTER)
        self.assertFalse(self._service().is_up)
        self.assertEqual([], self._listed_up())
        cluster = objects.Cluster.get_by_id(
            self.cinder.context, None, name=CLUSTER, services_summary=True)
        self.assertEqual(1, cluster.num_down_hosts)
        self.assertFalse(cluster.is_up)

    def test_up_when_the_driver_comes_up(self):
        vm = self.make_manager(test_manager.Gate(5), cluster=CLUSTER)
        self.start_service(vm, cluster=CLUSTER)
        self.runner.run()
        self.assertTrue(self._service().is_up)
        self.assertEqual([self.service.id], self._listed_up())
        cluster = objects.Cluster.get_by_id(
            self.cinder.context, None, name=CLUSTER, services_summary=True)
        self.assertEqual(0, cluster.num_down_hosts)

    def test_start_time_success_keeps_the_row(self):
        vm = self.make_manager(test_manager.Gate(0))
        self.start_service(vm)
        self.assertTrue(self._service().is_up)


class DeadMemberCleanupTest(ServiceStartTestCase):
    """cinder's own workers cleanup, run for dead members by one survivor."""

    def setUp(self):
        super().setUp()
        self.cleanups = []
        self.log = self.useFixture(fixtures.FakeLogger(
            name='cinder_resilience', level=logging.INFO))
        self.vm = self.make_manager(test_manager.Gate(0), cluster=CLUSTER)
        self.vm.cleanup_runner = self._runner
        self.start_service(self.vm, cluster=CLUSTER)
        self.ctxt = self.cinder.context

    def _runner(self, step, first_wait, max_wait):
        self.cleanups.append((step, first_wait, max_wait))
        return late_backend.VirtualRunner(self.clock)(step, first_wait,
                                                      max_wait)

    def member(self, host, seconds_since_heartbeat):
        stamp = timeutils.utcnow() - datetime.timedelta(
            seconds=seconds_since_heartbeat)
        service = objects.Service(self.ctxt, host=host, binary='cinder-volume',
                                  topic='cinder-volume', report_count=1,
                                  cluster_name=CLUSTER)
        service.create()
        db_api.service_update(self.ctxt, service.id,
                              {'updated_at': stamp, 'created_at': stamp})
        return service

    def transient_volume(self, member, status='creating'):
        volume = objects.Volume(self.ctxt, size=1, status=status,
                                host=member.host + '#pool',
                                cluster_name=CLUSTER,
                                user_id='u', project_id='p')
        volume.create()
        db_api.worker_create(self.ctxt, resource_type='Volume',
                             resource_id=volume.id, status=status,
                             service_id=member.id)
        return volume

    def clean(self):
        return member_cleanup.clean_dead_members(
            self.vm, self.vm._coordinator(), self.ctxt)

    def status(self, volume):
        return objects.Volume.get_by_id(self.ctxt, volume.id).status

    def workers(self, member):
        return db_api.worker_get_all(self.ctxt, service_id=member.id)

    def test_loop_started_with_the_driver(self):
        step, first_wait, max_wait = self.cleanups[0]
        self.assertEqual(30, max_wait)
        self.assertEqual(1, len(self.cleanups))

    def test_dead_members_transient_volume_ends_in_error(self):
        dead = self.member('dead@gated', seconds_since_heartbeat=120)
        volume = self.transient_volume(dead)
        self.assertEqual([dead.id], self.clean())
        self.assertEqual('error', self.status(volume))
        self.assertEqual([], self.workers(dead))
        self.assertIn('has sent no heartbeat since', self.log.output)

    def test_the_loop_step_cleans(self):
        dead = self.member('dead@gated', seconds_since_heartbeat=120)
        volume = self.transient_volume(dead)
        step = self.cleanups[0][0]
        self.assertEqual(30.0, step())
        self.assertEqual('error', self.status(volume))

    def test_member_that_heartbeats_is_never_cleaned(self):
        alive = self.member('alive@gated', seconds_since_heartbeat=5)
        volume = self.transient_volume(alive)
        self.assertEqual([], self.clean())
        self.assertEqual('creating', self.status(volume))
        self.assertEqual(1, len(self.workers(alive)))

    def test_nothing_is_cleaned_twice(self):
        dead = self.member('dead@gated', seconds_since_heartbeat=120)
        self.transient_volume(dead)
        self.assertEqual([dead.id], self.clean())
        self.assertEqual([], self.clean())
        self.assertEqual(1, self.log.output.count('has sent no heartbeat'))

    def test_work_started_after_the_cut_is_left_alone(self):
        dead = self.member('dead@gated', seconds_since_heartbeat=120)
        volume = self.transient_volume(dead)
        later = timeutils.utcnow() + datetime.timedelta(seconds=30)
        for row in self.workers(dead):
            db_api.worker_update(self.ctxt, row.id, updated_at=later)
        self.assertEqual([], self.clean())
        self.assertEqual('creating', self.status(volume))

    def test_only_the_lock_holder_cleans(self):
        dead = self.member('dead@gated', seconds_since_heartbeat=120)
        volume = self.transient_volume(dead)
        other = coordination.Coordinator(prefix='cinder-')
        other.start()
        self.addCleanup(other.stop)
        lock = other.get_lock(member_cleanup.LOCK_NAME % CLUSTER)
        self.assertTrue(lock.acquire(blocking=False))
        self.addCleanup(lock.release)
        self.assertIsNone(self.clean())
        self.assertEqual('creating', self.status(volume))

    def test_option_off_starts_no_loop(self):
        self.flags(dead_member_cleanup=False)
        vm = self.make_manager(test_manager.Gate(0), cluster=CLUSTER,
                               host='other@gated')
        vm.cleanup_runner = self._runner
        vm._reinit_start_cleanup()
        self.assertEqual(1, len(self.cleanups))

    def test_single_node_starts_no_loop(self):
        vm = self.make_manager(test_manager.Gate(0), host='single@gated')
        vm.cleanup_runner = self._runner
        vm._reinit_start_cleanup()
        self.assertEqual(1, len(self.cleanups))
