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

"""tests.missing: a missing part skips here and fails under CI."""

import unittest

import fixtures
import testtools

from ironic_locking import tests


class _NeedsAPart(testtools.TestCase):

    def needs_a_part(self):
        raise tests.missing('frobd server binary is not installed')


class MissingTest(testtools.TestCase):

    def run_with(self, ci):
        self.useFixture(fixtures.EnvironmentVariable('CI', ci))
        result = unittest.TestResult()
        _NeedsAPart('needs_a_part').run(result)
        return result

    def test_skips_without_ci(self):
        for value in (None, '', '0', 'false', 'False', 'no', 'off'):
            result = self.run_with(value)
            self.assertEqual([], result.failures, value)
            self.assertEqual(1, len(result.skipped), value)
            self.assertEqual('frobd server binary is not installed',
                             result.skipped[0][1])

    def test_fails_under_ci(self):
        for value in ('true', 'TRUE', '1', 'yes', 'gitlab'):
            result = self.run_with(value)
            self.assertEqual([], result.skipped, value)
            self.assertEqual(1, len(result.failures), value)
            self.assertIn('frobd server binary is not installed',
                          result.failures[0][1])
            self.assertIn('CI is set', result.failures[0][1])

    def test_under_ci(self):
        self.useFixture(fixtures.EnvironmentVariable('CI', ' true '))
        self.assertTrue(tests.under_ci())
        self.useFixture(fixtures.EnvironmentVariable('CI'))
        self.assertFalse(tests.under_ci())
