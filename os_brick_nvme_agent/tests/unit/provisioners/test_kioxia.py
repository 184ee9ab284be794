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

import socket
import warnings

import fixtures
import testtools

from os_brick_nvme_agent import exception
from os_brick_nvme_agent import model
from os_brick_nvme_agent.provisioners import kioxia
from os_brick_nvme_agent.tests.fakes import kumoscale_server
from os_brick_nvme_agent.tests.unit.provisioners import test_contract

RS = model.ReplicaState
NAMES = {'available': 'Available', 'faulty': 'Faulty',
         'replacing': 'Replacing'}
PORTALS = (model.Portal('tcp', '192.0.2.1', 4420),)


class TestParsing(testtools.TestCase):

    def test_times(self):
        self.assertEqual(1700000000123, kioxia.parse_time(1700000000123))
        self.assertEqual(1700000000123, kioxia.parse_time('1700000000123'))
        self.assertEqual(1700000000000,
                         kioxia.parse_time('2023-11-14T22:13:20Z'))
        self.assertEqual(1700000000000,
                         kioxia.parse_time('2023-11-14T22:13:20'))
        for junk in (None, True, 'N/A', 'yesterday', {}):
            self.assertEqual(0, kioxia.parse_time(junk))

    def test_states(self):
        self.assertEqual(RS.FAULTY, kioxia.parse_state('Faulty', NAMES))
        self.assertEqual(RS.AVAILABLE, kioxia.parse_state('AVAILABLE',
                                                          NAMES))
        self.assertEqual(RS.FAULTY, kioxia.parse_state(
            'Failed', dict(NAMES, faulty='Failed')))
        self.assertEqual(RS.UNKNOWN, kioxia.parse_state('Deleting', NAMES))

    def _volume(self, *backends):
        return {'uuid': 'v', 'alias': 'a', 'location': [
            {'uuid': 'rep-%s' % b, 'backend': {'persistentID': b},
             'replicaState': 'Available', 'currentStateTime': 10 + n}
            for n, b in enumerate(backends)]}

    def test_replica_set(self):
        targets = [{'targetName': 'nqn.x:%s' % b,
                    'backend': {'persistentID': b}} for b in ('b1', 'b2')]
        rs = kioxia.parse_replica_set('a', self._volume('b1', 'b2'),
                                      targets, lambda b: PORTALS, NAMES)
        self.assertEqual(11, rs.generation)
        self.assertEqual(['nqn.x:b1', 'nqn.x:b2'],
                         [r.nqn for r in rs.replicas])
        self.assertEqual('rep-b1', rs.replicas[0].ns_uuid)

    def test_replica_without_target_is_malformed(self):
        targets = [{'targetName': 'nqn.x:b1',
                    'backend': {'persistentID': 'b1'}}]
        self.assertRaises(exception.MalformedReply, kioxia.parse_replica_set,
                          'a', self._volume('b1', 'b2'), targets,
                          lambda b: PORTALS, NAMES)

    def test_bad_portals(self):
        self.assertRaises(exception.MalformedReply, kioxia.parse_portals,
                          {'portals': [{'ip': '192.0.2.1'}]})
        self.assertEqual(PORTALS, kioxia.parse_portals(
            {'portals': [{'ip': '192.0.2.1', 'port': '4420',
                          'transport': 'TCP'}]}))


class KioxiaTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.fake = kumoscale_server.FakeKumoScale(backends=3).start()
        self.addCleanup(self.fake.stop)
        self.conf = test_contract._conf(
            'provisioner_kioxia', urls=[self.fake.url], token=self.fake.token,
            ca_file=self.fake.ca_file, connect_timeout=2.0, read_timeout=5.0)
        self.prov = kioxia.KioxiaProvisioner(self.conf)


