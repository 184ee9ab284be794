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

import textwrap

from oslo_config import cfg
from oslotest import base

from cinder_resilience import exception
from cinder_resilience import opts
from cinder_resilience import reinit_policy


class WaitTest(base.BaseTestCase):

    def test_nominal_waits_double_then_cap(self):
        waits = [reinit_policy.nominal_wait(n, 30) for n in range(8)]
        self.assertEqual([1, 2, 4, 8, 16, 30, 30, 30], waits)

    def test_huge_attempt_numbers_do_not_overflow(self):
        self.assertEqual(60.0, reinit_policy.nominal_wait(10 ** 6, 60))

    def test_no_jitter_keeps_the_wait(self):
        self.assertEqual(4.0, reinit_policy.jittered(4.0, 30, 0.0, 0.99))

    def test_jitter_spreads_both_ways(self):
        low = reinit_policy.jittered(10.0, 30, 0.2, 0.0)
        high = reinit_policy.jittered(10.0, 30, 0.2, 0.999999)
        self.assertAlmostEqual(8.0, low)
        self.assertAlmostEqual(12.0, high, places=4)

    def test_jitter_never_exceeds_the_cap(self):
        for rand in (0.0, 0.5, 0.75, 0.999):
            self.assertLessEqual(
                reinit_policy.jittered(30.0, 30, 0.5, rand), 30.0)

    def test_policy_waits(self):
        policy = reinit_policy.ReinitPolicy(
            count=3, max_interval=3, jitter=0.0, background=True,
            probe_interval=10, permanent=())
        self.assertEqual([1, 2, 3, 3],
                         [policy.counted_wait(n, 0.5) for n in range(4)])
        self.assertEqual([8, 10, 10],
                         [policy.probe_wait(n, 0.5) for n in range(3, 6)])


class PermanentErrorTest(base.BaseTestCase):

    def test_resolve_classes(self):
        classes = reinit_policy.resolve_exception_classes(
            opts.DEFAULT_PERMANENT_ERRORS)
        self.assertIn(ImportError, classes)
        self.assertIn(cfg.Error, classes)
        self.assertEqual(len(opts.DEFAULT_PERMANENT_ERRORS), len(classes))

    def test_unknown_name_names_the_option(self):
        exc = self.assertRaises(
            exception.InvalidReinitOption,
            reinit_policy.resolve_exception_classes,
            ['no_such_module.NoSuchError'])
        self.assertIn('reinit_driver_permanent_errors', str(exc))
        self.assertIn('no_such_module.NoSuchError', str(exc))

    def test_non_exception_is_refused(self):
        exc = self.assertRaises(
            exception.InvalidReinitOption,
            reinit_policy.resolve_exception_classes, ['builtins.dict'])
        self.assertIn('not an exception class', str(exc))

    def test_subclass_matches(self):
        err = ModuleNotFoundError('vendor_sdk')
        self.assertIs(err, reinit_policy.find_permanent(err, (ImportError,)))

    def test_transient_error_does_not_match(self):
        self.assertIsNone(reinit_policy.find_permanent(
            ConnectionError('refused'), (ImportError,)))

    def test_none_and_empty_list(self):
        self.assertIsNone(reinit_policy.find_permanent(None, (ImportError,)))
        self.assertIsNone(reinit_policy.find_permanent(ImportError(), ()))

    def test_wrapped_cause_matches(self):
        try:
            try:
                raise ImportError('vendor_sdk')
            except ImportError as inner:
                raise RuntimeError('driver failed') from inner
        except RuntimeError as outer:
            found = reinit_policy.find_permanent(outer, (ImportError,))
        self.assertIsInstance(found, ImportError)

    def test_implicit_context_matches_and_cycles_end(self):
        first = ImportError('a')
        second = RuntimeError('b')
        second.__context__ = first
        first.__context__ = second
        self.assertIs(first,
                      reinit_policy.find_permanent(second, (ImportError,)))
        self.assertIsNone(reinit_policy.find_permanent(second, (KeyError,)))


class LoadPolicyTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.conf = cfg.ConfigOpts()
        self.conf.register_opt(cfg.IntOpt('reinit_driver_count', default=3))
        opts.register_opts(self.conf)

    def _load_file(self, text):
        path = self.create_tempfiles([('cinder', textwrap.dedent(text))],
                                     ext='.conf')[0]
        self.conf(['--config-file', path])
        return reinit_policy.load_policy(self.conf)

    def test_defaults(self):
        self.conf([])
        policy = reinit_policy.load_policy(self.conf)
        self.assertEqual(3, policy.count)
        self.assertEqual(30.0, policy.max_interval)
        self.assertEqual(30.0, policy.probe_interval)
        self.assertTrue(policy.background)
        self.assertIn(ImportError, policy.permanent)

    def test_values_from_file(self):
        policy = self._load_file('''
            [DEFAULT]
            reinit_driver_count = 5
            reinit_driver_max_interval = 7
            reinit_driver_background = false
            reinit_driver_permanent_errors = builtins.KeyError
        ''')
        self.assertEqual((5, 7.0, False, (KeyError,)),
                         (policy.count, policy.max_interval,
                          policy.background, policy.permanent))

    def _assert_names(self, option, text):
        exc = self.assertRaises(exception.InvalidReinitOption,
                                self._load_file, text)
        self.assertIn(option, str(exc))

    def test_out_of_range_interval_names_the_option(self):
        self._assert_names('reinit_driver_max_interval',
                           '[DEFAULT]\nreinit_driver_max_interval = 0\n')

    def test_too_much_jitter_names_the_option(self):
        self._assert_names('reinit_driver_jitter',
                           '[DEFAULT]\nreinit_driver_jitter = 0.9\n')

    def test_probe_interval_bound_names_the_option(self):
        self._assert_names('reinit_driver_probe_interval',
                           '[DEFAULT]\nreinit_driver_probe_interval = 9999\n')

    def test_negative_count_names_cinders_option(self):
        self._assert_names('reinit_driver_count',
                           '[DEFAULT]\nreinit_driver_count = -1\n')

    def test_malformed_class_name_names_the_option(self):
        self._assert_names('reinit_driver_permanent_errors',
                           '[DEFAULT]\n'
                           'reinit_driver_permanent_errors = not a name\n')
