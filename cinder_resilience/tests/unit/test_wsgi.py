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


import importlib
import sys
from unittest import mock

from oslotest import base

from cinder_resilience import coordination_service

MODULES = ('cinder_resilience.wsgi', 'cinder.wsgi.api')


class WsgiTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        # Both modules do their work at import: import them afresh and put
        # back whatever was there before.
        for name in MODULES:
            self.addCleanup(self._restore, name, sys.modules.pop(name, None))

    @staticmethod
    def _restore(name, module):
        sys.modules.pop(name, None)
        if module is not None:
            sys.modules[name] = module

    def test_plugin_enabled_before_cinder_builds_the_application(self):
        calls = []
        app = object()
        with mock.patch.object(coordination_service, 'enable',
                               side_effect=lambda: calls.append('enable')), \
                mock.patch('cinder.wsgi.wsgi.initialize_application',
                           side_effect=lambda: calls.append('init') or app):
            module = importlib.import_module('cinder_resilience.wsgi')
        self.assertEqual(['enable', 'init'], calls)
        self.assertIs(app, module.application)
