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
import logging
import os
import subprocess
import sys
from unittest import mock

import fixtures
import testtools

from os_brick_nvme_agent import _hook_loader
from os_brick_nvme_agent import daemonize
from os_brick_nvme_agent import hook
from os_brick_nvme_agent import hook_install
from os_brick_nvme_agent import starter
from os_brick_nvme_agent.tests.unit import fixtures_util


class HookFixture(fixtures.Fixture):
    """A temp agent config file the hook reads through the env variable.

    ``start`` replaces :func:`starter.start` (it would run a process):
    it returns None (started) unless a test sets its return value.
    """

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
        self.addCleanup(hook._last_failure.clear)
        self.start = self.useFixture(fixtures.MockPatchObject(
            starter, 'start', return_value=None)).mock
        self.useFixture(fixtures.MockPatchObject(
            daemonize, 'systemd_booted', return_value=False))

    def write(self, enabled, extra=None):
        with open(self.path, 'w') as handle:
            handle.write('[nvme_agent]\nenabled = %s\nstate_dir = %s\n%s' % (
                enabled, self.state_dir,
                self.extra if extra is None else extra))

    def hold_lock(self):
        os.makedirs(self.state_dir, exist_ok=True)
        fd = os.open(hook.pid_file(self.state_dir), os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.addCleanup(os.close, fd)


def launcher(python, path):
    return [python, '-m', 'os_brick_nvme_agent.cmd.agent', 'run',
            '--detach', '--config-file', path]


class EnsureRunningTest(testtools.TestCase):

    def test_absent_config_is_a_cheap_no_op(self):
        self.useFixture(fixtures.EnvironmentVariable(
            hook.CONFIG_FILE_ENV, '/nonexistent/agent.conf'))
        with mock.patch.object(starter, 'start') as start, \
                mock.patch('oslo_config.cfg.ConfigOpts') as opts_cls:
            self.assertFalse(hook.NVMeOFAgent.ensure_running(object()))
        start.assert_not_called()
        opts_cls.assert_not_called()    # the file is not even parsed

    def test_disabled(self):
        fix = self.useFixture(HookFixture(enabled=False))
        self.assertFalse(hook.NVMeOFAgent.ensure_running(object()))
        fix.start.assert_not_called()

    def test_enabled_and_not_running_runs_the_launcher(self):
        fix = self.useFixture(HookFixture(extra='python = /opt/py\n'))
        self.assertTrue(hook.NVMeOFAgent.ensure_running(object()))
        fix.start.assert_called_once_with(launcher('/opt/py', fix.path))

    def test_enabled_with_stale_pid_file_starts(self):
        fix = self.useFixture(HookFixture())
        os.makedirs(fix.state_dir)
        with open(hook.pid_file(fix.state_dir), 'w') as handle:
            handle.write('12345\n')
        self.assertTrue(hook.NVMeOFAgent.ensure_running(object()))
        fix.start.assert_called_once_with(launcher(sys.executable, fix.path))

    def test_systemd_host_starts_the_unit(self):
        fix = self.useFixture(HookFixture())
        daemonize.systemd_booted.return_value = True
        with mock.patch('os.geteuid', return_value=0):
            self.assertTrue(hook.NVMeOFAgent.ensure_running(object()))
        fix.start.assert_called_once_with(
            ['systemctl', 'start', 'os-brick-nvme-agent.service'])

    def test_systemd_through_sudo_for_a_service_user(self):
        fix = self.useFixture(HookFixture(
            extra='start_method = systemd\nsystemd_unit = agent.service\n'))
        with mock.patch('os.geteuid', return_value=115):
            self.assertTrue(hook.NVMeOFAgent.ensure_running(object()))
        fix.start.assert_called_once_with(
            ['sudo', '-n', 'systemctl', 'start', 'agent.service'])

    def test_running_agent_is_not_started_twice(self):
        fix = self.useFixture(HookFixture())
        fix.hold_lock()
        self.assertFalse(hook.NVMeOFAgent.ensure_running(object()))
        fix.start.assert_not_called()

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

    def test_failed_start_is_logged_once_at_error(self):
        fix = self.useFixture(HookFixture())
        logger = self.useFixture(fixtures.FakeLogger(
            name='os_brick_nvme_agent.hook', level=logging.INFO))
        fix.start.return_value = (
            'the agent launcher exited with status 2: [nvme_agent] '
            'provisioner: no replica provisioner named bogus')
        for _attempt in range(3):
            self.assertFalse(hook.NVMeOFAgent.ensure_running(object()))
        self.assertEqual(3, fix.start.call_count)   # every connect retries
        lines = logger.output.splitlines()
        errors = [line for line in lines if 'did not start' in line]
        self.assertEqual(1, len(errors), lines)
        self.assertIn('provisioner named bogus', errors[0])
        # "Starting" is said once too, not on every connect
        self.assertEqual(1, sum('Starting' in line for line in lines), lines)
        # a new failure is new news; a success clears the memory
        fix.start.return_value = 'systemctl start x.service exited ...'
        hook.NVMeOFAgent.ensure_running(object())
        fix.start.return_value = None
        self.assertTrue(hook.NVMeOFAgent.ensure_running(object()))
        fix.start.return_value = 'again'
        hook.NVMeOFAgent.ensure_running(object())
        self.assertEqual(3, sum('did not start' in line
                                for line in logger.output.splitlines()))

    def test_never_raises(self):
        fix = self.useFixture(HookFixture())
        fix.start.side_effect = OSError('fork failed')
        logger = self.useFixture(fixtures.FakeLogger(
            name='os_brick_nvme_agent.hook'))
        self.assertFalse(hook.NVMeOFAgent.ensure_running(object()))
        self.assertIn('did not start: OSError: fork failed', logger.output)
        self.assertNotIn('Traceback', logger.output)

    def test_broken_config_never_raises(self):
        fix = self.useFixture(HookFixture(extra='[nvme_agent\n'))
        logger = self.useFixture(fixtures.FakeLogger(
            name='os_brick_nvme_agent.hook'))
        self.assertFalse(hook.NVMeOFAgent.ensure_running(object()))
        fix.start.assert_not_called()
        self.assertIn('Invalid section', logger.output)


class StarterTest(testtools.TestCase):

    def test_launcher_runs_detached_and_is_waited_for(self):
        run = mock.Mock(return_value=subprocess.CompletedProcess([], 0))
        argv = launcher('/usr/bin/python3', '/etc/x.conf')
        self.assertIsNone(starter.start(argv, run=run))
        self.assertEqual(argv, run.call_args[0][0])
        kwargs = run.call_args[1]
        self.assertTrue(kwargs['start_new_session'])
        self.assertTrue(kwargs['close_fds'])
        self.assertEqual(subprocess.PIPE, kwargs['stderr'])
        self.assertEqual(starter.START_TIMEOUT, kwargs['timeout'])
        self.assertNotIn('shell', kwargs)

    def test_failure_is_the_last_line_of_stderr(self):
        run = mock.Mock(return_value=subprocess.CompletedProcess(
            [], 2, stderr='noise\nos-brick-nvme-agent: error: [DEFAULT] '
                          'log_file /x: Permission denied\n'))
        error = starter.start(launcher('/py', '/c'), run=run)
        self.assertEqual('the agent launcher (/py run --detach) exited with '
                         'status 2: os-brick-nvme-agent: error: [DEFAULT] '
                         'log_file /x: Permission denied', error)

    def test_systemctl_failure_and_timeout(self):
        run = mock.Mock(return_value=subprocess.CompletedProcess(
            [], 1, stderr='Job for a.service failed.\n'))
        self.assertEqual(
            'systemctl start a.service exited with status 1: Job for '
            'a.service failed.',
            starter.start(['sudo', '-n', 'systemctl', 'start', 'a.service'],
                          run=run))
        run.side_effect = subprocess.TimeoutExpired('x', 60)
        self.assertIn('did not finish within 60s',
                      starter.start(['systemctl', 'start', 'a.service'],
                                    run=run))
        run.side_effect = FileNotFoundError(2, 'No such file', 'systemctl')
        self.assertIn('No such file', starter.start(
            ['systemctl', 'start', 'a.service'], run=run))

    def test_start_method(self):
        self.assertEqual('systemd', starter.start_method('auto', lambda: True))
        self.assertEqual('detach', starter.start_method('auto', lambda: False))
        self.assertEqual('detach', starter.start_method('detach',
                                                        lambda: True))


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

    def test_host_service_loads_only_the_hook(self):
        # what os-brick's import pulls into nova-compute: no installer, no
        # loader (the old import cycle), no daemon code
        code = ('import sys\n'
                'from os_brick_nvme_agent import hook\n'
                'print(" ".join(sorted(m for m in sys.modules\n'
                '      if m.startswith("os_brick_nvme_agent"))))\n')
        out = subprocess.run([sys.executable, '-S', '-c', code],
                             capture_output=True, text=True, check=True,
                             env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                                 p for p in sys.path if p)))
        self.assertEqual('os_brick_nvme_agent os_brick_nvme_agent.hook '
                         'os_brick_nvme_agent.pidlock', out.stdout.strip())

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
        path = hook_install.install_pth(self.site)
        self.assertEqual(os.path.join(self.site, _hook_loader.PTH_NAME),
                         path)
        with open(path) as handle:
            self.assertEqual(_hook_loader.PTH_LINE, handle.read())
        self.assertEqual(path, hook_install.remove_pth(self.site))
        self.assertFalse(os.path.exists(path))
        self.assertIsNone(hook_install.remove_pth(self.site))

    def test_pth_makes_os_brick_find_the_agent(self):
        hook_install.install_pth(self.site)
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
            hook_install.site_dir(), _hook_loader.PTH_NAME))
        self.assertEqual((None, installed),
                         hook_install.hook_status(self.site))
        path = hook_install.install_pth(self.site)
        self.assertEqual((path, True), hook_install.hook_status(self.site))

    def test_pth_line_survives_a_missing_package(self):
        line = _hook_loader.PTH_LINE.replace('os_brick_nvme_agent',
                                             'no_such_package_x')
        out = subprocess.run([sys.executable, '-c', line],
                             capture_output=True, text=True, check=False)
        self.assertEqual((0, ''), (out.returncode, out.stderr))
