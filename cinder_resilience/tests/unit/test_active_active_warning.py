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

"""The active-active warning is for clusters, not for a single node."""

import logging

import fixtures
from oslo_config import cfg
from oslotest import base

from cinder_resilience import coordination

WARNING = 'not safe for active-active'


class SingleNodeWarningTest(base.BaseTestCase):

    def _start(self, cluster, url=None):
        conf = cfg.ConfigOpts()
        # cinder-volume registers ``cluster`` (cinder/cmd/volume.py).
        conf.register_opt(cfg.StrOpt('cluster'))
        conf([])
        if cluster:
            conf.set_override('cluster', cluster)
        path = self.useFixture(fixtures.TempDir()).path
        log = self.useFixture(fixtures.FakeLogger(
            name='cinder_resilience.coordination', level=logging.WARNING))
        coord = coordination.Coordinator(
            conf=conf, backend_url=url or 'file://' + path)
        coord.start()
        self.addCleanup(coord.stop)
        return log.output

    def test_file_locks_on_a_single_node_are_not_warned_about(self):
        self.assertNotIn(WARNING, self._start(cluster=None))

    def test_file_locks_in_a_cluster_are_warned_about(self):
        self.assertIn(WARNING, self._start(cluster='c1'))

    def test_unknown_cluster_setting_keeps_the_warning(self):
        conf = cfg.ConfigOpts()
        conf([])
        self.assertTrue(coordination._clustered(conf))
