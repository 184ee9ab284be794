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
import yaml

from os_brick_nvme_agent import exception
from os_brick_nvme_agent import model
from os_brick_nvme_agent.provisioners import base
from os_brick_nvme_agent.provisioners import static
from os_brick_nvme_agent.tests.unit.provisioners import test_contract

RS = model.ReplicaState
replica = test_contract.static_replica


class StaticTestCase(testtools.TestCase):

    def make(self, data, name='replicas.yaml', raw=None):
        tmp = self.useFixture(fixtures.TempDir()).path
        self.path = os.path.join(tmp, name)
        with open(self.path, 'w') as f:
            if raw is not None:
                f.write(raw)
            elif name.endswith('.json'):
                json.dump(data, f)
            else:
                yaml.safe_dump(data, f)
        return static.StaticProvisioner(
            test_contract._conf('provisioner_static', path=self.path))

    def volume(self, spares=()):
        return {'volumes': {'v': {'generation': 3,
                                  'replicas': [replica('v', 1),
                                               replica('v', 2)],
                                  'spares': list(spares)}}}


class TestStatic(StaticTestCase):

    def test_json_file(self):
        prov = self.make(self.volume([replica('v', 3)]), 'r.json')
        prov.request_replacement('v', 'r1')
        with open(self.path) as f:
            data = json.load(f)
        self.assertEqual(['r2', 'r3'],
                         [r['id'] for r in data['volumes']['v']['replicas']])
        self.assertEqual(4, data['volumes']['v']['generation'])

    def test_no_spare_records_a_request(self):
        prov = self.make(self.volume())
        prov.request_replacement('v', 'r1')
        prov.request_replacement('v', 'r1')
        rs = prov.get_replica_set('v')
        self.assertEqual(RS.REPLACING, rs.replicas[0].state)
        self.assertEqual(4, rs.generation)
        with open(self.path) as f:
            self.assertEqual([{'replace': 'r1'}],
                             yaml.safe_load(f)['volumes']['v']['requests'])

    def test_unknown_state_name(self):
        data = self.volume()
        data['volumes']['v']['replicas'][0]['state'] = 'on-fire'
        self.assertEqual(RS.UNKNOWN,
                         self.make(data).get_replica_set('v').replicas[0]
                         .state)

    def test_malformed_content(self):
        bad_port = self.volume()
        bad_port['volumes']['v']['replicas'][0]['portals'][0]['port'] = 0
        no_nqn = self.volume()
        del no_nqn['volumes']['v']['replicas'][1]['nqn']
        bad_gen = self.volume()
        bad_gen['volumes']['v']['generation'] = '3'
        no_portal = self.volume()
        no_portal['volumes']['v']['replicas'][0]['portals'] = []
        for data in (bad_port, no_nqn, bad_gen, no_portal,
                     {'volumes': {'v': ['x']}}):
            prov = self.make(data)
            self.assertRaises(exception.MalformedReply, prov.get_replica_set,
                              'v')
        for raw in ('- a list', 'volumes: [1, 2]', 'volumes: {v: [1'):
            self.assertRaises(exception.MalformedReply,
                              self.make(None, raw=raw).probe)

    def test_bad_spare_is_malformed_and_file_unchanged(self):
        prov = self.make(self.volume([{'id': 'r3'}]))
        with open(self.path) as f:
            before = f.read()
        self.assertRaises(exception.MalformedReply,
                          prov.request_replacement, 'v', 'r1')
        with open(self.path) as f:
            self.assertEqual(before, f.read())

    def test_write_leaves_no_temporary_files(self):
        prov = self.make(self.volume())
        prov.report_replica_state('v', 'r2', RS.FAULTY)
        self.assertEqual(['replicas.yaml'],
                         os.listdir(os.path.dirname(self.path)))

    def test_unwritable_file_is_unavailable(self):
        prov = self.make(self.volume())
        with mock.patch.object(base, 'write_file_atomically',
                               side_effect=PermissionError(13, 'denied')):
            self.assertRaises(exception.ProvisionerUnavailable,
                              prov.report_replica_state, 'v', 'r1',
                              RS.FAULTY)


