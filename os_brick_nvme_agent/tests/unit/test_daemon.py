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
from oslo_config import cfg
import testtools

from os_brick_nvme_agent import daemon
from os_brick_nvme_agent import opts


class BuildServiceTest(testtools.TestCase):
    """build_service wires the configured watcher mode."""

    def build(self, *lines):
        tmp = self.useFixture(fixtures.TempDir()).path
        replicas = os.path.join(tmp, 'replicas.yaml')
        with open(replicas, 'w') as f:
            f.write('volumes: {}\n')
        conf_file = os.path.join(tmp, 'agent.conf')
        with open(conf_file, 'w') as f:
            f.write('[nvme_agent]\nroot_dir = %s\nstate_dir = %s\n'
                    'provisioner = static\n%s\n[provisioner_static]\n'
                    'path = %s\n' % (tmp, tmp, '\n'.join(lines), replicas))
        conf = cfg.ConfigOpts()
        opts.register_opts(conf)
        conf([], default_config_files=[conf_file])
        agent = daemon.build_service(conf)
        self.addCleanup(agent.watcher.close)
        return agent

    def test_md_events_watched_by_default(self):
        self.assertTrue(self.build().watcher.events)

    def test_watch_md_events_off_gives_polling_mode(self):
        agent = self.build('watch_md_events = false',
                           'poll_interval = 3')
        self.assertFalse(agent.watcher.events)
        self.assertEqual(3.0, agent.watcher.interval)
