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

"""The console scripts patch ironic, then hand over to ironic's main."""

from unittest import mock

from ironic.command import conductor as ironic_conductor_cmd
from ironic.command import singleprocess
from ironic.conductor import task_manager as ironic_task_manager
from oslo_config import cfg
from oslotest import base

from ironic_locking import cmd
from ironic_locking.cmd import conductor
from ironic_locking.cmd import ironic
from ironic_locking import loader


class RunTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.addCleanup(loader.uninstall)

    def test_patch_in_place_when_ironic_main_runs(self):
        seen = []

        def ironic_main():
            seen.append(ironic_task_manager.acquire)
            return 7

        self.assertEqual(7, cmd.run(ironic_main))
        self.assertEqual([loader.acquire], seen)
        self.assertIn('node_locked_retry_strategy', cfg.CONF.conductor)

    @mock.patch.object(singleprocess, 'main', autospec=True)
    def test_ironic_resilient_wraps_singleprocess(self, ironic_main):
        ironic.main()
        ironic_main.assert_called_once_with()
        self.assertTrue(loader.installed())

    @mock.patch.object(ironic_conductor_cmd, 'main', autospec=True)
    def test_conductor_resilient_wraps_conductor(self, ironic_main):
        conductor.main()
        ironic_main.assert_called_once_with()
        self.assertTrue(loader.installed())
