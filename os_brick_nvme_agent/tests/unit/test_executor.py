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

import fixtures
from oslo_config import cfg
import testtools

from os_brick_nvme_agent import exception
from os_brick_nvme_agent import executor
from os_brick_nvme_agent import model
from os_brick_nvme_agent import opts

LS = model.LegState
NQN = 'nqn.2016-06.io.spdk:cnode%d'


class FakeCommands(object):
    """The privileged command module, answering from a script."""

    def __init__(self, results=None):
        self.calls = []
        self.results = list(results or [])

    def _answer(self, *call):
        self.calls.append(call)
        return self.results.pop(0) if self.results else (0, '', '')

    def mdadm_manage(self, operation, array, device):
        return self._answer('mdadm', operation, array, device)

    def nvme_connect(self, transport, address, port, nqn, ctrl_loss_tmo):
        return self._answer('connect', transport, address, port, nqn,
                            ctrl_loss_tmo)

    def nvme_disconnect(self, nqn):
        return self._answer('disconnect', nqn)

    def write_fast_io_fail_tmo(self, ctrl, seconds):
        return self._answer('fast_io_fail_tmo', ctrl, seconds)


def host_with(*legs):
    return model.HostState(arrays=(model.Array(
        name='md127', md_name='vol', uuid=None, level='raid1',
        raid_disks=2, degraded=0, array_state='clean', sync_action='idle',
        legs=tuple(legs)),))


def leg(device, state, slot=0):
    return model.Leg(device=device, slot=slot, state=state)


class ExecutorTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.conf = cfg.ConfigOpts()
        opts.register_opts(self.conf)
        self.conf([])
        self.conf.set_override('ctrl_loss_tmo', 15, group='nvme_agent')
        self.commands = FakeCommands()
        self.host = host_with(leg('nvme1n1', LS.IN_SYNC),
                              leg('nvme2n1', LS.IN_SYNC, 1))
        self.executor = executor.Executor(self.conf, self.commands,
                                          lambda: self.host)

    def test_mdadm_actions(self):
        for action, operation in (
                (model.AddLeg('vol', 'md127', 'nvme3n1'), 'add'),
                (model.ReAddLeg('vol', 'md127', 'nvme3n1'), 're-add'),
                (model.FailLeg('vol', 'md127', 'nvme2n1'), 'fail'),
                (model.RemoveLeg('vol', 'md127', 'nvme2n1'), 'remove')):
            self.executor.apply(action)
            self.assertEqual(('mdadm', operation, 'md127', action.device),
                             self.commands.calls[-1])

    def test_faulty_leg_is_removed_without_naming_it(self):
        self.host = host_with(leg('nvme1n1', LS.IN_SYNC),
                              leg('nvme2n1', LS.FAULTY, 1))
        self.executor.apply(model.RemoveLeg('vol', 'md127', 'nvme2n1'))
        self.assertEqual(('mdadm', 'remove', 'md127', 'failed'),
                         self.commands.calls[-1])
        self.executor.apply(model.RemoveLeg('vol', 'md127', 'detached'))
        self.assertEqual(('mdadm', 'remove', 'md127', 'detached'),
                         self.commands.calls[-1])

    def test_failure_raises(self):
        self.commands.results = [(1, '', 'mdadm: busy')]
        exc = self.assertRaises(exception.HostCommandFailed,
                                self.executor.apply,
                                model.AddLeg('vol', 'md127', 'nvme3n1'))
        self.assertEqual(1, exc.exit_code)
        self.assertIn('mdadm: busy', str(exc))

    def test_never_fails_or_removes_last_in_sync_leg(self):
        self.host = host_with(leg('nvme1n1', LS.IN_SYNC),
                              leg('nvme2n1', LS.FAULTY, None))
        for action in (model.FailLeg('vol', 'md127', 'nvme1n1'),
                       model.RemoveLeg('vol', 'md127', 'nvme1n1')):
            self.assertRaises(exception.UnsafeAction, self.executor.apply,
                              action)
        self.assertEqual([], self.commands.calls)
        self.executor.apply(model.RemoveLeg('vol', 'md127', 'nvme2n1'))
        self.assertEqual(1, len(self.commands.calls))

    def test_last_in_sync(self):
        self.assertFalse(executor.last_in_sync(self.host, 'md127',
                                               'nvme1n1'))
        self.assertTrue(executor.last_in_sync(
            host_with(leg('nvme1n1', LS.IN_SYNC)), 'md127', 'nvme1n1'))
        self.assertFalse(executor.last_in_sync(self.host, 'md9', 'nvme1n1'))

    def _replica(self, *ports):
        return model.Replica(id='r3', nqn=NQN % 3, portals=tuple(
            model.Portal('tcp', '192.0.2.%d' % port, 4420 + port)
            for port in ports))

    def test_connect_tries_portals_in_order(self):
        self.commands.results = [(1, '', 'Connection refused'), (0, '', '')]
        self.executor.apply(model.ConnectReplica('vol', self._replica(1, 2)))
        self.assertEqual(
            [('connect', 'tcp', '192.0.2.1', 4421, NQN % 3, 15),
             ('connect', 'tcp', '192.0.2.2', 4422, NQN % 3, 15)],
            self.commands.calls)

    def test_connect_already_connected_is_success(self):
        for result in ((114, '', ''), (70, '', ''),
                       (1, '', 'Failed: already connected')):
            self.commands.results = [result]
            self.executor.apply(model.ConnectReplica('vol',
                                                     self._replica(1, 2)))
        self.assertEqual(3, len(self.commands.calls))

    def test_connect_all_portals_fail(self):
        self.commands.results = [(1, '', 'refused'), (1, '', 'unreachable')]
        exc = self.assertRaises(
            exception.HostCommandFailed, self.executor.apply,
            model.ConnectReplica('vol', self._replica(1, 2)))
        self.assertIn('unreachable', str(exc))

    def test_disconnect(self):
        self.executor.apply(model.DisconnectController('vol', NQN % 2))
        self.assertEqual([('disconnect', NQN % 2)], self.commands.calls)

    def test_provisioner_actions_are_not_host_actions(self):
        action = model.RequestReplacement('vol', 'r1')
        self.assertFalse(self.executor.handles(action))
        self.assertRaises(exception.NVMeAgentException, self.executor.apply,
                          action)
        self.assertTrue(self.executor.handles(
            model.DisconnectController('vol', NQN % 1)))