class TestHelpers(testtools.TestCase):

    def test_replica_round_trip(self):
        rs = base.replica_set_from_dict('v', {
            'generation': 2, 'replicas': [dict(replica('v', 1),
                                               ns_uuid='u-1')]})
        self.assertEqual(dict(replica('v', 1), ns_uuid='u-1',
                              state='available'),
                         base.replica_to_dict(rs.replicas[0]))

    def test_generation_must_be_integer(self):
        for gen in ('1', True, None, 1.5):
            self.assertRaises(exception.MalformedReply,
                              base.replica_set_from_dict, 'v',
                              {'generation': gen, 'replicas': []})

    def test_volume_grace_period(self):
        data = {'generation': 1, 'replicas': []}
        self.assertIsNone(base.replica_set_from_dict('v', data).grace_period)
        data['grace_period'] = 600
        self.assertEqual(600.0,
                         base.replica_set_from_dict('v', data).grace_period)
        for bad in (0, -1, 'soon', True):
            data['grace_period'] = bad
            err = self.assertRaises(exception.MalformedReply,
                                    base.replica_set_from_dict, 'v', data)
            self.assertIn('volume v: bad replica set', str(err))


class TestStaticEvents(StaticTestCase):

    def test_events_are_kept_in_the_file(self):
        prov = self.make(self.volume())
        for n in range(static.EVENTS_KEPT + 5):
            self.assertTrue(prov.send_event({
                'time': float(n), 'event': 'fault_seen', 'volume': 'v',
                'replica': 'r2'}))
        with open(self.path) as f:
            events = yaml.safe_load(f)['volumes']['v']['events']
        self.assertEqual(static.EVENTS_KEPT, len(events))
        self.assertEqual(float(static.EVENTS_KEPT + 4), events[-1]['time'])
        self.assertEqual(3, prov.get_replica_set('v').generation)
        self.assertFalse(prov.send_event({'event': 'fault_seen',
                                          'volume': 'other'}))


class TestStaticCache(StaticTestCase):
    """The parsed file is reused until the file changes."""

    def setUp(self):
        super().setUp()
        self.loads = self.useFixture(fixtures.MockPatchObject(
            yaml, 'safe_load', wraps=yaml.safe_load)).mock

    def test_unchanged_file_is_parsed_once(self):
        prov = self.make(self.volume())
        for _ in range(5):
            self.assertEqual(3, prov.get_replica_set('v').generation)
        prov.probe()
        self.assertEqual(1, self.loads.call_count)

    def test_file_replaced_by_an_editor_is_read_again(self):
        prov = self.make(self.volume())
        self.assertEqual(3, prov.get_replica_set('v').generation)
        data = self.volume()
        data['volumes']['v']['generation'] = 9
        base.write_file_atomically(self.path, yaml.safe_dump(data))
        self.assertEqual(9, prov.get_replica_set('v').generation)
        self.assertEqual(2, self.loads.call_count)

    def test_file_rewritten_in_place_is_read_again(self):
        prov = self.make(self.volume())
        self.assertEqual(3, prov.get_replica_set('v').generation)
        data = self.volume()
        data['volumes']['v']['generation'] = 12345
        with open(self.path, 'w') as f:        # same inode, new size
            yaml.safe_dump(data, f)
        self.assertEqual(12345, prov.get_replica_set('v').generation)

    def test_own_write_refreshes_the_cache(self):
        prov = self.make(self.volume())
        prov.get_replica_set('v')
        prov.report_replica_state('v', 'r1', RS.FAULTY)
        calls = self.loads.call_count
        rs = prov.get_replica_set('v')
        self.assertEqual((4, RS.FAULTY), (rs.generation, rs.replicas[0].state))
        self.assertEqual(calls, self.loads.call_count)

    def test_failed_change_leaves_the_cache_intact(self):
        prov = self.make(self.volume())
        prov.get_replica_set('v')
        with mock.patch.object(base, 'write_file_atomically',
                               side_effect=PermissionError(13, 'denied')):
            self.assertRaises(exception.ProvisionerUnavailable,
                              prov.report_replica_state, 'v', 'r1',
                              RS.FAULTY)
        self.assertEqual(RS.AVAILABLE,
                         prov.get_replica_set('v').replicas[0].state)
