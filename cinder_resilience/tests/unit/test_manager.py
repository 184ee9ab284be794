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

"""The re-initialization mixin over cinder's real VolumeManager.

Each test builds a real ``cinder.volume.manager.VolumeManager`` (through our
subclass) on an in-memory sqlite database with oslo.messaging's fake
transport. Waits go to an injected waiter and a virtual clock: no test
sleeps.
"""

import logging
import threading

from cinder import exception as cinder_exception
import fixtures
from oslo_config import cfg
from oslotest import base

from cinder_resilience import exception
from cinder_resilience import manager
from cinder_resilience.tests.functional import late_backend

CONF = cfg.CONF
DRIVER = 'cinder_resilience.tests.functional.late_backend.GatedDriver'
HOST = 'unit-host@gated'


class Gate:
    """A backend that refuses ``failures`` times, then answers."""

    def __init__(self, failures, error=None):
        self.failures = failures
        self.calls = 0
        self.error = error or cinder_exception.VolumeBackendAPIException(
            data='backend not answering')

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error


class ManagerTestCase(base.BaseTestCase):
    """Builds our VolumeManager over a GatedDriver with injected time."""

    def setUp(self):
        super().setUp()
        self.cinder = self.useFixture(late_backend.CinderFixture())
        self.flags(reinit_driver_jitter=0.0)
        self.log = self.useFixture(fixtures.FakeLogger(
            name='cinder_resilience.manager', level=logging.INFO))

    def flags(self, **kwargs):
        manager.opts.register_opts(CONF)
        self.cinder.config.config(**kwargs)

    def make_manager(self, gate, stop_after_waits=None, host=HOST,
                     **kwargs):
        vm = manager.VolumeManager(volume_driver=DRIVER, host=host,
                                   service_name='gated', **kwargs)
        vm.driver.gate = gate
        self.clock = late_backend.VirtualClock()
        self.waits = []
        self.runner = late_backend.VirtualRunner(self.clock)

        def waiter(seconds):
            self.waits.append(seconds)
            if len(self.waits) == stop_after_waits:
                vm.stop_reinit()
            self.clock.advance(seconds)
            return vm.reinit_state.stopped

        vm.reinit_wait = waiter
        vm.reinit_clock = self.clock
        vm.reinit_runner = self.runner
        # stop_coordination also stops the re-initialization, and the
        # coordinator init_host started (file backend in the test's
        # state_path) does not outlive the test.
        self.addCleanup(vm.stop_coordination)
        return vm

    def start(self, vm):
        """What cinder's Service.start does first."""
        from cinder import coordination as cinder_coordination
        self.service = self.cinder.create_service(HOST)
        cinder_coordination.COORDINATOR.start()
        vm.init_host(added_to_cluster=None, service_id=self.service.id)


class CountedRetryTest(ManagerTestCase):

    def test_start_time_success_needs_no_retry(self):
        vm = self.make_manager(Gate(0))
        self.start(vm)
        self.assertTrue(vm.driver.initialized)
        self.assertTrue(vm.is_working())
        self.assertEqual([], self.waits)
        self.assertIsNone(self.runner.step)

    def test_spec_waits_1_2_4_then_success(self):
        gate = Gate(3)
        vm = self.make_manager(gate)
        self.start(vm)
        self.assertTrue(vm.driver.initialized)
        self.assertEqual([1.0, 2.0, 4.0], self.waits)
        self.assertEqual(4, gate.calls)
        self.assertIsNone(self.runner.step)

    def test_reinit_driver_count_is_cinders_option(self):
        self.flags(reinit_driver_count=5, reinit_driver_background=False)
        vm = self.make_manager(Gate(100))
        self.start(vm)
        self.assertFalse(vm.driver.initialized)
        self.assertEqual([1.0, 2.0, 4.0, 8.0, 16.0], self.waits)
        self.assertEqual(6, vm.driver.setup_calls)

    def test_waits_are_capped(self):
        self.flags(reinit_driver_count=7, reinit_driver_max_interval=5,
                   reinit_driver_background=False)
        vm = self.make_manager(Gate(100))
        self.start(vm)
        self.assertEqual([1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0], self.waits)

    def test_waits_are_jittered_within_bounds(self):
        self.flags(reinit_driver_jitter=0.5, reinit_driver_count=6,
                   reinit_driver_max_interval=8,
                   reinit_driver_background=False)
        vm = self.make_manager(Gate(100))
        randoms = iter([0.0, 0.99, 0.25, 0.75, 0.0, 0.99])
        vm.reinit_random = lambda: next(randoms)
        self.start(vm)
        nominal = [1, 2, 4, 8, 8, 8]
        self.assertNotEqual([float(n) for n in nominal], self.waits)
        for wait, base_wait in zip(self.waits, nominal):
            self.assertGreaterEqual(wait, base_wait * 0.5)
            self.assertLessEqual(wait, min(base_wait * 1.5, 8))

    def test_each_retry_logs_one_warning(self):
        self.flags(reinit_driver_background=False)
        vm = self.make_manager(Gate(100))
        self.start(vm)
        retries = [line for line in self.log.output.splitlines()
                   if 'retry ' in line]
        self.assertEqual(3, len(retries))
        self.assertIn('retry 1 of 3 in 1.0 s', retries[0])

    def test_driver_methods_are_restored_after_an_attempt(self):
        vm = self.make_manager(Gate(1))
        self.start(vm)
        for name in manager.SETUP_METHODS:
            self.assertNotIn(name, vars(vm.driver))


