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

"""Background probing and the late success, over cinder's real manager."""

import logging
import threading
import types
from unittest import mock

from cinder.objects import fields
from oslo_service.backend._threading import loopingcall as threading_calls

from cinder_resilience import manager
from cinder_resilience.tests.functional import late_backend
from cinder_resilience.tests.unit import test_manager


class BackgroundProbeTest(test_manager.ManagerTestCase):

    def test_probes_continue_doubling_up_to_the_cap(self):
        vm = self.make_manager(test_manager.Gate(100))
        self.start(vm)
        self.assertTrue(vm.reinit_probing)
        self.assertEqual(30.0, self.runner.max_wait)
        self.runner.run(max_steps=6)
        self.assertEqual([8.0, 16.0, 30.0, 30.0, 30.0, 30.0],
                         self.runner.waits)
        self.assertFalse(vm.driver.initialized)

    def test_probe_interval_option_caps_probes(self):
        self.flags(reinit_driver_probe_interval=10)
        vm = self.make_manager(test_manager.Gate(100))
        self.start(vm)
        self.runner.run(max_steps=3)
        self.assertEqual([8.0, 10.0, 10.0], self.runner.waits)

    def test_background_off_logs_one_error_and_stays_down(self):
        self.flags(reinit_driver_background=False)
        vm = self.make_manager(test_manager.Gate(100))
        self.start(vm)
        self.assertIsNone(self.runner.step)
        self.assertFalse(vm.is_working())
        self.assertEqual(1, self.log.output.count('background probing is off'))

    def test_permanent_error_during_probing_ends_it(self):
        gate = test_manager.Gate(5)
        vm = self.make_manager(gate)
        self.start(vm)
        gate.error = ImportError('vendor_sdk removed')
        self.runner.run(max_steps=10)
        self.assertTrue(self.runner.done)
        self.assertEqual(1, len(self.runner.waits))
        self.assertFalse(vm.reinit_probing)
        self.assertIn('permanent', self.log.output)

    def test_stop_ends_probing(self):
        vm = self.make_manager(test_manager.Gate(100))
        self.start(vm)
        self.runner.run(max_steps=2)
        vm.stop_reinit()
        self.assertTrue(self.runner.stopped)
        self.assertFalse(vm.reinit_probing)
        calls = vm.driver.setup_calls
        self.assertIsNone(self.runner.step())
        self.assertEqual(calls, vm.driver.setup_calls)


class LateSuccessTest(test_manager.ManagerTestCase):
    """A late success leaves the service as a start-time success does."""

    def _late_start(self, failures):
        vm = self.make_manager(test_manager.Gate(failures))
        self.start(vm)
        self.assertFalse(vm.driver.initialized)
        # What cinder's Service.start does after init_host returns.
        vm.init_host_with_rpc()
        self.assertTrue(vm.reinit_state.rpc_pending)
        self.runner.run()
        return vm

    def test_driver_initialized_and_service_working(self):
        vm = self._late_start(failures=6)
        self.assertTrue(self.runner.done)
        self.assertTrue(vm.driver.initialized)
        self.assertTrue(vm.is_working())
        self.assertFalse(vm.reinit_probing)
        self.assertEqual([8.0, 16.0, 30.0], self.runner.waits)

    def test_stats_and_capabilities_published(self):
        vm = self._late_start(failures=5)
        self.assertGreater(vm.driver.stats_calls, 0)
        self.assertEqual('GatedDriver',
                         vm.last_capabilities['volume_backend_name'])
        self.assertEqual({}, vm.stats['pools'])

    def test_deferred_rpc_initialization_is_done(self):
        vm = self._late_start(failures=5)
        self.assertFalse(vm.reinit_state.rpc_pending)
        service = self.service.get_by_id(self.cinder.context, self.service.id)
        # init_host_with_rpc records the replication status of the service.
        self.assertEqual(fields.ReplicationStatus.DISABLED,
                         service.replication_status)
        self.assertIn('Driver post RPC initialization completed',
                      self._cinder_log())

    def test_heartbeat_sent_at_once(self):
        self._late_start(failures=5)
        service = self.service.get_by_id(self.cinder.context, self.service.id)
        self.assertEqual(1, service.report_count)

    def test_log_says_how_long_it_took(self):
        self._late_start(failures=5)
        self.assertIn('initialized after 6 attempts and 31.0 s',
                      self.log.output)

    def test_start_time_success_runs_rpc_work_directly(self):
        vm = self.make_manager(test_manager.Gate(0))
        self.start(vm)
        vm.init_host_with_rpc()
        self.assertFalse(vm.reinit_state.rpc_pending)
        service = self.service.get_by_id(self.cinder.context, self.service.id)
        self.assertEqual(fields.ReplicationStatus.DISABLED,
                         service.replication_status)

    def test_success_before_rpc_start_is_not_deferred(self):
        vm = self.make_manager(test_manager.Gate(4))
        self.start(vm)
        self.runner.run()
        self.assertTrue(vm.driver.initialized)
        vm.init_host_with_rpc()
        self.assertFalse(vm.reinit_state.rpc_pending)

    def _cinder_log(self):
        return self.cinder_log.output

    def setUp(self):
        super().setUp()
        self.cinder_log = self.useFixture(test_manager.fixtures.FakeLogger(
            name='cinder.volume.manager', level=logging.INFO))


