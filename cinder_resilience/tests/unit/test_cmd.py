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

"""cinder-api/backup wrappers enable the plugin before cinder's main."""

from unittest import mock

from cinder import coordination as cinder_coordination
from oslotest import base

from cinder_resilience import cmd
from cinder_resilience import host_patches


class WrapperTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.addCleanup(host_patches.uninstall_all)

    def _check(self, entry, module):
        seen = []

        def main():
            seen.append(isinstance(cinder_coordination.coordination,
                                   host_patches.ToozForCinder))
            return 0

        with mock.patch('%s.main' % module, main):
            self.assertEqual(0, entry())
        self.assertEqual([True], seen)

    def test_api(self):
        self._check(cmd.api, 'cinder.cmd.api')

    def test_backup(self):
        self._check(cmd.backup, 'cinder.cmd.backup')

    def test_missing_cinder_is_one_line(self):
        with mock.patch('importlib.import_module',
                        side_effect=ImportError('No module named cinder')):
            exc = self.assertRaises(SystemExit, cmd.api)
        self.assertIn('[cinder] extra', str(exc))