class UndoPartialSetupTest(ManagerTestCase):

    def test_undo_hook_runs_before_each_retry(self):
        vm = self.make_manager(Gate(2))
        self.start(vm)
        self.assertTrue(vm.driver.initialized)
        self.assertEqual(3, vm.driver.setup_calls)
        self.assertEqual(2, vm.driver.undo_calls)

    def test_failing_undo_hook_does_not_stop_retries(self):
        vm = self.make_manager(Gate(2))

        def broken_undo(ctxt):
            raise RuntimeError('cannot close session')

        vm.driver.undo_setup = broken_undo
        self.start(vm)
        self.assertTrue(vm.driver.initialized)
        self.assertIn('failed to undo a partial setup', self.log.output)

    def test_driver_without_hook_is_fine(self):
        vm = self.make_manager(Gate(1))
        vm.driver.undo_setup = None
        self.start(vm)
        self.assertTrue(vm.driver.initialized)


class PermanentErrorTest(ManagerTestCase):

    def _error_lines(self):
        return [line for line in self.log.output.splitlines()
                if 'permanent' in line]

    def _assert_counted_then_given_up(self, vm):
        """cinder's counted attempts, then no background probing."""
        self.assertFalse(vm.driver.initialized)
        self.assertEqual(4, vm.driver.setup_calls)
        self.assertEqual([1.0, 2.0, 4.0], self.waits)
        self.assertIsNone(self.runner.step)
        self.assertFalse(vm.reinit_probing)
        lines = self._error_lines()
        self.assertEqual(1, len(lines))
        return lines[0]

    def test_import_error_gets_the_counted_attempts_only(self):
        vm = self.make_manager(Gate(100, ImportError('no module vendor_sdk')))
        self.start(vm)
        line = self._assert_counted_then_given_up(vm)
        self.assertIn('ImportError: no module vendor_sdk', line)
        self.assertIn('no further attempt after 4', line)

    def test_permanent_error_that_clears_within_the_count(self):
        # As with cinder's manager: every failure is retried.
        vm = self.make_manager(Gate(2, ImportError('no module vendor_sdk')))
        self.start(vm)
        self.assertTrue(vm.driver.initialized)
        self.assertEqual([1.0, 2.0], self.waits)
        self.assertEqual([], self._error_lines())

    def test_configuration_error_gets_the_counted_attempts_only(self):
        error = cinder_exception.InvalidConfigurationValue(
            option='san_ip', value='')
        vm = self.make_manager(Gate(100, error))
        self.start(vm)
        self._assert_counted_then_given_up(vm)

    def test_wrapped_permanent_error_is_recognised(self):
        try:
            try:
                raise ImportError('vendor_sdk')
            except ImportError as cause:
                raise cinder_exception.VolumeBackendAPIException(
                    data='cannot load SDK') from cause
        except cinder_exception.VolumeBackendAPIException as exc:
            error = exc
        vm = self.make_manager(Gate(100, error))
        self.start(vm)
        self.assertIn('ImportError: vendor_sdk',
                      self._assert_counted_then_given_up(vm))

    def test_list_is_configurable(self):
        self.flags(reinit_driver_permanent_errors=[
            'cinder.exception.VolumeBackendAPIException'])
        vm = self.make_manager(Gate(100))
        self.start(vm)
        self._assert_counted_then_given_up(vm)

    def test_transient_error_is_not_permanent(self):
        self.flags(reinit_driver_background=False)
        vm = self.make_manager(Gate(100, ConnectionRefusedError('refused')))
        self.start(vm)
        self.assertEqual(4, vm.driver.setup_calls)
        self.assertEqual([], self._error_lines())


