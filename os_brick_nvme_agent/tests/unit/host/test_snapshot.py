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
import testtools

from os_brick_nvme_agent.host import snapshot
from os_brick_nvme_agent import model
from os_brick_nvme_agent.tests.functional import simhost
from os_brick_nvme_agent.tests.unit import fixtures_util

LS = model.LegState
NQN = 'nqn.2014-08.org.example:vol-%s'


class LegStateTest(testtools.TestCase):

    def test_mapping(self):
        self.assertIs(LS.IN_SYNC, snapshot.leg_state({'in_sync'}, 0))
        self.assertIs(LS.FAULTY, snapshot.leg_state({'faulty'}, 1))
        self.assertIs(LS.FAULTY, snapshot.leg_state({'faulty'}, None))
        # md shows a member being rebuilt in a slot as 'spare'
        self.assertIs(LS.REBUILDING, snapshot.leg_state({'spare'}, 1))
        self.assertIs(LS.SPARE, snapshot.leg_state({'spare'}, None))

    def test_mdadm_map(self):
        parsed = snapshot.parse_mdadm_map(
            'md127 1.2 6b1a3c52:9e0f4d1b:a5e2c7f0:13d8b6a4 /dev/md/vol-1\n'
            'md0 1.2 11111111:22222222:33333333:44444444 /dev/md0\n'
            'garbage\n')
        self.assertEqual(
            {'md127': ('523c1a6b:1b4d0f9e:f0c7e2a5:a4b6d813', 'vol-1'),
             'md0': ('11111111:22222222:33333333:44444444', None)}, parsed)
        self.assertIsNone(snapshot.map_uuid('not-a-uuid'))
        self.assertIsNone(snapshot.map_uuid('zzzzzzzz:1:2:3'))


class SnapshotTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        self.sim = simhost.SimHost(self.root, resync_seconds=3600)
        for name in ('a', 'b', 'c'):
            self.sim.add_target(NQN % name)
        devices = [self.sim.connect(NQN % 'a'), self.sim.connect(NQN % 'b')]
        self.md = self.sim.create_array('vol-1', devices)

    def test_healthy(self):
        host = snapshot.read_host_state(self.root)
        array = host.array_by_md_name('vol-1')
        self.assertEqual(('md127', 'raid1', 2, 0), (
            array.name, array.level, array.raid_disks, array.degraded))
        self.assertEqual({(NQN % 'a', LS.IN_SYNC), (NQN % 'b', LS.IN_SYNC)},
                         {(leg.subsysnqn, leg.state) for leg in array.legs})
        self.assertTrue(all(leg.ns_uuid for leg in array.legs))
        self.assertEqual({NQN % 'a', NQN % 'b'},
                         {c.subsysnqn for c in host.controllers})

    def test_faulty_leg_leaves_a_missing_slot(self):
        self.sim.kill_target(NQN % 'b')
        array = snapshot.read_host_state(self.root).arrays[0]
        states = sorted((leg.state.value, leg.device or '-', leg.slot)
                        for leg in array.legs)
        self.assertEqual([('faulty', 'nvme2n1', None),
                          ('in_sync', 'nvme1n1', 0),
                          ('missing', '-', 1)],
                         [(s, d, slot if slot is not None else None)
                          for s, d, slot in states])
        self.assertEqual(1, array.degraded)

    def test_rebuilding_leg(self):
        self.sim.kill_target(NQN % 'b')
        import subprocess
        subprocess.run([self.sim.mdadm, '--manage', '/dev/md127', '--remove',
                        '/dev/nvme2n1'], check=True, capture_output=True)
        device = self.sim.connect(NQN % 'c')
        subprocess.run([self.sim.mdadm, '--manage', '/dev/md127', '--add',
                        '/dev/' + device], check=True, capture_output=True)
        array = snapshot.read_host_state(self.root).arrays[0]
        legs = {leg.device: leg.state for leg in array.legs}
        self.assertEqual({'nvme1n1': LS.IN_SYNC, device: LS.REBUILDING},
                         legs)
        self.assertEqual('recover', array.sync_action)

    def test_name_from_mdadm_map(self):
        os.unlink(os.path.join(self.root, 'dev/md/vol-1'))
        self.assertIsNone(
            snapshot.read_host_state(self.root).arrays[0].md_name)
        os.makedirs(os.path.join(self.root, 'run/mdadm'))
        with open(os.path.join(self.root, 'run/mdadm/map'), 'w') as handle:
            handle.write('md127 1.2 aa:bb:cc:dd /dev/md/vol-2\n')
        array = snapshot.read_host_state(self.root).arrays[0]
        self.assertEqual(('vol-2', None), (array.md_name, array.uuid))
        with open(os.path.join(self.root, 'run/mdadm/map'), 'w') as handle:
            handle.write('md127 1.2 b9701cb9:6db8df32:0abfe4b9:6a543639 '
                         '/dev/md/vol-2\n')
        array = snapshot.read_host_state(self.root).arrays[0]
        self.assertEqual('b91c70b9:32dfb86d:b9e4bf0a:3936546a', array.uuid)

    def test_malformed_array_is_left_out(self):
        with open(os.path.join(self.root, 'sys/block', self.md,
                               'md/degraded'), 'w') as handle:
            handle.write('lots\n')
        host = snapshot.read_host_state(self.root)
        self.assertEqual((), host.arrays)
        self.assertEqual(2, len(host.controllers))

    def test_unreadable_member_leaves_array_out(self):
        os.unlink(os.path.join(self.root, 'sys/block', self.md,
                               'md/dev-nvme1n1/state'))
        self.assertEqual((), snapshot.read_host_state(self.root).arrays)

    def test_without_mdstat_uses_sysfs(self):
        os.unlink(os.path.join(self.root, 'proc/mdstat'))
        host = snapshot.read_host_state(self.root)
        self.assertEqual(['md127'], [a.name for a in host.arrays])

    def test_array_only_in_sysfs_is_ignored_when_mdstat_lists_none(self):
        with open(os.path.join(self.root, 'proc/mdstat'), 'w') as handle:
            handle.write('Personalities : [raid1]\nunused devices: <none>\n')
        self.assertEqual((), snapshot.read_host_state(self.root).arrays)


