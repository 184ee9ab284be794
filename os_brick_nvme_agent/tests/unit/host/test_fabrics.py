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

from os_brick_nvme_agent.host import fabrics
from os_brick_nvme_agent.tests.unit import fixtures_util

NQN = 'nqn.2014-08.org.nvmexpress:uuid:5a1e0d7c-2f57-4c3f-9d2a-0b6c1e0f9a11'


def write_ctrl(root, name, entries=(), **files):
    ctl = os.path.join(root, fabrics.CTL_DIR, name)
    os.makedirs(ctl)
    for attr, value in files.items():
        with open(os.path.join(ctl, attr), 'w') as handle:
            handle.write(value + '\n')
    for entry in entries:
        os.makedirs(os.path.join(ctl, entry))
    return ctl


class ParseTest(testtools.TestCase):

    def test_address(self):
        self.assertEqual(
            {'traddr': '10.0.0.5', 'trsvcid': '4420', 'src_addr': '10.0.0.2'},
            fabrics.parse_address(
                'traddr=10.0.0.5,trsvcid=4420,src_addr=10.0.0.2\n'))
        self.assertIsNone(fabrics.parse_address('traddr'))
        self.assertEqual({}, fabrics.parse_address(''))

    def test_namespace_devices(self):
        self.assertEqual(('nvme0n1', 'nvme0n2'), fabrics.namespace_devices(
            ['nvme0c1n1', 'nvme0c1n2', 'state', 'power', 'nvme0c1n1']))
        self.assertEqual(('nvme3n1',), fabrics.namespace_devices(
            ['nvme3n1', 'subsysnqn']))

    def test_controller(self):
        ctrl = fabrics.parse_controller('nvme1', {
            'subsysnqn': NQN + '\n', 'transport': 'tcp\n', 'state': 'live\n',
            'address': 'traddr=10.0.0.5,trsvcid=4420\n'}, ('nvme1n1',))
        self.assertEqual((NQN, 'tcp', 'live', ('nvme1n1',)),
                         (ctrl.subsysnqn, ctrl.transport, ctrl.state,
                          ctrl.namespaces))

    def test_malformed_controller(self):
        good = {'subsysnqn': NQN, 'transport': 'tcp', 'state': 'live',
                'address': 'traddr=10.0.0.5,trsvcid=4420'}
        for key, bad in (('subsysnqn', 'not-an-nqn'), ('transport', 'usb'),
                         ('state', 'on fire'), ('address', 'traddr'),
                         ('state', None)):
            self.assertIsNone(fabrics.parse_controller(
                'nvme1', dict(good, **{key: bad})), key)
        self.assertIsNone(fabrics.parse_controller('eth0', good))

    def test_fast_io_fail_tmo(self):
        self.assertEqual(5, fabrics.parse_fast_io_fail_tmo('5\n'))
        self.assertEqual(-1, fabrics.parse_fast_io_fail_tmo('off\n'))
        self.assertIsNone(fabrics.parse_fast_io_fail_tmo(None))
        self.assertIsNone(fabrics.parse_fast_io_fail_tmo('soon'))


class ReadTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path

    def test_read_controllers_skips_malformed(self):
        write_ctrl(self.root, 'nvme1', ['nvme1c1n1'], subsysnqn=NQN,
                   transport='tcp', state='connecting',
                   address='traddr=10.0.0.5,trsvcid=4420')
        write_ctrl(self.root, 'nvme2', subsysnqn=NQN, transport='tcp')
        controllers = fabrics.read_controllers(self.root)
        self.assertEqual(['nvme1'], [c.name for c in controllers])
        self.assertEqual(('nvme1n1',), controllers[0].namespaces)
        self.assertEqual('connecting', controllers[0].state)

    def test_no_fabrics(self):
        self.assertEqual((), fabrics.read_controllers(self.root))

    def test_read_namespace(self):
        ctl = write_ctrl(self.root, 'nvme1', subsysnqn=NQN)
        block = os.path.join(self.root, 'sys/block/nvme1n1')
        os.makedirs(block)
        os.symlink(ctl, os.path.join(block, 'device'))
        with open(os.path.join(block, 'uuid'), 'w') as handle:
            handle.write('5a1e0d7c-0000-4c3f-9d2a-0b6c1e0f9a11\n')
        self.assertEqual((NQN, '5a1e0d7c-0000-4c3f-9d2a-0b6c1e0f9a11'),
                         fabrics.read_namespace(self.root, 'nvme1n1'))
        self.assertEqual((None, None),
                         fabrics.read_namespace(self.root, 'nvme9n1'))


class RealTreeTest(testtools.TestCase):
    """A real kernel's class directory, other entries included."""

    def test_only_controllers_and_no_warning(self):
        logger = self.useFixture(fixtures.FakeLogger(
            name='os_brick_nvme_agent.host.fabrics'))
        roots = fixtures_util.real_roots()
        self.assertNotEqual([], roots)
        seen = 0
        for root in roots:
            base = os.path.join(root, fabrics.CTL_DIR)
            entries = set(os.listdir(base))
            self.assertTrue({'power', 'subsystem', 'uevent'} <= entries, root)
            names = [c.name for c in fabrics.read_controllers(root)]
            self.assertEqual(
                sorted(e for e in entries if e.startswith('nvme')), names)
            seen += len(names)
            for name in names:
                tmo = fabrics.read_fast_io_fail_tmo(root, name)
                self.assertIsNotNone(tmo, (root, name))
                self.assertGreaterEqual(tmo, -1)
            self.assertIsNone(fabrics.read_fast_io_fail_tmo(root, 'power'))
        self.assertGreater(seen, 0)
        self.assertEqual('', logger.output)