class TestKioxiaProvisioner(KioxiaTestCase):

    def test_truncated_alias_is_found(self):
        name = 'volume-8f1d1b52-3c0a-4d6e-9d3e-0c4f6a1b2c3d'
        self.fake.state.add_volume(name)
        rs = self.prov.get_replica_set(name[:kioxia.ALIAS_MAX])
        self.assertEqual(2, len(rs.replicas))
        self.assertIsNone(self.prov.get_replica_set(name[:20]))

    def test_ambiguous_truncated_alias_is_malformed(self):
        prefix = ('volume-' + 'a' * 40)[:kioxia.ALIAS_MAX]
        self.fake.state.add_volume(prefix + '1')
        self.fake.state.add_volume(prefix + '2')
        self.assertRaises(exception.MalformedReply,
                          self.prov.get_replica_set, prefix)

    def test_token_is_checked_and_never_logged(self):
        logger = self.useFixture(fixtures.FakeLogger(level='DEBUG'))
        self.fake.state.add_volume('vol-1')
        self.prov.get_replica_set('vol-1')
        self.assertNotIn(self.fake.token, logger.output)
        self.conf.set_override('token', 'wrong', 'provisioner_kioxia')
        prov = kioxia.KioxiaProvisioner(self.conf)
        err = self.assertRaises(exception.ProvisionerUnavailable, prov.probe)
        self.assertIn('401', str(err))

    def test_oauth_client_credentials(self):
        logger = self.useFixture(fixtures.FakeLogger(level='DEBUG'))
        self.conf.set_override('token', '', 'provisioner_kioxia')
        self.conf.set_override('token_url', self.fake.url + '/oauth/token',
                               'provisioner_kioxia')
        self.conf.set_override('client_id', kumoscale_server.CLIENT_ID,
                               'provisioner_kioxia')
        self.conf.set_override('client_secret',
                               kumoscale_server.CLIENT_SECRET,
                               'provisioner_kioxia')
        prov = kioxia.KioxiaProvisioner(self.conf)
        self.fake.state.add_volume('vol-1')
        prov.probe()
        self.assertEqual(2, len(prov.get_replica_set('vol-1').replicas))
        self.assertEqual(1, self.fake.tokens_issued)    # kept until expiry
        for secret in (kumoscale_server.CLIENT_SECRET, self.fake.token):
            self.assertNotIn(secret, logger.output)
        # a refused token is dropped and fetched again on the next call
        self.fake.token = 'rotated'
        self.assertRaises(exception.ProvisionerUnavailable, prov.probe)
        prov.probe()
        self.assertEqual(2, self.fake.tokens_issued)
        # a wrong secret: the operator is told what to check
        self.conf.set_override('client_secret', 'wrong',
                               'provisioner_kioxia')
        err = self.assertRaises(exception.ProvisionerUnavailable,
                                kioxia.KioxiaProvisioner(self.conf).probe)
        self.assertIn('HTTP 401 (check client_id and client_secret)',
                      str(err))
        self.assertNotIn('wrong', str(err))

    def test_missing_credentials_stop_the_start(self):
        self.conf.set_override('token', '', 'provisioner_kioxia')
        err = self.assertRaises(exception.ProvisionerError,
                                kioxia.KioxiaProvisioner, self.conf)
        self.assertEqual('[provisioner_kioxia] needs token, or token_url, '
                         'client_id and client_secret', str(err))

    def test_max_replica_down_time_is_the_volume_grace_period(self):
        uuid = self.fake.state.add_volume('vol-1')
        self.assertIsNone(self.prov.get_replica_set('vol-1').grace_period)
        self.fake.state.volumes[uuid]['maxReplicaDownTime'] = 7
        self.assertEqual(420.0,
                         self.prov.get_replica_set('vol-1').grace_period)
        for value in (0, 'soon', True, None):
            self.assertIsNone(kioxia.parse_down_time(value))

    def test_tls_is_verified_by_default(self):
        self.conf.clear_override('ca_file', 'provisioner_kioxia')
        prov = kioxia.KioxiaProvisioner(self.conf)
        err = self.assertRaises(exception.ProvisionerUnavailable, prov.probe)
        self.assertIn('certificate verify failed', str(err))
        self.conf.set_override('verify', False, 'provisioner_kioxia')
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')     # urllib3's insecure warning
            kioxia.KioxiaProvisioner(self.conf).probe()

    def test_second_url_is_tried(self):
        sock = socket.socket()
        sock.bind(('127.0.0.1', 0))
        dead = 'https://127.0.0.1:%d' % sock.getsockname()[1]
        sock.close()        # nothing listens there now
        self.conf.set_override('urls', [dead, self.fake.url],
                               'provisioner_kioxia')
        kioxia.KioxiaProvisioner(self.conf).probe()

    def test_server_error_is_unavailable_refusal_is_error(self):
        self.fake.state.add_volume('vol-1')
        self.fake.fail_next(500)
        self.assertRaises(exception.ProvisionerUnavailable,
                          self.prov.get_replica_set, 'vol-1')
        self.fake.fail_next(400)
        self.assertRaises(exception.ProvisionerError,
                          self.prov.get_replica_set, 'vol-1')
        self.assertEqual(2, len(self.prov.get_replica_set('vol-1').replicas))

    def test_replacement_resumes_without_a_second_replica(self):
        volume_uuid = self.fake.state.add_volume('vol-1')
        victim = self.prov.get_replica_set('vol-1').replicas[0].id
        requests = self.fake.state.requests
        seen = len(requests)
        # The add goes through, then the delete fails (as if we crashed).
        original = kumoscale_server._replica

        def add_then_fail(state, method, parts, body):
            if method == 'PATCH' and len(parts) == 2:
                kumoscale_server._replica = original
                return 503, {'status': 'Busy', 'description': 'later'}
            return original(state, method, parts, body)
        kumoscale_server._replica = add_then_fail
        self.addCleanup(setattr, kumoscale_server, '_replica', original)
        self.assertRaises(exception.ProvisionerUnavailable,
                          self.prov.request_replacement, 'vol-1', victim)
        self.assertEqual(3, len(self.fake.state.volumes[volume_uuid]
                                ['location']))
        self.prov.request_replacement('vol-1', victim)
        replicas = self.prov.get_replica_set('vol-1').replicas
        self.assertEqual(2, len(replicas))
        self.assertNotIn(victim, [r.id for r in replicas])
        posts = [r for r in requests[seen:] if r[0] == 'POST']
        self.assertEqual(1, len(posts))


