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

import testtools

from os_brick_nvme_agent import exception
from os_brick_nvme_agent.privileged import validate

BAD = exception.InvalidArgument


class ValidateTest(testtools.TestCase):

    def test_nqn(self):
        for good in ('nqn.2014-08.org.nvmexpress:uuid:'
                     '5a1e0d7c-2f57-4c3f-9d2a-0b6c1e0f9a11',
                     'nqn.2016-06.io.spdk:cnode1'):
            self.assertEqual(good, validate.nqn(good))
        for bad in ('', 'iqn.2001-04.com.example:x', 'nqn.', 'nqn.-x',
                    'nqn.2014-08.org ex', 'nqn.2014;rm -rf /',
                    'nqn.' + 'a' * 220, None, 42):
            self.assertRaises(BAD, validate.nqn, bad)

    def test_address(self):
        self.assertEqual('192.0.2.10', validate.address('192.0.2.10'))
        self.assertEqual('2001:db8::1', validate.address('2001:db8::1'))
        self.assertEqual('target-1.example.org',
                         validate.address('target-1.example.org'))
        for bad in ('', '-a', '10.0.0.1;reboot', 'a b', 'x' * 300, None,
                    '999.1.1.1.1.'):
            self.assertRaises(BAD, validate.address, bad)

    def test_port(self):
        self.assertEqual('4420', validate.port(4420))
        self.assertEqual('4420', validate.port('4420'))
        for bad in (0, 65536, -1, '44 20', '0x10', True, None, 'http'):
            self.assertRaises(BAD, validate.port, bad)

    def test_transport(self):
        self.assertEqual('tcp', validate.transport('tcp'))
        self.assertEqual('rdma', validate.transport('rdma'))
        for bad in ('TCP', 'fc', '', None):
            self.assertRaises(BAD, validate.transport, bad)

    def test_ctrl_loss_tmo(self):
        self.assertEqual('-1', validate.ctrl_loss_tmo(-1))
        self.assertEqual('600', validate.ctrl_loss_tmo(600))
        for bad in (-2, 86401, '60', True, 1.5):
            self.assertRaises(BAD, validate.ctrl_loss_tmo, bad)

    def test_fast_io_fail_tmo_and_controller(self):
        self.assertEqual('-1', validate.fast_io_fail_tmo(-1))
        self.assertEqual('5', validate.fast_io_fail_tmo(5))
        for bad in (-2, 86401, '5', True, 2.5, None):
            self.assertRaises(BAD, validate.fast_io_fail_tmo, bad)
        self.assertEqual('nvme12', validate.controller('nvme12'))
        for bad in ('nvme1n1', '../nvme1', 'nvme1/', 'power', 'nvme', '',
                    'nvme1\n', None):
            self.assertRaises(BAD, validate.controller, bad)

    def test_devices(self):
        self.assertEqual('/dev/md127', validate.md_device('md127'))
        self.assertEqual('/dev/nvme1n1', validate.member_device('nvme1n1'))
        self.assertEqual('/dev/nvme0c1n2',
                         validate.member_device('nvme0c1n2'))
        for bad in ('/dev/md127', 'md', 'md127/../sda', 'sda', '', None):
            self.assertRaises(BAD, validate.md_device, bad)
        for bad in ('/dev/nvme1n1', 'sda1', 'nvme1', '../nvme1n1',
                    'nvme1n1 ', 'failed'):
            self.assertRaises(BAD, validate.member_device, bad)
        self.assertEqual('failed', validate.removable_device('failed'))
        self.assertEqual('detached', validate.removable_device('detached'))
        self.assertRaises(BAD, validate.removable_device, 'all')
