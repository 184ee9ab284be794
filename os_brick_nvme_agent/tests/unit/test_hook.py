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

import fcntl
import importlib
import os
import subprocess
import sys
from unittest import mock

import fixtures
import testtools

from os_brick_nvme_agent import _hook_loader
from os_brick_nvme_agent import hook
from os_brick_nvme_agent.tests.unit import fixtures_util


class HookFixture(fixtures.Fixture):
    """A temp agent config file the hook reads through the env variable."""

    def __init__(self, enabled=True, extra=''):
        self.enabled = enabled
        self.extra = extra

    def _setUp(self):
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.state_dir = os.path.join(self.dir, 'state')
        self.path = os.path.join(self.dir, 'agent.conf')
        self.write(self.enabled)
        self.useFixture(fixtures.EnvironmentVariable(hook.CONFIG_FILE_ENV,
                                                     self.path))
        self.addCleanup(hook._settings_cache.clear)
        self.spawn = self.useFixture(fixtures.MockPatchObject(
            hook, 'spawn')).mock

    def write(self, enabled):
        with open(self.path, 'w') as handle:
            handle.write('[nvme_agent]\nenabled = %s\nstate_dir = %s\n%s' % (
                enabled, self.state_dir, self.extra))

    def hold_lock(self):
        os.makedirs(self.state_dir, exist_ok=True)
        fd = os.open(hook.pid_file(self.state_dir), os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.addCleanup(os.close, fd)


class EnsureRunningTest(testtools.TestCase):

    def test_absent_config_is_a_cheap_no_op(self):
        self.useFixture(fixtures.EnvironmentVariable(
            hook.CONFIG_FILE_ENV, '/nonexistent/agent.conf'))
        with mock.patch.object(hook, 'spawn') as spawn, \
                mock.patch('oslo_config.cfg.ConfigOpts') as opts_cls:
            self.assertFalse(hook.NVMeOFAgent.ensure_running(object()))
        spawn.assert_not_called()
        opts_cls.assert_not_called()    # the file is not even parsed

    def test_disabled(self):
        fix = self.useFixture(HookFixture(enabled=False))
        self.assertFalse(hook.NVMeOFAgent.ensure_running(object()))
        fix.spawn.assert_not_called()

    def test_enabled_and_not_running_spawns(self):
        fix = self.useFixture(HookFixture(extra='python = /opt/py\n'))
        self.assertTrue(hook.NVMeOFAgent.ensure_running(object()))
        fix.spawn.assert_called_once_with('/opt/py', fix.path)

    def test_enabled_with_stale_pid_file_spawns(self):
        fix = self.useFixture(HookFixture())
        os.makedirs(fix.state_dir)
        with open(hook.pid_file(fix.state_dir), 'w') as handle:
            handle.write('12345\n')
        self.assertTrue(hook.NVMeOFAgent.ensure_running(object()))
        fix.spawn.assert_called_once_with(sys.executable, fix.path)

    def test_running_agent_is_not_started_twice(self):
        fix = self.useFixture(HookFixture())
        fix.hold_lock()
        self.assertFalse(hook.NVMeOFAgent.ensure_running(object()))
        fix.spawn.assert_not_called()

    def test_unreadable_lock_of_another_user_counts_as_running(self):
        fix = self.useFixture(HookFixture())
        with mock.patch('os.open', side_effect=PermissionError(13, 'no')):
            self.assertTrue(hook.is_running(fix.state_dir))
        self.assertFalse(hook.is_running(fix.state_dir))

    def test_config_change_is_seen(self):
        fix = self.useFixture(HookFixture(enabled=False))
        self.assertFalse(hook.NVMeOFAgent.ensure_running(object()))
        fix.write('true   ')   # different size: cache key changes
        self.assertTrue(hook.NVMeOFAgent.ensure_running(object()))

    def test_never_raises(self):
        fix = self.useFixture(HookFixture())
        fix.spawn.side_effect = OSError('fork failed')
        logger = self.useFixture(fixtures.FakeLogger(
            name='os_brick_nvme_agent.hook'))
        self.assertFalse(hook.NVMeOFAgent.ensure_running(object()))
        self.assertIn('Could not start', logger.output)
        self.assertIn('fork failed', logger.output)

    def test_broken_config_never_raises(self):
        fix = self.useFixture(HookFixture(extra='[nvme_agent\n'))
        logger = self.useFixture(fixtures.FakeLogger(
            name='os_brick_nvme_agent.hook'))
        self.assertFalse(hook.NVMeOFAgent.ensure_running(object()))
        fix.spawn.assert_not_called()
        self.assertIn('Invalid section', logger.output)


class SpawnTest(testtools.TestCase):

    def test_spawn_detached(self):
        proc = mock.Mock(pid=42)
        popen = mock.Mock(return_value=proc)
        hook.spawn('/usr/bin/python3', '/etc/x.conf', popen=popen)
        argv = popen.call_args[0][0]
        kwargs = popen.call_args[1]
        self.assertEqual(['/usr/bin/python3', '-m',
                          'os_brick_nvme_agent.cmd.agent', 'run', '--detach',
                          '--config-file', '/etc/x.conf'], argv)
        self.assertTrue(kwargs['start_new_session'])
        self.assertTrue(kwargs['close_fds'])
        for stream in ('stdin', 'stdout', 'stderr'):
            self.assertEqual(subprocess.DEVNULL, kwargs[stream])
        self.assertNotIn('shell', kwargs)
        proc.wait.assert_called_once_with(timeout=hook.SPAWN_TIMEOUT)

    def test_slow_launcher_is_left_alone(self):
        proc = mock.Mock(pid=42)
        proc.wait.side_effect = subprocess.TimeoutExpired('x', 1)
        hook.spawn('/usr/bin/python3', '/etc/x.conf',
                   popen=mock.Mock(return_value=proc))


class LoaderTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures_util.IsolatedImports())
        _hook_loader.uninstall()
        sys.modules.pop(_hook_loader.TARGET, None)

    def test_module_maps_to_the_hook(self):
        self.assertRaises(ImportError, importlib.import_module,
                          _hook_loader.TARGET)
        _hook_loader.install()
        _hook_loader.install()      # idempotent
        self.assertEqual(1, sum(isinstance(f, _hook_loader.AgentFinder)
                                for f in sys.meta_path))
        self.assertIsInstance(sys.meta_path[-1], _hook_loader.AgentFinder)
        module = importlib.import_module(_hook_loader.TARGET)
        self.assertIs(hook.NVMeOFAgent, module.NVMeOFAgent)

    def test_other_names_are_not_answered(self):
        finder = _hook_loader.AgentFinder()
        self.assertIsNone(finder.find_spec(
            'os_brick.initiator.connectors.iscsi'))
        self.assertIsNone(finder.find_spec('nvmeof_agent'))


class PthTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.site = self.useFixture(fixtures.TempDir()).path

    def test_install_and_remove(self):
        path = hook.install_pth(self.site)
        self.assertEqual(os.path.join(self.site, _hook_loader.PTH_NAME),
                         path)
        with open(path) as handle:
            self.assertEqual(_hook_loader.PTH_LINE, handle.read())
        self.assertEqual(path, hook.remove_pth(self.site))
        self.assertFalse(os.path.exists(path))
        self.assertIsNone(hook.remove_pth(self.site))

    def test_pth_makes_os_brick_find_the_agent(self):
        hook.install_pth(self.site)
        code = ('import site, sys\n'
                'site.addsitedir(sys.argv[1])\n'
                'from os_brick.initiator.connectors import nvmeof\n'
                'from os_brick_nvme_agent import hook\n'
                'assert nvmeof.nvmeof_agent.NVMeOFAgent is hook.NVMeOFAgent\n'
                'print("hooked")\n')
        out = subprocess.run([sys.executable, '-c', code, self.site],
                             capture_output=True, text=True, check=False)
        self.assertEqual('hooked', out.stdout.strip(), out.stderr)

    def test_status_sees_the_hook_in_a_site_directory(self):
        # 'hook install' may have hooked this interpreter's site-packages
        # (the kernel tests need it): then a fresh one imports it anyway.
        installed = os.path.exists(os.path.join(
            hook.site_dir(), _hook_loader.PTH_NAME))
        self.assertEqual((None, installed), hook.hook_status(self.site))
        path = hook.install_pth(self.site)
        self.assertEqual((path, True), hook.hook_status(self.site))

    def test_pth_line_survives_a_missing_package(self):
        line = _hook_loader.PTH_LINE.replace('os_brick_nvme_agent',
                                             'no_such_package_x')
        out = subprocess.run([sys.executable, '-c', line],
                             capture_output=True, text=True, check=False)
        self.assertEqual((0, ''), (out.returncode, out.stderr))
