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

"""The test ZooKeeper: how it is configured and when it counts as ready."""

import shutil

import testtools

from cinder_resilience.tests.functional import servers


class ZookeeperConfigTest(testtools.TestCase):

    def _config(self, **kwargs):
        server = servers.ZookeeperServer({'timeout': '3'}, **kwargs)
        server.prepare()
        self.addCleanup(shutil.rmtree, server.workdir, True)
        with open(server.config) as f:
            return f.read().splitlines()

    def test_tests_skip_the_fsync_per_write(self):
        self.assertIn('forceSync=no', self._config())

    def test_benchmarks_sync_as_in_production(self):
        lines = self._config(durable=True)
        self.assertFalse([line for line in lines if 'forceSync' in line])

    def test_readiness_asks_whether_requests_are_served(self):
        # 'ruok' answers before the database is loaded; 'srvr' does not.
        self.assertIn('4lw.commands.whitelist=srvr', self._config())
        server = servers.ZookeeperServer()
        asked = []
        server.answers = lambda request, reply: asked.append(request)
        server.ready()
        self.assertEqual([b'srvr'], asked)
