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

"""The real os-brick NVMe-oF connector calls our hook.

The connector module is imported afresh with the hook's finder installed,
exactly as in a process started with the ``.pth`` file. The privileged
boundary (``_execute``: mdadm) and the sysfs-bound target discovery
(``_connect_target``) are mocked; everything between ``connect_volume``
and ``NVMeOFAgent.ensure_running`` is os-brick's own code.
"""

import importlib
import os
import sys
from unittest import mock
import uuid

import fixtures
import os_brick
from os_brick.initiator.connectors import nvmeof as _preloaded  # noqa: F401
from oslo_config import cfg
from oslo_config import fixture as cfg_fixture
import testtools

from os_brick_nvme_agent import _hook_loader
from os_brick_nvme_agent import hook
from os_brick_nvme_agent import starter
from os_brick_nvme_agent.tests.unit import fixtures_util

CONNECTOR_MODULE = 'os_brick.initiator.connectors.nvmeof'
ALIAS = 'volume-5e3c1b2a'


def replicated_properties():
    replicas = [{'target_nqn': 'nqn.2016-06.io.spdk:%s-r%d' % (ALIAS, n),
                 'vol_uuid': str(uuid.uuid4()),
                 'portals': [('192.0.2.%d' % n, '4420', 'tcp')]}
                for n in (1, 2)]
    return {'vol_uuid': str(uuid.uuid4()), 'alias': ALIAS,
            'replica_count': 2, 'volume_replicas': replicas}


class ConnectorHookTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures_util.IsolatedImports())
        sys.modules.pop(CONNECTOR_MODULE, None)
        sys.modules.pop(_hook_loader.TARGET, None)
        _hook_loader.install()
        # only nvmeof.py itself runs again: its dependencies (privsep
        # contexts registering options) stay imported
        self.nvmeof = importlib.import_module(CONNECTOR_MODULE)
        os_brick.setup(cfg.CONF)
        conf = self.useFixture(cfg_fixture.Config(cfg.CONF))
        conf.config(lock_path=self.useFixture(fixtures.TempDir()).path,
                    group='os_brick')
        self.connector = self.nvmeof.NVMeOFConnector(None)
        self.devices = ['/dev/nvme1n1', '/dev/nvme2n1']
        self.useFixture(fixtures.MockPatchObject(
            self.nvmeof.NVMeOFConnector, '_connect_target',
            side_effect=list(self.devices)))
        # root-only boundary: 'mdadm --examine' (not in a RAID) and
        # 'mdadm -C ...' both succeed
        self.execute = self.useFixture(fixtures.MockPatchObject(
            self.connector, '_execute', return_value=('', ''))).mock
        real_exists = os.path.exists
        self.useFixture(fixtures.MockPatch(
            'os.path.exists', side_effect=lambda p: p == '/dev/md/' + ALIAS
            or real_exists(p)))
        self.disconnect = self.useFixture(fixtures.MockPatchObject(
            self.connector, '_try_disconnect_all')).mock

    def test_os_brick_imports_our_module(self):
        self.assertIsNotNone(self.nvmeof.nvmeof_agent)
        self.assertIs(hook.NVMeOFAgent, self.nvmeof.nvmeof_agent.NVMeOFAgent)

    def test_connect_volume_calls_ensure_running(self):
        with mock.patch.object(hook, '_ensure_running',
                               return_value=True) as ensure:
            result = self.connector.connect_volume(replicated_properties())
        self.assertEqual({'type': 'block', 'path': '/dev/md/' + ALIAS},
                         result)
        ensure.assert_called_once_with(self.connector)
        created = [call for call in self.execute.call_args_list
                   if call[0][:2] == ('mdadm', '-C')]
        self.assertEqual(1, len(created))
        self.assertIn('--failfast', created[0][0])
        self.assertEqual(self.devices, list(created[0][0][-2:]))

    def test_hook_exception_does_not_reach_connect_volume(self):
        logger = self.useFixture(fixtures.FakeLogger(
            name='os_brick_nvme_agent.hook'))
        with mock.patch.object(hook, '_ensure_running',
                               side_effect=RuntimeError('boom')) as ensure:
            result = self.connector.connect_volume(replicated_properties())
        ensure.assert_called_once_with(self.connector)
        self.assertEqual('/dev/md/' + ALIAS, result['path'])
        self.disconnect.assert_not_called()
        self.assertIn('boom', logger.output)

    def test_disabled_agent_is_not_started(self):
        self.useFixture(fixtures.EnvironmentVariable(
            hook.CONFIG_FILE_ENV, '/nonexistent/agent.conf'))
        with mock.patch.object(starter, 'start') as start:
            self.connector.connect_volume(replicated_properties())
        start.assert_not_called()