class OptionValidationTest(ManagerTestCase):
    """A bad option stops cinder-volume when it builds the manager.

    cinder-volume builds its managers in the parent process, before it
    forks a worker per backend: the process exits once, with one line.
    """

    def _assert_exits_naming(self, option):
        self.assertRaises(SystemExit, self.make_manager, Gate(0))
        lines = [line for line in self.log.output.splitlines() if line]
        self.assertEqual(1, len(lines), lines)
        self.assertIn(option, lines[0])
        self.assertIn('cinder-volume does not start', lines[0])

    def test_bad_count_fails_at_start(self):
        self.flags(reinit_driver_count=-2)
        self._assert_exits_naming('reinit_driver_count')

    def test_unknown_permanent_class_fails_at_start(self):
        self.flags(reinit_driver_permanent_errors=['vendor.sdk.AuthError'])
        self._assert_exits_naming('reinit_driver_permanent_errors')

    def test_option_changed_before_a_restart_is_checked_again(self):
        vm = self.make_manager(Gate(0))
        self.flags(reinit_driver_count=-2)
        exc = self.assertRaises(exception.InvalidReinitOption,
                                self.start, vm)
        self.assertIn('reinit_driver_count', str(exc))
        self.assertEqual(0, vm.driver.setup_calls)


class StopTest(ManagerTestCase):

    def test_stop_during_counted_waits(self):
        vm = self.make_manager(Gate(100), stop_after_waits=2)
        self.start(vm)
        self.assertEqual(2, len(self.waits))
        self.assertEqual(2, vm.driver.setup_calls)
        self.assertIsNone(self.runner.step)
        self.assertFalse(vm.reinit_probing)

    def test_stop_interrupts_a_real_wait_within_a_second(self):
        vm = self.make_manager(Gate(100))
        waiting = threading.Event()

        def long_wait(seconds):
            # The default waiter, made an hour long.
            waiting.set()
            return vm.reinit_state.stop_event.wait(3600)

        vm.reinit_wait = long_wait
        thread = threading.Thread(target=self.start, args=(vm,))
        thread.start()
        self.assertTrue(waiting.wait(30))
        vm.stop_reinit()
        thread.join(1.0)
        self.assertFalse(thread.is_alive())
        self.assertEqual(1, vm.driver.setup_calls)
        self.assertIsNone(self.runner.step)

    def test_default_waiter_is_the_stop_event(self):
        vm = manager.VolumeManager(volume_driver=DRIVER, host=HOST,
                                   service_name='gated')
        vm.stop_reinit()
        self.assertTrue(vm.reinit_wait(3600))


class UnsupportedDriverTest(ManagerTestCase):

    def test_unsupported_driver_disabled_is_not_started(self):
        vm = self.make_manager(Gate(0))
        vm.driver.SUPPORTED = False
        self.start(vm)
        self.assertEqual(0, vm.driver.setup_calls)
        self.assertIn('Unsupported drivers are disabled', self.log.output)


class ServiceStopTest(ManagerTestCase):

    def test_cinder_service_stop_reaches_the_reinit(self):
        from cinder import coordination as cinder_coordination
        vm = self.make_manager(Gate(100))
        self.start(vm)
        self.assertTrue(vm.reinit_probing)
        # What cinder's Service.stop() does for a volume service.
        cinder_coordination.COORDINATOR.stop()
        self.assertTrue(self.runner.stopped)
        self.assertFalse(vm.reinit_probing)
        self.assertTrue(vm.reinit_wait(3600))

    def test_a_stopped_service_can_start_again(self):
        vm = self.make_manager(Gate(100), stop_after_waits=1)
        self.start(vm)
        self.assertEqual(1, vm.driver.setup_calls)
        vm.driver.gate = Gate(0)
        self.start(vm)
        self.assertTrue(vm.driver.initialized)
        self.assertEqual(2, vm.driver.setup_calls)
