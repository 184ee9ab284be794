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

import os
import subprocess
import sys
from unittest import mock

import fixtures
from oslo_config import cfg
from oslo_config import fixture as cfg_fixture
from oslo_privsep.test import fixture as privsep_fixture
import testtools

from os_brick_nvme_agent import exception
from os_brick_nvme_agent import opts
from os_brick_nvme_agent import privileged
from os_brick_nvme_agent.privileged import commands

NQN = 'nqn.2016-06.io.spdk:cnode1'


class InProcess(fixtures.Fixture):
    """Run the privsep entrypoints in this process (client mode off)."""

    def _setUp(self):
        privileged.default.set_client_mode(False)
        self.addCleanup(privileged.default.set_client_mode, True)


class CommandsTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        opts.register_opts(cfg.CONF)
        self.conf = self.useFixture(cfg_fixture.Config(cfg.CONF))
        self.conf.config(command_timeout=5.0, group='nvme_agent')
        self.useFixture(InProcess())
        # the root-only execution boundary
        self.run = self.useFixture(fixtures.MockPatch(
            'subprocess.run', return_value=subprocess.CompletedProcess(
                [], 0, 'out', 'err'))).mock

    def argv(self):
        return self.run.call_args[0][0]

    def test_mdadm_manage(self):
        self.assertEqual((0, 'out', 'err'),
                         commands.mdadm_manage('fail', 'md127', 'nvme1n1'))
        self.assertEqual(['mdadm', '--manage', '/dev/md127', '--fail',
                          '/dev/nvme1n1'], self.argv())
        kwargs = self.run.call_args[1]
        self.assertNotIn('shell', kwargs)
        self.assertEqual(5.0, kwargs['timeout'])
        commands.mdadm_manage('remove', 'md127', 'failed')
        self.assertEqual(['mdadm', '--manage', '/dev/md127', '--remove',
                          'failed'], self.argv())
        commands.mdadm_manage('re-add', 'md127', 'nvme3n1')
        self.assertEqual('--re-add', self.argv()[3])

    def test_executables_are_not_chosen_by_the_config(self):
        # a config file the unprivileged agent hands to the helper cannot
        # name the binary run as root: the old options are gone
        self.assertRaises(cfg.NoSuchOptError, self.conf.config,
                          mdadm_path='/tmp/evil', group='nvme_agent')
        self.assertRaises(cfg.NoSuchOptError, self.conf.config,
                          nvme_path='/tmp/evil', group='nvme_agent')
        commands.nvme_disconnect(NQN)
        self.assertEqual('nvme', self.argv()[0])

    def test_privileged_daemon_writes_sysfs_under_slash_only(self):
        self.conf.config(root_dir='/tmp/evil', group='nvme_agent')
        self.assertTrue(commands.fast_io_fail_tmo_path('nvme3').startswith(
            '/tmp/evil/'))
        # privsep-helper registers privsep_context on the global CONF
        opt = cfg.StrOpt('privsep_context')
        cfg.CONF.register_cli_opt(opt)
        self.addCleanup(cfg.CONF.unregister_opt, opt)
        self.assertTrue(commands.in_privsep_daemon())
        self.assertEqual(
            '/sys/class/nvme-fabrics/ctl/nvme3/fast_io_fail_tmo',
            commands.fast_io_fail_tmo_path('nvme3'))

    def test_nvme(self):
        commands.nvme_connect('tcp', '192.0.2.10', 4420, NQN, 30)
        self.assertEqual(['nvme', 'connect', '-t', 'tcp', '-a',
                          '192.0.2.10', '-s', '4420', '-n', NQN,
                          '--ctrl-loss-tmo=30'], self.argv())
        commands.nvme_disconnect(NQN)
        self.assertEqual(['nvme', 'disconnect', '-n', NQN],
                         self.argv())

    def test_write_fast_io_fail_tmo(self):
        root = self.useFixture(fixtures.TempDir()).path
        self.conf.config(root_dir=root, group='nvme_agent')
        path = commands.fast_io_fail_tmo_path('nvme3')
        self.assertEqual(os.path.join(
            root, 'sys/class/nvme-fabrics/ctl/nvme3/fast_io_fail_tmo'), path)
        os.makedirs(os.path.dirname(path))
        with open(path, 'w') as handle:
            handle.write('off\n')
        self.assertEqual((0, '', ''), commands.write_fast_io_fail_tmo(
            'nvme3', 5))
        with open(path) as handle:
            self.assertEqual('5\n', handle.read())
        # a vanished controller: reported, and no file is created
        code, _out, err = commands.write_fast_io_fail_tmo('nvme4', 5)
        self.assertEqual(1, code)
        self.assertIn('nvme4', err)
        self.assertFalse(os.path.exists(os.path.dirname(
            commands.fast_io_fail_tmo_path('nvme4'))))
        for args in (('../../etc', 5), ('nvme3', '5; reboot'),
                     ('nvme3', 86401)):
            self.assertRaises(exception.InvalidArgument,
                              commands.write_fast_io_fail_tmo, *args)
        self.run.assert_not_called()

    def test_invalid_arguments_never_run(self):
        bad_calls = [
            (commands.mdadm_manage, ('stop', 'md127', 'nvme1n1')),
            (commands.mdadm_manage, ('add', 'md127', 'failed')),
            (commands.mdadm_manage, ('fail', '/dev/md127', 'nvme1n1')),
            (commands.mdadm_manage, ('add', 'md127 --zero', 'nvme1n1')),
            (commands.nvme_connect, ('tcp', '-o', 4420, NQN, 30)),
            (commands.nvme_connect, ('tcp', '192.0.2.1', 4420, 'x', 30)),
            (commands.nvme_connect, ('loop', '192.0.2.1', 4420, NQN, 30)),
            (commands.nvme_disconnect, ('--all',)),
        ]
        for func, args in bad_calls:
            self.assertRaises(exception.InvalidArgument, func, *args)
        self.run.assert_not_called()

    def test_timeout_and_missing_binary(self):
        self.run.side_effect = subprocess.TimeoutExpired(['mdadm'], 5)
        code, _out, err = commands.mdadm_manage('add', 'md127', 'nvme1n1')
        self.assertEqual(124, code)
        self.assertIn('timed out', err)
        self.run.side_effect = FileNotFoundError('no mdadm')
        self.assertEqual(127, commands.mdadm_manage('add', 'md127',
                                                    'nvme1n1')[0])


