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

"""One contract, every provisioner plugin.

:class:`ProvisionerContract` states what the agent relies on from a
provisioner; each plugin runs it against the real thing it talks to (a
file, a configfs tree laid out like the kernel's, a KumoScale API server
on a local port). A new plugin gets its subclass here.
"""

import os
import shutil
import stat
from unittest import mock

import fixtures
from oslo_config import cfg
import testtools
import yaml

from os_brick_nvme_agent import exception
from os_brick_nvme_agent import model
from os_brick_nvme_agent import provisioners
from os_brick_nvme_agent.provisioners import base
from os_brick_nvme_agent.provisioners import kioxia
from os_brick_nvme_agent.provisioners import nvmet
from os_brick_nvme_agent.provisioners import static
from os_brick_nvme_agent.tests.fakes import kumoscale_server
from os_brick_nvme_agent.tests.fakes import nvmet_configfs

RS = model.ReplicaState


class ProvisionerContract(object):
    """Mixed into a TestCase; subclasses implement the four hooks."""

    name = None

    def make_conf(self):
        """Return a ConfigOpts set up for the plugin under test."""
        raise NotImplementedError

    def add_volume(self, volume_id):
        """Create a volume with two replicas that can be replaced once."""
        raise NotImplementedError

    def break_provisioner(self):
        """Make the provisioner unreachable."""
        raise NotImplementedError

    def garble_provisioner(self):
        """Make the provisioner answer nonsense."""
        raise NotImplementedError

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.conf = self.make_conf()
        self.prov = provisioners.load(self.name, self.conf)

    # The contract ---------------------------------------------------------

    def test_loaded_through_its_entry_point(self):
        self.assertIsInstance(self.prov, base.Provisioner)
        self.prov.probe()

    def test_unknown_volume_is_none(self):
        self.assertIsNone(self.prov.get_replica_set('no-such-volume'))

    def test_replica_set_shape(self):
        self.add_volume('vol-1')
        rs = self.prov.get_replica_set('vol-1')
        self.assertIsInstance(rs, model.ReplicaSet)
        self.assertEqual('vol-1', rs.volume_id)
        self.assertIsInstance(rs.generation, int)
        self.assertEqual(2, len(rs.replicas))
        self.assertEqual(2, len({r.id for r in rs.replicas}))
        self.assertEqual(2, len({r.nqn for r in rs.replicas}))
        for replica in rs.replicas:
            self.assertTrue(replica.nqn.startswith('nqn.'))
            self.assertEqual(RS.AVAILABLE, replica.state)
            self.assertTrue(replica.portals)
            for portal in replica.portals:
                self.assertIn(portal.transport, ('tcp', 'rdma'))
                self.assertTrue(0 < portal.port < 65536)

    def test_report_is_recorded_and_raises_generation(self):
        self.add_volume('vol-1')
        before = self.prov.get_replica_set('vol-1')
        victim = before.replicas[0].id
        self.prov.report_replica_state('vol-1', victim, RS.FAULTY)
        after = self.prov.get_replica_set('vol-1')
        self.assertEqual(RS.FAULTY, _replica(after, victim).state)
        self.assertEqual(RS.AVAILABLE,
                         _replica(after, before.replicas[1].id).state)
        self.assertGreater(after.generation, before.generation)
        self.prov.report_replica_state('vol-1', victim, RS.FAULTY)
        again = self.prov.get_replica_set('vol-1')
        self.assertEqual(RS.FAULTY, _replica(again, victim).state)
        self.assertGreaterEqual(again.generation, after.generation)
        self.prov.report_replica_state('vol-1', victim, RS.AVAILABLE)
        back = self.prov.get_replica_set('vol-1')
        self.assertEqual(RS.AVAILABLE, _replica(back, victim).state)
        self.assertGreater(back.generation, again.generation)

    def test_report_on_unknown_volume_or_replica(self):
        self.assertRaises(exception.ProvisionerError,
                          self.prov.report_replica_state, 'no-such-volume',
                          'r1', RS.FAULTY)
        self.add_volume('vol-1')
        self.assertRaises(exception.ProvisionerError,
                          self.prov.report_replica_state, 'vol-1',
                          'no-such-replica', RS.FAULTY)

    def test_replacement_swaps_the_replica_once(self):
        self.add_volume('vol-1')
        before = self.prov.get_replica_set('vol-1')
        victim, keeper = before.replicas[0], before.replicas[1]
        self.prov.report_replica_state('vol-1', victim.id, RS.FAULTY)
        self.prov.request_replacement('vol-1', victim.id)
        after = self.prov.get_replica_set('vol-1')
        ids = {r.id for r in after.replicas}
        self.assertNotIn(victim.id, ids)
        self.assertIn(keeper.id, ids)
        self.assertEqual(2, len(after.replicas))
        self.assertNotIn(victim.nqn, {r.nqn for r in after.replicas})
        self.assertGreater(after.generation, before.generation)
        # Asking again (say, after a crash) changes nothing.
        self.prov.request_replacement('vol-1', victim.id)
        self.assertEqual(after, self.prov.get_replica_set('vol-1'))

    def test_replacement_on_unknown_volume(self):
        self.assertRaises(exception.ProvisionerError,
                          self.prov.request_replacement, 'no-such-volume',
                          'r1')

    def test_send_event_leaves_the_replica_set_alone(self):
        self.add_volume('vol-1')
        before = self.prov.get_replica_set('vol-1')
        for name in ('fault_seen', 'resync_done'):
            taken = self.prov.send_event({
                'time': 1700000000.0, 'event': name, 'volume': 'vol-1',
                'replica': before.replicas[0].id,
                'nqn': before.replicas[0].nqn})
            self.assertIsInstance(taken, bool)
        self.assertEqual(before, self.prov.get_replica_set('vol-1'))

    def test_send_event_during_outage_raises_or_declines(self):
        self.add_volume('vol-1')
        self.break_provisioner()
        try:
            taken = self.prov.send_event({'time': 1.0, 'event': 'fault_seen',
                                          'volume': 'vol-1', 'replica': 'r1'})
        except exception.NVMeAgentException:
            return
        self.assertFalse(taken)

    def test_outage_is_provisioner_unavailable(self):
        self.add_volume('vol-1')
        self.break_provisioner()
        self.assertRaises(exception.ProvisionerUnavailable, self.prov.probe)
        self.assertRaises(exception.ProvisionerUnavailable,
                          self.prov.get_replica_set, 'vol-1')

    def test_nonsense_is_malformed_reply(self):
        self.add_volume('vol-1')
        self.garble_provisioner()
        self.assertRaises(exception.MalformedReply,
                          self.prov.get_replica_set, 'vol-1')