class TestKioxiaEvents(KioxiaTestCase):
    """send_event: POST forward_log, as the Kioxia agent did."""

    def event(self, name, **fields):
        entry = {'time': 1700000000.5, 'event': name, 'volume': 'vol-1'}
        entry.update(fields)
        return entry

    def test_volume_events_are_forwarded(self):
        cases = [
            (self.event('fault_seen', replica='r2', nqn='nqn.x:2'),
             'WARNING', 'Volume vol-1 degraded: replica r2 is out of sync'),
            (self.event('resync_done', replica='r2', nqn='nqn.x:2'),
             'INFO', 'Volume vol-1 healed: replica r2 is in sync again'),
            (self.event('replica_connected', replica='r3', nqn='nqn.x:3'),
             'INFO', 'Volume vol-1: target nqn.x:3 reconnected'),
            (self.event('controller_disconnected', nqn='nqn.x:1'),
             'INFO', 'Volume vol-1: target nqn.x:1 disconnected'),
        ]
        for event, level, message in cases:
            self.assertTrue(self.prov.send_event(event))
        logs = self.fake.state.logs
        self.assertEqual([(level, message) for _e, level, message in cases],
                         [(r['level'], r['message']) for r in logs])
        first = logs[0]
        self.assertEqual(('EVENT', socket.gethostname(), 'nvmeof_agent'),
                         (first['loggingType'], first['host'],
                          first['appName']))
        self.assertEqual(['event=fault_seen', 'volume=vol-1', 'replica=r2',
                          'nqn=nqn.x:2', 'time=1700000000.5'],
                         first['parametersList'])
        self.assertEqual(['event=controller_disconnected', 'volume=vol-1',
                          'nqn=nqn.x:1', 'time=1700000000.5'],
                         logs[3]['parametersList'])

    def test_other_events_are_not_sent(self):
        seen = len(self.fake.state.requests)
        for name in ('leg_added', 'report_sent', 'agent_started'):
            self.assertFalse(self.prov.send_event(self.event(name)))
        self.assertEqual(seen, len(self.fake.state.requests))

    def test_delivery_failures_raise(self):
        event = self.event('fault_seen', replica='r2', nqn='nqn.x:2')
        self.fake.fail_next(503)
        self.assertRaises(exception.ProvisionerUnavailable,
                          self.prov.send_event, event)
        self.fake.fail_next(400)
        self.assertRaises(exception.ProvisionerError,
                          self.prov.send_event, event)
        self.fake.fail_next(404)
        err = self.assertRaises(exception.ProvisionerError,
                                self.prov.send_event, event)
        self.assertIn('no forward_log command', str(err))
        self.assertEqual([], self.fake.state.logs)

    def test_oauth_and_tls_apply(self):
        logger = self.useFixture(fixtures.FakeLogger(level='DEBUG'))
        for name, value in (('token', ''),
                            ('token_url', self.fake.url + '/oauth/token'),
                            ('client_id', kumoscale_server.CLIENT_ID),
                            ('client_secret',
                             kumoscale_server.CLIENT_SECRET)):
            self.conf.set_override(name, value, 'provisioner_kioxia')
        prov = kioxia.KioxiaProvisioner(self.conf)
        self.assertTrue(prov.send_event(self.event('resync_done',
                                                   replica='r1')))
        self.assertEqual(1, self.fake.tokens_issued)
        for secret in (kumoscale_server.CLIENT_SECRET, self.fake.token):
            self.assertNotIn(secret, logger.output)
        self.conf.clear_override('ca_file', 'provisioner_kioxia')
        err = self.assertRaises(
            exception.ProvisionerUnavailable,
            kioxia.KioxiaProvisioner(self.conf).send_event,
            self.event('resync_done', replica='r1'))
        self.assertIn('SSLError', str(err))     # the token fetch already
        self.assertEqual(1, len(self.fake.state.logs))

    def test_fake_refuses_a_record_that_is_not_a_forward_entity(self):
        record = kioxia.forward_record(self.event('fault_seen'), 'h')
        del record['appName']
        self.assertRaises(exception.ProvisionerError,
                          self.prov.client.forward_log, record)
