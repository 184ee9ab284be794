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

"""Base class of the cluster tests: one deployment shared by all of them.

Starting RabbitMQ, MariaDB and the cinder control plane takes most of a
minute, so the test process starts them once, at the first test, and stops
them at exit (also on SIGTERM). Each test then starts its own cluster (own
backend name, volume type and members), stopped by its cleanup.
"""

import atexit
import signal
import sys

from oslotest import base
from testtools import content

from cinder_resilience import tests
from cinder_resilience.tests.cluster import client as cinder_client
from cinder_resilience.tests.cluster import deployment

_SHARED = {}


def _exit_on_sigterm(signum, frame):
    sys.exit(128 + signum)   # runs the atexit handlers


def shared_deployment():
    """The deployment of this test process, started on first use."""
    if 'error' in _SHARED:
        raise RuntimeError('cluster deployment failed to start: %s'
                           % _SHARED['error'])
    if 'deployment' not in _SHARED:
        dep = deployment.Deployment()
        atexit.register(dep.stop)
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            dep.start()
        except Exception as exc:
            _SHARED['error'] = exc
            raise
        _SHARED['deployment'] = dep
    return _SHARED['deployment']


class ClusterTestCase(base.BaseTestCase):
    """A test against the shared deployment, through the REST API."""

    def setUp(self):
        reason = deployment.missing()
        if reason:
            raise tests.missing(reason)   # a skip, or a failure under CI
        super().setUp()
        self.deployment = shared_deployment()
        self.client = self.deployment.client
        self.timing = self.deployment.timing

    def cluster(self, name, **kwargs):
        """A new cluster in the deployment, its members stopped at the end."""
        cluster = self.deployment.add_cluster(name, **kwargs)
        self.addCleanup(cluster.stop)
        self.addCleanup(self._attach_logs, cluster)
        return cluster

    def _attach_logs(self, cluster):
        for name, proc in cluster.members.items():
            self.addDetailUniqueName(
                '%s-log' % proc.host,
                content.text_content(proc.log()[-30000:]))
        events = [e for e in self.deployment.events()
                  if e['host'].startswith(cluster.name + '-')]
        self.addDetailUniqueName('%s-events' % cluster.name,
                                 content.json_content(events))

    def assertAllAvailable(self, volumes):
        states = {i: v and v['status'] for i, v in volumes.items()}
        self.assertEqual({i: 'available' for i in volumes}, states)

    def hosts(self, volumes):
        return {cinder_client.host_of(v) for v in volumes.values() if v}