def _replica(replica_set, replica_id):
    for replica in replica_set.replicas:
        if replica.id == replica_id:
            return replica
    raise AssertionError('%s not in %s' % (replica_id, replica_set))


def _conf(group, **overrides):
    conf = cfg.ConfigOpts()
    conf([], project='os-brick-nvme-agent-test')
    module = {'provisioner_static': static, 'provisioner_nvmet': nvmet,
              'provisioner_kioxia': kioxia}[group]
    conf.register_opts(module.CONFIG_OPTS, group=group)
    for name, value in overrides.items():
        conf.set_override(name, value, group)
    return conf


def static_replica(volume_id, n):
    return {'id': 'r%d' % n,
            'nqn': 'nqn.2014-08.org.example:%s-r%d' % (volume_id, n),
            'portals': [{'transport': 'tcp', 'address': '192.0.2.20',
                         'port': 4420}]}


class TestStaticContract(ProvisionerContract, testtools.TestCase):

    name = 'static'

    def make_conf(self):
        self.path = os.path.join(self.tmp, 'replicas.yaml')
        with open(self.path, 'w') as f:
            yaml.safe_dump({'volumes': {}}, f)
        return _conf('provisioner_static', path=self.path)

    def add_volume(self, volume_id):
        with open(self.path) as f:
            data = yaml.safe_load(f)
        data['volumes'][volume_id] = {
            'generation': 1,
            'replicas': [static_replica(volume_id, 1),
                         static_replica(volume_id, 2)],
            'spares': [static_replica(volume_id, 3)]}
        with open(self.path, 'w') as f:
            yaml.safe_dump(data, f)

    def break_provisioner(self):
        os.unlink(self.path)

    def garble_provisioner(self):
        with open(self.path, 'w') as f:
            f.write('volumes: [unclosed')


