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
from unittest import mock

import fixtures
import testtools

from os_brick_nvme_agent import exception
from os_brick_nvme_agent import model
from os_brick_nvme_agent.provisioners import nvmet
from os_brick_nvme_agent.tests.fakes import nvmet_configfs
from os_brick_nvme_agent.tests.unit.provisioners import test_contract

MIB = 1 << 20


class NvmetTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.root = nvmet_configfs.make_root(os.path.join(self.tmp, 'nvmet'))
        self.fs = nvmet_configfs.SimulatedConfigFS(self.root)
        self.conf = test_contract._conf(
            'provisioner_nvmet', configfs_root=self.root,
            state_file=os.path.join(self.tmp, 'state.json'),
            backing_dir=os.path.join(self.tmp, 'backing'),
            address='127.0.0.1', port=4421, port_id=7)
        self.prov = nvmet.NvmetProvisioner(self.conf, configfs=self.fs)

    def read(self, *parts):
        return self.fs.read(*parts)


class TestExport(NvmetTestCase):

    def test_volume_is_exported_as_the_kernel_expects(self):
        rs = self.prov.create_volume('vol-1', 4 * MIB)
        self.assertEqual(2, len(rs.replicas))
        self.assertEqual('tcp', self.read('ports', '7', 'addr_trtype'))
        self.assertEqual('ipv4', self.read('ports', '7', 'addr_adrfam'))
        self.assertEqual('127.0.0.1', self.read('ports', '7', 'addr_traddr'))
        self.assertEqual('4421', self.read('ports', '7', 'addr_trsvcid'))
        for replica in rs.replicas:
            self.assertTrue(replica.nqn.startswith(
                'nqn.2014-08.org.openstack:os-brick-nvme-agent:vol-1-'))
            ns = ('subsystems', replica.nqn, 'namespaces', '1')
            backing = self.read(*ns, 'device_path')
            self.assertEqual(self.prov.backing_file('vol-1', replica.id),
                             backing)
            self.assertEqual(4 * MIB, os.path.getsize(backing))
            self.assertEqual(replica.ns_uuid, self.read(*ns, 'device_uuid'))
            self.assertEqual('1', self.read(*ns, 'buffered_io'))
            self.assertEqual('1', self.read(*ns, 'enable'))
            self.assertEqual('1', self.read('subsystems', replica.nqn,
                                            'attr_allow_any_host'))
            link = self.fs.path('ports', '7', 'subsystems', replica.nqn)
            self.assertEqual(self.fs.path('subsystems', replica.nqn),
                             os.readlink(link))
            self.assertEqual([model.Portal('tcp', '127.0.0.1', 4421)],
                             list(replica.portals))

    def test_create_is_idempotent(self):
        first = self.prov.create_volume('vol-1', MIB)
        self.assertEqual(first, self.prov.create_volume('vol-1', MIB))
        self.assertEqual(2, len(self.fs.listdir('subsystems')))

    def test_allowed_hosts_instead_of_any_host(self):
        host = 'nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f'
        self.conf.set_override('allowed_hosts', [host], 'provisioner_nvmet')
        rs = self.prov.create_volume('vol-1', MIB)
        nqn = rs.replicas[0].nqn
        self.assertEqual('0', self.read('subsystems', nqn,
                                        'attr_allow_any_host'))
        self.assertEqual(self.fs.path('hosts', host), os.readlink(
            self.fs.path('subsystems', nqn, 'allowed_hosts', host)))

    def test_ipv6_port(self):
        self.conf.set_override('address', '::1', 'provisioner_nvmet')
        self.prov.create_volume('vol-1', MIB)
        self.assertEqual('ipv6', self.read('ports', '7', 'addr_adrfam'))

    def test_port_in_use_is_not_rewritten(self):
        self.prov.create_volume('vol-1', MIB)
        self.conf.set_override('address', '192.0.2.1', 'provisioner_nvmet')
        self.prov.create_volume('vol-2', MIB)      # would be EACCES
        self.assertEqual('127.0.0.1', self.read('ports', '7', 'addr_traddr'))

    def test_probe_without_configfs(self):
        self.conf.set_override('configfs_root', os.path.join(self.tmp, 'x'),
                               'provisioner_nvmet')
        prov = nvmet.NvmetProvisioner(self.conf)
        err = self.assertRaises(exception.ProvisionerUnavailable, prov.probe)
        self.assertIn('modprobe nvmet', str(err))


class TestReplaceAndDelete(NvmetTestCase):

    def test_replacement_unexports_and_deletes_the_old_replica(self):
        rs = self.prov.create_volume('vol-1', MIB)
        old = rs.replicas[0]
        old_file = self.prov.backing_file('vol-1', old.id)
        self.prov.request_replacement('vol-1', old.id)
        self.assertFalse(self.fs.exists('subsystems', old.nqn))
        self.assertFalse(self.fs.exists('ports', '7', 'subsystems', old.nqn))
        self.assertFalse(os.path.exists(old_file))
        new = self.prov.get_replica_set('vol-1')
        self.assertEqual(2, len(self.fs.listdir('subsystems')))
        for replica in new.replicas:
            self.assertEqual('1', self.read('subsystems', replica.nqn,
                                            'namespaces', '1', 'enable'))

    def test_crash_between_record_and_configfs_converges(self):
        rs = self.prov.create_volume('vol-1', MIB)
        old = rs.replicas[0]
        with mock.patch.object(self.fs, 'rmdir',
                               side_effect=OSError(5, 'I/O error')):
            self.assertRaises(exception.ProvisionerUnavailable,
                              self.prov.request_replacement, 'vol-1', old.id)
        self.assertTrue(self.fs.exists('subsystems', old.nqn))
        # The next call of any kind finishes the job.
        after = self.prov.get_replica_set('vol-1')
        self.assertNotIn(old.id, [r.id for r in after.replicas])
        self.assertFalse(self.fs.exists('subsystems', old.nqn))
        self.assertEqual(sorted(r.nqn for r in after.replicas),
                         self.fs.listdir('subsystems'))

    def test_delete_volume(self):
        self.prov.create_volume('vol-1', MIB)
        self.prov.create_volume('vol-2', MIB)
        self.prov.delete_volume('vol-1')
        self.prov.delete_volume('vol-1')
        self.assertIsNone(self.prov.get_replica_set('vol-1'))
        self.assertEqual(2, len(self.fs.listdir('subsystems')))
        self.assertEqual(2, len(os.listdir(os.path.join(self.tmp,
                                                        'backing'))))

    def test_manual_unexport_is_not_undone(self):
        # Fault injection by hand (as the kernel tests do) must stick.
        rs = self.prov.create_volume('vol-1', MIB)
        nqn = rs.replicas[1].nqn
        self.fs.unlink('ports', '7', 'subsystems', nqn)
        self.assertEqual(rs, self.prov.get_replica_set('vol-1'))
        self.assertFalse(self.fs.exists('ports', '7', 'subsystems', nqn))

    def test_crash_during_export_converges(self):
        real_link = self.fs.link
        calls = []

        def flaky_link(*args):
            calls.append(args)
            if len(calls) == 2:
                raise OSError(5, 'I/O error')
            return real_link(*args)
        with mock.patch.object(self.fs, 'link', side_effect=flaky_link):
            self.assertRaises(exception.ProvisionerUnavailable,
                              self.prov.create_volume, 'vol-1', MIB)
        rs = self.prov.get_replica_set('vol-1')
        for replica in rs.replicas:
            self.assertTrue(self.fs.exists('ports', '7', 'subsystems',
                                           replica.nqn))
