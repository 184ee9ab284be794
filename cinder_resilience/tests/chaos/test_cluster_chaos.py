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

"""Lock safety on real 3-member clusters while holders and members fail.

Each test runs ``runner`` for one cluster in its own process: one pass over
every fault (CI size), or the long run when ``RESILIENCE_CHAOS_LONG=1``.
What must hold on every backend: the fenced resource never accepted a stale
write and never interleaved two holders; every paused holder was told it
lost its lock; every SIGKILLed process held the lock when killed.  etcd
and ZooKeeper must never grant the lock twice; redis with sentinels may
(asynchronous replication, a client left with the old primary): its double
grants are measured, not asserted.
"""

import json
import os
import subprocess
import sys

import testtools

from cinder_resilience import tests
from cinder_resilience.tests.chaos import clusters

LONG = os.environ.get('RESILIENCE_CHAOS_LONG', '') not in ('', '0')


def run_chaos(cluster, lease, long_run=False):
    """Run the runner in a child process; return (summary, stderr)."""
    argv = [sys.executable, '-m', 'cinder_resilience.tests.chaos.runner',
            cluster, '--netns', '--lease', str(lease)]
    if long_run:
        argv.append('--long')
    proc = subprocess.run(argv, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          timeout=3600 if long_run else 600)
    if proc.returncode:
        raise AssertionError('chaos runner failed (%d): %s' % (
            proc.returncode, proc.stderr[-3000:]))
    return json.loads(proc.stdout), proc.stderr


class ClusterChaosMixin(object):
    cluster = None
    may_grant_twice = False

    def setUp(self):
        super().setUp()
        reason = clusters.missing_binaries(self.cluster)
        if reason:
            raise tests.missing(reason)

    def test_lock_safety_under_faults(self):
        result, _stderr = run_chaos(self.cluster, lease=2, long_run=LONG)
        self.addDetail('chaos', testtools.content.text_content(
            json.dumps(result, indent=1, sort_keys=True)))
        self.assertEqual([], result['skipped_faults'])
        self.assertGreater(result['acquisitions'], 50)
        # A holder SIGKILLed between its write and the record of it leaves
        # one record the history lacks; nothing else may differ.
        unrecorded = result['resource_records'] - result['writes_accepted']
        self.assertGreaterEqual(unrecorded, 0)
        self.assertLessEqual(unrecorded, len(result['kill_trials']))
        self.assertEqual(0, result['stale_writes_accepted'])
        self.assertEqual(0, result['overlapping_accepted_writes'])
        held = [t for t in result['pause_details'] if t['held']]
        self.assertGreaterEqual(len(held), 1)
        for trial in held:
            self.assertIn('reported_after_resume', trial, trial)
        # unfenced_overlaps is not asserted here: one pass has one pause,
        # and a holder stopped inside its append (holding the file's flock)
        # finishes that write in order.  test_history shows the checker
        # counting them; the long run (benchmarks/results/chaos.json) has
        # them on every cluster.
        kills = result['kill_trials']
        self.assertGreaterEqual(len(kills), 1)
        self.assertTrue(all(t['held'] for t in kills), kills)
        if not self.may_grant_twice:
            self.assertEqual(0, result['double_grants'])


class EtcdClusterChaosTest(ClusterChaosMixin, testtools.TestCase):
    cluster = 'etcd'


class ZookeeperClusterChaosTest(ClusterChaosMixin, testtools.TestCase):
    cluster = 'zookeeper'


class RedisSentinelChaosTest(ClusterChaosMixin, testtools.TestCase):
    cluster = 'redis-sentinel'
    may_grant_twice = True