class TestNvmetContract(ProvisionerContract, testtools.TestCase):

    name = 'nvmet'

    def make_conf(self):
        self.root = nvmet_configfs.make_root(os.path.join(self.tmp, 'nvmet'))
        return _conf('provisioner_nvmet', configfs_root=self.root,
                     state_file=os.path.join(self.tmp, 'state.json'),
                     backing_dir=os.path.join(self.tmp, 'backing'),
                     address='127.0.0.1', port=4420)

    def setUp(self):
        super().setUp()
        # Same plugin, with the kernel's side of configfs imitated.
        self.prov = nvmet.NvmetProvisioner(
            self.conf, configfs=nvmet_configfs.SimulatedConfigFS(self.root))

    def add_volume(self, volume_id):
        self.prov.create_volume(volume_id, 1 << 20)

    def break_provisioner(self):
        shutil.rmtree(self.root)    # module unloaded, configfs gone

    def garble_provisioner(self):
        with open(self.conf.provisioner_nvmet.state_file, 'w') as f:
            f.write('{"volumes": {"vol-1": {"generation": "x"}}}')


class TestKioxiaContract(ProvisionerContract, testtools.TestCase):

    name = 'kioxia'

    def make_conf(self):
        self.fake = kumoscale_server.FakeKumoScale(backends=3).start()
        self.addCleanup(self.fake.stop)
        return _conf('provisioner_kioxia', urls=[self.fake.url],
                     token=self.fake.token, ca_file=self.fake.ca_file,
                     connect_timeout=2.0, read_timeout=5.0)

    def add_volume(self, volume_id):
        self.fake.state.add_volume(volume_id, replicas=2)

    def break_provisioner(self):
        self.fake.fail_next(*[503] * 10)

    def garble_provisioner(self):
        self.fake.malformed = True


class TestLoader(testtools.TestCase):

    def test_unknown_plugin_names_the_option(self):
        conf = cfg.ConfigOpts()
        conf([])
        err = self.assertRaises(exception.ProvisionerNotFound,
                                provisioners.load, 'nope', conf)
        self.assertIn('[nvme_agent] provisioner', str(err))
        for name in ('kioxia', 'nvmet', 'static'):
            self.assertIn(name, str(err))

    def test_plugin_failing_to_load_says_why(self):
        conf = cfg.ConfigOpts()
        conf([])
        with mock.patch.object(static.StaticProvisioner, '__init__',
                               side_effect=ImportError('no yaml here')):
            err = self.assertRaises(exception.ProvisionerError,
                                    provisioners.load, 'static', conf)
        self.assertIn('no yaml here', str(err))
        self.assertNotIsInstance(err, exception.ProvisionerNotFound)

    def test_each_plugin_declares_its_options(self):
        for module in (static, nvmet, kioxia):
            self.assertTrue(module.CONFIG_GROUP.startswith('provisioner_'))
            for opt in module.CONFIG_OPTS:
                self.assertTrue(opt.help, opt.name)
        token = [o for o in kioxia.CONFIG_OPTS if o.name == 'token'][0]
        self.assertTrue(token.secret)

    def test_static_write_back_keeps_file_mode(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(tmp, 'r.json')
        with open(path, 'w') as f:
            f.write('{"volumes": {"v": {"generation": 1, "replicas": [%s]}}}'
                    % str(static_replica('v', 1)).replace("'", '"'))
        os.chmod(path, 0o640)
        prov = static.StaticProvisioner(_conf('provisioner_static',
                                              path=path))
        prov.report_replica_state('v', 'r1', RS.FAULTY)
        self.assertEqual(0o640, stat.S_IMODE(os.stat(path).st_mode))
        self.assertEqual(RS.FAULTY,
                         prov.get_replica_set('v').replicas[0].state)
