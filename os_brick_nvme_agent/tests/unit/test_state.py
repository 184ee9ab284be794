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

import json
import os
from unittest import mock

import fixtures
import testtools

from os_brick_nvme_agent import model
from os_brick_nvme_agent import state as state_mod

PORTAL = model.Portal('tcp', '192.0.2.7', 4420)
REPLICA = model.Replica('r1', 'nqn.2014-08.org.example:r1', (PORTAL,),
                        model.ReplicaState.FAULTY, 'uuid-1')
ACTIONS = [
    model.ReportReplicaState('vol1', 'r1', model.ReplicaState.FAULTY),
    model.RequestReplacement('vol1', 'r1'),
    model.ConnectReplica('vol1', REPLICA),
    model.AddLeg('vol1', 'md127', 'nvme3n1'),
    model.ReAddLeg('vol1', 'md127', 'nvme3n1'),
    model.FailLeg('vol1', 'md127', 'nvme2n1'),
    model.RemoveLeg('vol1', 'md127', 'nvme2n1'),
    model.DisconnectController('vol1', 'nqn.2014-08.org.example:r2'),
]


def sample_state():
    record = state_mod.ReplicaRecord(
        'r1', REPLICA.nqn, 1000.0, was_member=True, faulty_since=1010.5,
        reported_at=1011.0, reported_state='faulty', reported_gen=3,
        requested_at=1200.0, connect_at=1100.0, rejoins=2, newcomer=True)
    volume = state_mod.VolumeRecord(
        'vol1', 4, (record,), ('nqn.2014-08.org.example:old',),
        tuple(ACTIONS), grace_period=90.0)
    return state_mod.AgentState((state_mod.VolumeRecord('vol0'), volume))


class TestSerialisation(testtools.TestCase):

    def test_round_trip(self):
        state = sample_state()
        self.assertEqual(state, state_mod.loads(state_mod.dumps(state)))

    def test_volumes_are_kept_sorted(self):
        state = state_mod.AgentState()
        for name in ('b', 'c', 'a'):
            state = state.with_volume(state_mod.VolumeRecord(name))
        self.assertEqual(['a', 'b', 'c'],
                         [v.volume_id for v in state.volumes])
        state = state.without_volume('b')
        self.assertEqual(['a', 'c'], [v.volume_id for v in state.volumes])

    def test_every_action_round_trips(self):
        for action in ACTIONS:
            data = json.loads(json.dumps(state_mod.action_to_dict(action)))
            self.assertEqual(action, state_mod.action_from_dict(data))

    def test_pending_actions(self):
        self.assertEqual(ACTIONS, sample_state().pending_actions())

    def test_rejects_garbage(self):
        for text in ('', '[]', '{"version": 99, "volumes": []}',
                     '{"version": 1}', '{"version": 1, "volumes": [{}]}',
                     '{"version": 1, "volumes": [{"volume_id": "v", '
                     '"generation": 1, "replicas": [], "retiring": [], '
                     '"pending": [{"type": "Reboot"}]}]}'):
            self.assertRaises(state_mod.CorruptState, state_mod.loads, text)


class TestStateStore(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.path = os.path.join(self.dir, 'sub', 'state.json')
        self.store = state_mod.StateStore(self.path)

    def test_missing_file_is_empty_state(self):
        self.assertEqual(state_mod.AgentState(), self.store.load())

    def test_save_then_load(self):
        self.store.save(sample_state())
        self.assertEqual(sample_state(), self.store.load())
        self.assertEqual(sample_state(),
                         state_mod.StateStore(self.path).load())

    def test_save_leaves_no_temporary_file(self):
        self.store.save(sample_state())
        self.store.save(state_mod.AgentState())
        self.assertEqual(['state.json'], os.listdir(os.path.dirname(
            self.path)))

    def test_failed_write_keeps_previous_state(self):
        self.store.save(sample_state())
        with mock.patch.object(state_mod.os, 'replace',
                               side_effect=OSError('disk full')):
            self.assertRaises(OSError, self.store.save,
                              state_mod.AgentState())
        self.assertEqual(sample_state(), self.store.load())
        self.assertEqual(['state.json'], os.listdir(os.path.dirname(
            self.path)))

    def test_write_is_flushed_before_rename(self):
        calls = []
        real_fsync, real_replace = os.fsync, os.replace
        with mock.patch.object(state_mod.os, 'fsync',
                               side_effect=lambda fd: (calls.append('fsync'),
                                                       real_fsync(fd))), \
                mock.patch.object(state_mod.os, 'replace',
                                  side_effect=lambda a, b: (
                                      calls.append('replace'),
                                      real_replace(a, b))):
            self.store.save(sample_state())
        self.assertEqual(['fsync', 'replace', 'fsync'], calls)

    def test_corrupt_file_is_moved_aside(self):
        os.makedirs(os.path.dirname(self.path))
        for n, junk in enumerate((b'{"version": 1, "volu', b'\xff\xfe')):
            with open(self.path, 'wb') as f:
                f.write(junk)
            logger = self.useFixture(fixtures.FakeLogger())
            self.assertEqual(state_mod.AgentState(), self.store.load())
            self.assertIn('corrupt', logger.output)
            self.assertFalse(os.path.exists(self.path))
            with open('%s.corrupt-%d' % (self.path, n), 'rb') as f:
                self.assertEqual(junk, f.read())
        self.store.save(sample_state())
        self.assertEqual(sample_state(), self.store.load())