class PrivsepChannelTest(testtools.TestCase):
    """The entrypoints work through a real (unprivileged) privsep daemon."""

    def test_command_runs_in_the_daemon(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        record = os.path.join(tmp, 'argv')
        fake = os.path.join(tmp, 'nvme')
        with open(fake, 'w') as handle:
            handle.write('#!%s\nimport os, sys\nopen(%r, "w").write('
                         '"%%d %%s" %% (os.getpid(), " ".join(sys.argv[1:])))'
                         '\n' % (sys.executable, record))
        os.chmod(fake, 0o755)
        # the helper finds 'nvme' on its own PATH
        self.useFixture(fixtures.EnvironmentVariable(
            'PATH', tmp + os.pathsep + os.environ.get('PATH', '')))
        opts.register_opts(cfg.CONF)
        self.useFixture(privsep_fixture.UnprivilegedPrivsepFixture(
            privileged.default, {}))
        code, _out, _err = commands.nvme_disconnect(NQN)
        self.assertEqual(0, code)
        with open(record) as handle:
            pid, args = handle.read().split(' ', 1)
        self.assertEqual('disconnect -n ' + NQN, args)
        self.assertNotEqual(os.getpid(), int(pid))
        with mock.patch('subprocess.run') as run:
            self.assertRaises(exception.InvalidArgument,
                              commands.nvme_disconnect, 'bogus')
            run.assert_not_called()
