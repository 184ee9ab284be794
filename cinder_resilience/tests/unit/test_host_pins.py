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

"""Pin the cinder names the re-initialization and cleanup rely on.

A cinder release that renames or reorders one of them fails here first,
not in a deployment.
"""

import inspect

from cinder.db import api as db_api
from cinder import objects
from cinder import rpc
import oslo_messaging
from oslotest import base

# cinder's manager modules name versioned objects at import time.
objects.register_all()

from cinder.cmd import volume as volume_cmd  # noqa: E402
from cinder import manager as cinder_base_manager  # noqa: E402
from cinder import service  # noqa: E402
from cinder.volume import manager as cinder_manager  # noqa: E402


def _params(func):
    return list(inspect.signature(func).parameters)


class HostPinsTest(base.BaseTestCase):

    def test_rpc_get_server_signature(self):
        # rpc_gate replaces it with a function of the same signature.
        self.assertEqual(['target', 'endpoints', 'serializer'],
                         _params(rpc.get_server))

    def test_service_start_order(self):
        # init_host, then the RPC servers, then init_host_with_rpc: the
        # gate is installed by the first and removed by the last.
        source = inspect.getsource(service.Service.start)
        positions = [source.index(name) for name in (
            'self.manager.init_host(', 'rpc.get_server(',
            'self.manager.init_host_with_rpc()')]
        self.assertEqual(sorted(positions), positions)
        self.assertEqual(3, source.count('rpc.get_server('))

    def test_rpc_server_surface(self):
        server = oslo_messaging.server.MessageHandlingServer
        for name in ('start', 'stop', 'wait'):
            self.assertTrue(callable(getattr(server, name)), name)

    def test_volume_command_lets_system_exit_through(self):
        # The manager is built in the parent process by Service.create
        # inside a handler that catches Exception only.
        source = inspect.getsource(volume_cmd._launch_service)
        self.assertIn('service.Service.create(', source)
        self.assertIn('except Exception:', source)
        self.assertNotIn('BaseException', source)
        self.assertNotIn('except:', source)

    def test_cleanup_machinery(self):
        self.assertEqual(['self', 'context', 'cleanup_request'],
                         _params(cinder_base_manager.CleanableManager
                                 .do_cleanup))
        self.assertTrue(issubclass(cinder_manager.VolumeManager,
                                   cinder_base_manager.CleanableManager))
        self.assertIn('until', _params(db_api.worker_get_all))
        fields = objects.CleanupRequest.fields
        for name in ('service_id', 'until'):
            self.assertIn(name, fields)

    def test_service_row_helpers(self):
        self.assertEqual(['context', 'service_id', 'values', 'retry'],
                         _params(db_api.service_update))
        self.assertIsInstance(objects.Service.is_up, property)
        self.assertTrue(callable(cinder_manager.VolumeManager.is_working))
