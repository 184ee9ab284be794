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
import io
import os
from unittest import mock

import fixtures
from oslo_config import cfg
import testtools

from os_brick_nvme_agent.cmd import agent
from os_brick_nvme_agent import hook
from os_brick_nvme_agent import model
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
        with open(hook.pid_file(state_dir)) as handle:
            self.assertEqual(str(os.getpid()), handle.read().strip())
        self.assertTrue(hook.is_running(state_dir))
        waits = []
        self.assertIsNone(agent.acquire_pid_lock(state_dir, attempts=3,
                                                 wait=waits.append))
        self.assertEqual([0.05, 0.05], waits)

    def test_brief_check_does_not_turn_the_agent_away(self):
        state_dir = self.useFixture(fixtures.TempDir()).path
        checker = os.open(hook.pid_file(state_dir),
                          os.O_RDONLY | os.O_CREAT)
        fcntl.flock(checker, fcntl.LOCK_SH)

        def release(_seconds):
            os.close(checker)       # the check ends during the first wait
        fd = agent.acquire_pid_lock(state_dir, wait=release)
        self.addCleanup(os.close, fd)
        self.assertIsNotNone(fd)


class CommandTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.FakeLogger())
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
        with open(self.conf_file, 'w') as handle:
            handle.write('[nvme_agent]\nroot_dir = %s\nstate_dir = %s\n'
                         % (self.root, self.state_dir))

    def test_status_without_state(self):
        out = io.StringIO()
        self.assertEqual(0, agent.status(['--config-file', self.conf_file],
                                         out, cfg.ConfigOpts()))
        text = out.getvalue()
        self.assertIn('agent: not running', text)
        self.assertIn('no state file yet', text)
        rows = [line.split() for line in text.splitlines()]
        self.assertIn(['md127', 'vol-1', '0', 'nvme1n1', 'in_sync',
                       NQN % 'a', '-', '-'], rows)
        self.assertIn('pending actions: none', text)

    def test_status_with_state_and_pending_actions(self):
        self.sim.kill_target(NQN % 'b')
        record = state_mod.VolumeRecord(
            'vol-1', generation=3,
            replicas=(state_mod.ReplicaRecord('r2', NQN % 'b', 0.0,
                                              faulty_since=0.0),),
            pending=(state_mod.action_to_dict(model.RemoveLeg(
                'vol-1', 'md127', 'nvme2n1')),))
        state_mod.StateStore(os.path.join(self.state_dir, 'state.json')).save(
            state_mod.AgentState((record,)))
        out = io.StringIO()
        agent.status(['--config-file', self.conf_file], out,
                     cfg.ConfigOpts())
        text = out.getvalue()
        faulty = [line for line in text.splitlines() if 'faulty' in line]
        self.assertEqual(1, len(faulty))
        self.assertIn('r2', faulty[0])
        self.assertIn('missing', text)
        self.assertIn('pending actions: 1', text)
        self.assertIn('RemoveLeg  array=md127 device=nvme2n1', text)

    def test_status_with_corrupt_state_does_not_touch_it(self):
        os.makedirs(self.state_dir)
        path = os.path.join(self.state_dir, 'state.json')
        with open(path, 'w') as handle:
            handle.write('{not json')
        out = io.StringIO()
        agent.status(['--config-file', self.conf_file], out,
                     cfg.ConfigOpts())
        self.assertIn('state file unreadable', out.getvalue())
        self.assertEqual(['state.json'], os.listdir(self.state_dir))

    def test_run_disabled_exits_at_once(self):
        with mock.patch.object(agent, 'build_service') as build:
            self.assertEqual(0, agent.run(['--config-file', self.conf_file],
                                          cfg.ConfigOpts()))
        build.assert_not_called()
        self.assertFalse(os.path.exists(self.state_dir))

    def test_run_when_another_agent_runs(self):
        with open(self.conf_file, 'a') as handle:
            handle.write('enabled = true\n')
        fd = agent.acquire_pid_lock(self.state_dir)
        self.addCleanup(os.close, fd)
        self.useFixture(fixtures.MockPatch('time.sleep'))
        with mock.patch.object(agent, 'build_service') as build:
            self.assertEqual(0, agent.run(['--config-file', self.conf_file],
                                          cfg.ConfigOpts()))
        build.assert_not_called()

    def test_run_with_unknown_provisioner_fails_naming_the_option(self):
        with open(self.conf_file, 'a') as handle:
            handle.write('enabled = true\nprovisioner = no-such-plugin\n')
        log = self.useFixture(fixtures.FakeLogger())
        self.assertEqual(2, agent.run(['--config-file', self.conf_file],
                                      cfg.ConfigOpts()))
        self.assertIn('no-such-plugin', log.output)
        self.assertIn('[nvme_agent] provisioner', log.output)
        self.assertNotIn('Traceback', log.output)
        # The single-instance lock is released for the next, fixed start.
        fd = agent.acquire_pid_lock(self.state_dir, attempts=1)
        self.assertIsNotNone(fd)
        os.close(fd)


class HookCommandTest(testtools.TestCase):

    def test_install_remove(self):
        site = self.useFixture(fixtures.TempDir()).path
        out = io.StringIO()
        self.assertEqual(0, agent.hook_command(['install', '--dir', site],
                                               out))
        self.assertTrue(os.path.exists(
            os.path.join(site, hook._hook_loader.PTH_NAME)))
        self.assertEqual(0, agent.hook_command(['remove', '--dir', site],
                                               out))
        self.assertEqual([], os.listdir(site))
        self.assertEqual(0, agent.hook_command(['remove', '--dir', site],
                                               out))
        self.assertIn('not installed', out.getvalue())

    def test_status(self):
        out = io.StringIO()
        with mock.patch.object(hook, 'hook_status',
                               return_value=(None, False)):
            self.assertEqual(1, agent.hook_command(['status'], out))
        self.assertIn('pth file: absent', out.getvalue())
        self.assertIn('importable: no', out.getvalue())

    def test_usage(self):
        out = io.StringIO()
        self.assertEqual(2, agent.hook_command(['frobnicate'], out))
        self.assertIn('usage', out.getvalue())
