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

"""The console scripts patch ironic, check our options, run ironic's main."""

import inspect
import os
import subprocess
import sys
from unittest import mock

from ironic.command import conductor as ironic_conductor_cmd
from ironic.command import singleprocess
from ironic.common import service as ironic_service
from ironic.conductor import task_manager as ironic_task_manager
from oslo_config import fixture as config_fixture
from oslotest import base

from ironic_locking import cmd
from ironic_locking.cmd import conductor
from ironic_locking.cmd import ironic
from ironic_locking import loader
from ironic_locking import opts

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
CONDUCTOR = 'ironic.command.conductor'


class RunTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.addCleanup(loader.uninstall)
        opts.register_opts(loader.CONF)
        self.conf = self.useFixture(config_fixture.Config(loader.CONF))
        self.real_prepare = ironic_service.prepare_service

    def run_with(self, ironic_main):
        with mock.patch.object(ironic_conductor_cmd, 'main', ironic_main):
            return cmd.run('ironic-conductor-resilient', CONDUCTOR)

    def test_patch_in_place_when_ironic_main_runs(self):
        seen = []

        def ironic_main():
            seen.append(ironic_task_manager.acquire)
            return 7

        self.assertEqual(7, self.run_with(ironic_main))
        self.assertEqual([loader.acquire], seen)
        self.assertIn('node_locked_retry_strategy', loader.CONF.conductor)

    def test_configuration_checked_after_ironic_parses_it(self):
        calls = []

        def ironic_main():
            ironic_service.prepare_service('ironic_conductor', [])
            calls.append('served')

        with mock.patch.object(ironic_service, 'prepare_service',
                               lambda *a: calls.append('parsed')):
            self.run_with(ironic_main)
        self.assertEqual(['parsed', 'served'], calls)
        self.assertIs(self.real_prepare, ironic_service.prepare_service)

    def test_bad_option_stops_before_serving_in_one_line(self):
        self.conf.config(task_manager='nosuch', group='conductor')
        served = []

        def ironic_main():
            ironic_service.prepare_service('ironic_conductor', [])
            served.append(True)

        with mock.patch.object(ironic_service, 'prepare_service',
                               lambda *a: None):
            error = self.assertRaises(SystemExit, self.run_with, ironic_main)
        self.assertEqual([], served)
        self.assertEqual('ironic-conductor-resilient: [conductor] '
                         'task_manager = nosuch: no such task manager in '
                         'the ironic_locking.task_managers entry point '
                         'namespace', error.code)
        self.assertIs(self.real_prepare, ironic_service.prepare_service)

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


class UpstreamNamesTest(base.BaseTestCase):
    """The names of ironic the scripts rely on, pinned."""

    def test_commands_parse_configuration_through_prepare_service(self):
        for command in (ironic_conductor_cmd, singleprocess):
            self.assertIs(ironic_service, command.ironic_service)
            self.assertIn('ironic_service.prepare_service(',
                          inspect.getsource(command.main))

    def test_conductor_code_calls_acquire_through_the_module(self):
        self.assertTrue(callable(ironic_task_manager.acquire))
        for name in ('_lock', 'upgrade_lock', 'release_resources',
                     'downgrade_lock'):
            self.assertTrue(callable(getattr(
                ironic_task_manager.TaskManager, name)), name)


class WithoutIronicTest(base.BaseTestCase):
    """An install without the [ironic] extra: one line, exit status 1."""

    def run_script(self, module):
        # -S: no site-packages, so no ironic; the package from the tree.
        env = dict(os.environ, PYTHONPATH=REPO)
        return subprocess.run(
            [sys.executable, '-S', '-c',
             'import sys; from ironic_locking.cmd import %s as c; '
             'sys.exit(c.main())' % module],
            env=env, capture_output=True, text=True, timeout=60)

    def test_each_script_names_the_extra(self):
        for module, prog in (('conductor', 'ironic-conductor-resilient'),
                             ('ironic', 'ironic-resilient')):
            done = self.run_script(module)
            self.assertEqual(1, done.returncode, done.stderr)
            lines = done.stderr.splitlines()
            self.assertEqual(1, len(lines), done.stderr)
            self.assertTrue(lines[0].startswith(prog + ': '), lines[0])
            self.assertIn("No module named 'ironic'", lines[0])
            self.assertTrue(lines[0].endswith(
                'install openstack-resilience[ironic]'), lines[0])