class LoopingCallRunnerTest(test_manager.ManagerTestCase):
    """The real oslo.service looping call (threading backend)."""

    def setUp(self):
        super().setUp()
        backend = types.SimpleNamespace(
            DynamicLoopingCall=threading_calls.DynamicLoopingCall,
            LoopingCallDone=threading_calls.LoopingCallDone)
        # Select the threading classes for this test only, without fixing
        # the process-wide oslo.service backend.
        patcher = mock.patch.dict('sys.modules',
                                  {'oslo_service.loopingcall': backend})
        patcher.start()
        self.addCleanup(patcher.stop)
        self.useFixture(test_manager.fixtures.MonkeyPatch(
            'oslo_service.loopingcall', backend))

    def test_stop_returns_within_a_second(self):
        probed = threading.Event()

        def step():
            probed.set()
            return 3600.0

        call = manager.looping_call_runner(step, 0, 3600)
        self.assertTrue(probed.wait(30))
        waiter = threading.Thread(target=call.wait)
        waiter.start()
        call.stop()
        waiter.join(1.0)
        self.assertFalse(waiter.is_alive())

    def test_step_returning_none_ends_the_loop(self):
        results = iter([0.0, 0.0, None])
        call = manager.looping_call_runner(lambda: next(results), 0, 1)
        waiter = threading.Thread(target=call.wait)
        waiter.start()
        waiter.join(30)
        self.assertFalse(waiter.is_alive())
        self.assertRaises(StopIteration, next, results)

    def test_manager_probes_with_the_real_looping_call(self):
        vm = self.make_manager(test_manager.Gate(4))

        def runner(step, first_wait, max_wait):
            # A real looping call; only its first wait is cut to zero.
            self.first_wait = first_wait
            return manager.looping_call_runner(step, 0, max_wait)

        vm.reinit_runner = runner
        self.start(vm)
        self.assertEqual(8.0, self.first_wait)
        loop = vm.reinit_state.loop
        waiter = threading.Thread(target=loop.wait)
        waiter.start()
        waiter.join(30)
        self.assertFalse(waiter.is_alive())
        self.assertTrue(vm.driver.initialized)
        self.assertFalse(vm.reinit_probing)

    def test_stop_ends_the_real_looping_call_within_a_second(self):
        vm = self.make_manager(test_manager.Gate(100))
        vm.reinit_runner = manager.looping_call_runner
        self.start(vm)
        loop = vm.reinit_state.loop
        vm.stop_reinit()
        waiter = threading.Thread(target=loop.wait)
        waiter.start()
        waiter.join(1.0)
        self.assertFalse(waiter.is_alive())
        self.assertEqual(4, vm.driver.setup_calls)


class UpstreamContrastTest(test_manager.ManagerTestCase):
    """The same late backend with cinder's own manager and with ours."""

    def test_cinders_manager_stays_down_where_ours_recovers(self):
        clock = late_backend.VirtualClock()
        upstream = manager.cinder_manager.VolumeManager(
            volume_driver=test_manager.DRIVER, host=test_manager.HOST,
            service_name='gated')
        upstream.driver.gate = test_manager.Gate(5)
        virtual_time = types.SimpleNamespace(sleep=clock.advance)
        with mock.patch.object(manager.cinder_manager, 'time', virtual_time):
            self.start(upstream)
        self.assertFalse(upstream.driver.initialized)
        self.assertEqual(4, upstream.driver.setup_calls)
        self.assertEqual(7.0, clock())

        ours = self.make_manager(test_manager.Gate(5))
        self.start(ours)
        self.runner.run()
        self.assertTrue(ours.driver.initialized)
        self.assertEqual(6, ours.driver.setup_calls)