# What each recorded scenario shows (fixtures/real, a Debian 6.1 kernel
# under qemu): scenario name suffix -> (degraded, sync_action, sorted leg
# states, live controllers).
REAL_SCENARIOS = {
    'clean': (0, 'idle', ['in_sync', 'in_sync'], 2),
    'leg-failed': (1, 'idle', ['faulty', 'in_sync', 'missing'], 2),
    'leg-removed': (1, 'idle', ['in_sync', 'missing'], 2),
    'recovering': (1, 'recover', ['in_sync', 'rebuilding'], 2),
    'recovered': (0, 'idle', ['in_sync', 'in_sync'], 2),
    'ctrl-lost': (1, 'idle', ['faulty', 'in_sync', 'missing'], 1),
    'reconnected': (1, 'idle', ['in_sync', 'missing'], 2),
    'fast-io-failed': (1, 'idle', ['faulty', 'in_sync', 'missing'], 1),
}


class RealRecordingsTest(testtools.TestCase):

    def test_every_tree_has_one_leg_per_slot(self):
        for root in fixtures_util.real_roots():
            host = snapshot.read_host_state(root)
            self.assertTrue(host.arrays, root)
            for array in host.arrays:
                self.assertEqual(array.raid_disks,
                                 len([leg for leg in array.legs
                                      if leg.slot is not None]), root)
                self.assertIsNotNone(array.md_name, root)

    def test_known_scenarios(self):
        for root in fixtures_util.real_roots():
            name = os.path.basename(root).split('-', 1)[-1]
            if name not in REAL_SCENARIOS:
                continue
            degraded, action, states, live = REAL_SCENARIOS[name]
            host = snapshot.read_host_state(root)
            array = host.arrays[0]
            self.assertEqual(
                (degraded, action, states, live),
                (array.degraded, array.sync_action,
                 sorted(leg.state.value for leg in array.legs),
                 len([c for c in host.controllers if c.state == 'live'])),
                root)
            for leg in array.legs:
                if leg.state in (LS.IN_SYNC, LS.REBUILDING):
                    # a working leg is always tied to its subsystem
                    self.assertIn(leg.subsysnqn,
                                  {c.subsysnqn for c in host.controllers})
                    device = [c for c in host.controllers
                              if c.subsysnqn == leg.subsysnqn][0]
                    self.assertIn(leg.device, device.namespaces, root)
