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
import importlib.util
import io
import os
from unittest import mock

import fixtures
from oslo_config import cfg
import testtools

from os_brick_nvme_agent import _hook_loader
from os_brick_nvme_agent.cmd import agent
from os_brick_nvme_agent.cmd import status
from os_brick_nvme_agent import daemonize
from os_brick_nvme_agent import hook
from os_brick_nvme_agent import hook_install
from os_brick_nvme_agent import journal
from os_brick_nvme_agent import model
from os_brick_nvme_agent import pidlock
from os_brick_nvme_agent import state as state_mod
from os_brick_nvme_agent.tests.functional import simhost

NQN = 'nqn.2014-08.org.example:vol-1-%s'


class SplitCommandTest(testtools.TestCase):

    def test_split(self):
        self.assertEqual(('run', ['--config-file', 'x']),
                         agent.split_command(['--config-file', 'x']))
        self.assertEqual(('status', []), agent.split_command(['status']))
        self.assertEqual(('hook', ['install']),
                         agent.split_command(['hook', 'install']))
        self.assertEqual(('run', ['--detach']),
                         agent.split_command(['run', '--detach']))


class PidLockTest(testtools.TestCase):

    def test_single_instance(self):
        state_dir = os.path.join(self.useFixture(fixtures.TempDir()).path,
                                 'state')
        self.assertFalse(hook.is_running(state_dir))
        fd = agent.acquire_pid_lock(state_dir)
        self.addCleanup(os.close, fd)
        self.assertIsNotNone(fd)
        self.assertEqual(os.getpid(), pidlock.read_pid(state_dir))
        self.assertTrue(hook.is_running(state_dir))
        waits = []
        self.assertIsNone(pidlock.acquire(state_dir, attempts=3,
                                          wait=waits.append))
        self.assertEqual([0.05, 0.05], waits)

    def test_brief_check_does_not_turn_the_agent_away(self):
        state_dir = self.useFixture(fixtures.TempDir()).path
        checker = os.open(hook.pid_file(state_dir),
                          os.O_RDONLY | os.O_CREAT)
        fcntl.flock(checker, fcntl.LOCK_SH)

        def release(_seconds):
            os.close(checker)       # the check ends during the first wait
        fd = pidlock.acquire(state_dir, wait=release)
        self.addCleanup(os.close, fd)
        self.assertIsNotNone(fd)


class CommandTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger())
        # run() sets up oslo.log for the process; keep it off the test's
        # global logging
        self.useFixture(fixtures.MockPatch('oslo_log.log.setup'))
        self.root = self.useFixture(fixtures.TempDir()).path
        self.useFixture(fixtures.EnvironmentVariable(
            hook.CONFIG_FILE_ENV, os.path.join(self.root, 'none.conf')))
        self.sim = simhost.SimHost(self.root)
        for name in ('a', 'b'):
            self.sim.add_target(NQN % name)
        self.sim.create_array('vol-1', [self.sim.connect(NQN % 'a'),
                                        self.sim.connect(NQN % 'b')])
        self.state_dir = os.path.join(self.root, 'state')
        self.conf_file = os.path.join(self.root, 'agent.conf')
        self.write_conf()

    def write_conf(self, extra='', default=''):
        with open(self.conf_file, 'w') as handle:
            handle.write('[DEFAULT]\n%s\n[nvme_agent]\nroot_dir = %s\n'
                         'state_dir = %s\n%s' % (default, self.root,
                                                 self.state_dir, extra))

    def status(self):
        out = io.StringIO()
        conf = agent.load_conf(['--config-file', self.conf_file],
                               cfg.ConfigOpts())
        self.assertEqual(0, status.command(conf, out))
        return out.getvalue()

    def run_agent(self, *args):
        """(exit status, what stderr shows) of ``run``."""
        err = io.StringIO()
        code = agent.run(['--config-file', self.conf_file] + list(args),
                         cfg.ConfigOpts(), err)
        return code, err.getvalue()

    def test_status_without_state(self):
        text = self.status()
        self.assertIn('agent: not running', text)
        self.assertIn('no state file yet', text)
        self.assertIn('provisioner: unknown (the agent has not probed it '
                      'yet)', text)
        rows = [line.split() for line in text.splitlines()]
        self.assertIn(['md127', 'vol-1', '0', 'nvme1n1', 'in_sync',
                       NQN % 'a', '-', '-'], rows)
        self.assertIn('pending actions: none', text)
        self.assertIn('last event per volume: none', text)

    def test_status_with_state_and_pending_actions(self):
        self.sim.kill_target(NQN % 'b')
        record = state_mod.VolumeRecord(
            'vol-1', generation=3,
            replicas=(state_mod.ReplicaRecord('r2', NQN % 'b', 0.0,
                                              faulty_since=0.0),),
            pending=(model.RemoveLeg('vol-1', 'md127', 'nvme2n1'),))
        state_mod.StateStore(os.path.join(self.state_dir, 'state.json')).save(
            state_mod.AgentState((record,)))
        text = self.status()
        faulty = [line for line in text.splitlines() if 'faulty' in line]
        self.assertEqual(1, len(faulty))
        self.assertIn('r2', faulty[0])
        self.assertIn('missing', text)
        self.assertIn('pending actions: 1', text)
        self.assertIn('RemoveLeg  array=md127 device=nvme2n1', text)

    def test_status_shows_last_events_and_reachability(self):
        os.makedirs(self.state_dir)
        events = journal.Journal(journal.path(self.state_dir),
                                 clock=lambda: 0.0)
        events.record(journal.PROVISIONER_REACHABLE, provisioner='static')
        events.record(journal.FAULT_SEEN, 'vol-1', replica='r2')
        events.record(journal.REPORT_SENT, 'vol-1', replica='r2',
                      state='faulty')
        events.record(journal.PROVISIONER_UNREACHABLE,
                      error='connection refused')
        text = self.status()
        self.assertIn('provisioner: UNREACHABLE since 1970-01-01T00:00:00Z: '
                      'connection refused', text)
        self.assertIn('last event per volume: 1', text)
        self.assertIn('vol-1   1970-01-01T00:00:00Z  report_sent  '
                      'replica=r2 state=faulty', text)

    def test_events_command(self):
        out = io.StringIO()
        conf = agent.load_conf(['--config-file', self.conf_file],
                               cfg.ConfigOpts())
        status.events_command(conf, [], out)
        self.assertEqual('no events recorded yet\n', out.getvalue())
        os.makedirs(self.state_dir)
        events = journal.Journal(journal.path(self.state_dir),
                                 clock=lambda: 60.0)
        events.record(journal.FAULT_SEEN, 'vol-1', replica='r2')
        events.record(journal.LEG_ADDED, 'vol-2', device='nvme4n1')
        with open(journal.path(self.state_dir), 'a') as handle:
            handle.write('{"cut by a power los\n')
        out = io.StringIO()
        status.events_command(conf, ['--volume', 'vol-2'], out)
        self.assertEqual(
            ['WHEN                  VOLUME  EVENT      DETAIL',
             '1970-01-01T00:01:00Z  vol-2   leg_added  device=nvme4n1',
             '(1 unreadable journal lines skipped)'],
            out.getvalue().splitlines())

    def test_status_with_corrupt_state_does_not_touch_it(self):
        os.makedirs(self.state_dir)
        path = os.path.join(self.state_dir, 'state.json')
        with open(path, 'w') as handle:
            handle.write('{not json')
        self.assertIn('state file unreadable', self.status())
        self.assertEqual(['state.json'], os.listdir(self.state_dir))

    def test_run_disabled_exits_at_once(self):
        with mock.patch.object(agent, 'build_service') as build:
            self.assertEqual((0, ''), self.run_agent())
        build.assert_not_called()
        self.assertFalse(os.path.exists(self.state_dir))

    def test_run_when_another_agent_runs(self):
        self.write_conf('enabled = true\n')
        fd = agent.acquire_pid_lock(self.state_dir)
        self.addCleanup(os.close, fd)
        self.useFixture(fixtures.MockPatch('time.sleep'))
        with mock.patch.object(agent, 'build_service') as build:
            self.assertEqual((0, ''), self.run_agent())
        build.assert_not_called()

    def assertOneLine(self, code, err, *words):
        self.assertEqual(2, code)
        self.assertEqual(1, len(err.splitlines()), err)
        self.assertTrue(err.startswith('os-brick-nvme-agent: error: '), err)
        for word in words:
            self.assertIn(word, err)
        self.assertNotIn('Traceback', err + self.log.output)

    def test_run_with_unknown_provisioner_fails_naming_the_option(self):
        self.write_conf('enabled = true\nprovisioner = no-such-plugin\n')
        code, err = self.run_agent()
        self.assertOneLine(code, err, 'no-such-plugin',
                           '[nvme_agent] provisioner')
        self.assertIn('no-such-plugin', self.log.output)
        # The single-instance lock is released for the next, fixed start.
        fd = pidlock.acquire(self.state_dir, attempts=1)
        self.assertIsNotNone(fd)
        os.close(fd)

    def test_bad_option_value_is_one_line(self):
        self.write_conf('enabled = true\ngrace_period = -5\n')
        code, err = self.run_agent()
        self.assertOneLine(code, err, 'grace_period', self.conf_file)

    def test_bad_choice_and_inconsistent_backoff(self):
        self.write_conf('enabled = true\nstart_method = cron\n')
        self.assertOneLine(*self.run_agent(), 'start_method')
        self.write_conf('enabled = true\nprovisioner_backoff_initial = 9\n'
                        'provisioner_backoff_max = 2\n')
        self.assertOneLine(*self.run_agent(), 'provisioner_backoff_initial',
                           'provisioner_backoff_max')

    def test_missing_and_unparsable_config_file(self):
        code, err = self.run_agent('--config-file', '/nonexistent/a.conf')
        self.assertOneLine(code, err, '/nonexistent/a.conf')
        with open(self.conf_file, 'a') as handle:
            handle.write('[broken\n')
        self.assertOneLine(*self.run_agent(), self.conf_file)

    def test_bad_provisioner_option_is_one_line(self):
        self.write_conf('enabled = true\nprovisioner = kioxia\n'
                        '[provisioner_kioxia]\ntoken = t\n'
                        'read_timeout = fast\n')
        self.assertOneLine(*self.run_agent(), 'read_timeout')
        self.write_conf('enabled = true\nprovisioner = kioxia\n')
        self.assertOneLine(*self.run_agent(), '[provisioner_kioxia] needs '
                           'token, or token_url, client_id and client_secret')

    def test_detached_agent_needs_a_log_destination(self):
        self.write_conf('enabled = true\n')
        with mock.patch('os.fork') as fork:
            self.assertOneLine(*self.run_agent('--detach'), 'log_file',
                               'use_syslog', 'use_journal')
        fork.assert_not_called()

    def test_unwritable_log_file_is_reported_before_detaching(self):
        self.write_conf('enabled = true\n', 'log_file = /nonexistent/a.log')
        with mock.patch('oslo_log.log.setup',
                        side_effect=FileNotFoundError(
                            2, 'No such file or directory')), \
                mock.patch('os.fork') as fork:
            self.assertOneLine(*self.run_agent('--detach'),
                               '/nonexistent/a.log', 'No such file')
        fork.assert_not_called()

    def test_missing_threading_backend_names_the_extra(self):
        self.write_conf('enabled = true\n')
        real = importlib.util.find_spec
        with mock.patch('importlib.util.find_spec', side_effect=lambda n: (
                None if n == 'cotyledon' else real(n))):
            self.assertOneLine(*self.run_agent(), 'cotyledon',
                               'oslo.service[threading]>=4.2')

    def test_unusable_state_dir_names_the_option(self):
        blocker = os.path.join(self.root, 'file')
        open(blocker, 'w').close()
        self.state_dir = os.path.join(blocker, 'state')
        self.write_conf('enabled = true\n')
        self.assertOneLine(*self.run_agent(), '[nvme_agent] state_dir',
                           blocker)

    def test_detach_moves_out_then_forks_after_the_checks(self):
        self.write_conf('enabled = true\n', 'log_file = %s/a.log' % self.root)
        calls = []
        with mock.patch.object(agent, 'build_service',
                               return_value=mock.sentinel.agent), \
                mock.patch.object(daemonize, 'move_out',
                                  side_effect=calls.append), \
                mock.patch.object(daemonize, 'detach',
                                  side_effect=lambda: calls.append('fork')), \
                mock.patch.object(agent, 'serve', return_value=0) as serve:
            self.assertEqual((0, ''), self.run_agent('--detach'))
        self.assertEqual(['os-brick-nvme-agent', 'fork'], calls)
        self.assertIs(mock.sentinel.agent, serve.call_args[0][1])
        os.close(serve.call_args[0][2])

    def test_main_without_os_brick_names_the_extra(self):
        err = io.StringIO()
        with mock.patch('importlib.util.find_spec', return_value=None):
            self.assertEqual(2, agent.main(['status'], err=err))
        self.assertEqual('os-brick-nvme-agent: os-brick is not installed: '
                         'install openstack-resilience[os-brick]\n',
                         err.getvalue())


class HookCommandTest(testtools.TestCase):

    def test_install_remove(self):
        site = self.useFixture(fixtures.TempDir()).path
        out = io.StringIO()
        self.assertEqual(0, hook_install.command(['install', '--dir', site],
                                                 out))
        self.assertTrue(os.path.exists(
            os.path.join(site, _hook_loader.PTH_NAME)))
        self.assertEqual(0, hook_install.command(['remove', '--dir', site],
                                                 out))
        self.assertEqual([], os.listdir(site))
        self.assertEqual(0, hook_install.command(['remove', '--dir', site],
                                                 out))
        self.assertIn('not installed', out.getvalue())

    def test_status(self):
        out = io.StringIO()
        with mock.patch.object(hook_install, 'hook_status',
                               return_value=(None, False)):
            self.assertEqual(1, hook_install.command(['status'], out))
        self.assertIn('pth file: absent', out.getvalue())
        self.assertIn('importable: no', out.getvalue())

    def test_usage(self):
        out = io.StringIO()
        self.assertEqual(2, hook_install.command(['frobnicate'], out))
        self.assertIn('usage', out.getvalue())