def tuning_host():
    """md127 'vol' on nvme1n1 + nvme2n1, md126 'other' on nvme3n1."""
    def ctrl(name, device):
        return model.Controller(name=name, subsysnqn=NQN % int(name[4:]),
                                transport='tcp', address='traddr=192.0.2.1',
                                state='live', namespaces=(device,))
    managed = host_with(leg('nvme1n1', LS.IN_SYNC),
                        leg('nvme2n1', LS.FAULTY, 1)).arrays[0]
    other = model.Array(name='md126', md_name='box:other', uuid=None,
                        level='raid1', raid_disks=2, degraded=1,
                        array_state='clean', sync_action='idle',
                        legs=(leg('nvme3n1', LS.IN_SYNC),))
    return model.HostState(
        arrays=(managed, other),
        controllers=(ctrl('nvme1', 'nvme1n1'), ctrl('nvme2', 'nvme2n1'),
                     ctrl('nvme3', 'nvme3n1'), ctrl('nvme4', 'nvme4n1')))


class TuneControllersTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        self.conf = cfg.ConfigOpts()
        opts.register_opts(self.conf)
        self.conf([])
        self.conf.set_override('root_dir', self.root, group='nvme_agent')
        self.commands = FakeCommands()
        self.executor = executor.Executor(self.conf, self.commands, None)
        self.host = tuning_host()
        for name, value in (('nvme1', 'off'), ('nvme2', '5'),
                            ('nvme3', 'off'), ('nvme4', 'off')):
            ctl = os.path.join(self.root, 'sys/class/nvme-fabrics/ctl', name)
            os.makedirs(ctl)
            with open(os.path.join(ctl, 'fast_io_fail_tmo'), 'w') as handle:
                handle.write(value + '\n')
        self.logger = self.useFixture(fixtures.FakeLogger(
            name='os_brick_nvme_agent.executor'))

    def test_leg_controllers(self):
        self.assertEqual(('nvme1', 'nvme2'),
                         executor.leg_controllers(self.host, ['vol']))
        self.assertEqual(('nvme3',),
                         executor.leg_controllers(self.host, ['other']))
        self.assertEqual((), executor.leg_controllers(self.host, []))

    def test_only_differing_values_are_written(self):
        self.assertEqual(('nvme1',),
                         self.executor.tune_controllers(self.host, ['vol']))
        self.assertEqual([('fast_io_fail_tmo', 'nvme1', 5)],
                         self.commands.calls)
        self.assertIn('nvme1 from -1 to 5', self.logger.output)
        self.assertNotIn('nvme2', self.logger.output)

    def test_minus_one_leaves_the_kernel_alone(self):
        self.conf.set_override('fast_io_fail_tmo', -1, group='nvme_agent')
        self.assertEqual((), self.executor.tune_controllers(self.host,
                                                            ['vol']))
        self.assertEqual([], self.commands.calls)

    def test_failed_write_is_logged_and_retried_next_pass(self):
        self.commands.results = [(1, '', 'Permission denied\n')]
        self.assertEqual((), self.executor.tune_controllers(self.host,
                                                            ['vol']))
        self.assertIn('Permission denied', self.logger.output)
        self.assertEqual(('nvme1',),
                         self.executor.tune_controllers(self.host, ['vol']))

    def test_vanished_controller_is_skipped(self):
        os.remove(os.path.join(self.root, 'sys/class/nvme-fabrics/ctl',
                               'nvme1', 'fast_io_fail_tmo'))
        self.assertEqual((), self.executor.tune_controllers(self.host,
                                                            ['vol']))
        self.assertEqual([], self.commands.calls)
