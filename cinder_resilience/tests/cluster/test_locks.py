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

"""cinder's own locks in a real active-active cluster (issue 9's proof).

Two cinder-volume members with our manager serve one clustered backend;
everything goes through cinder-api. The members exclude each other through
the locks cinder takes itself (a clone holds ``<source>-delete_volume``,
``delete_volume`` is ``@synchronized`` on it), and those locks must be
served by our coordinator: on the redis server every lock key is written
by a connection of ours, and a SIGKILLed holder's lock frees by itself
when its lease ends. How soon (a few heartbeats, against tooz's 30 s
default) is measured by benchmarks/lock_failover.py, not asserted here.
"""

import logging
import time

from cinder_resilience.tests.cluster import base
from cinder_resilience.tests.cluster import lock_writes

LOG = logging.getLogger(__name__)

#: The lease is a small multiple of ``[coordination] heartbeat``.
LEASE_HEARTBEATS = 3


class SharedClusterMixin(object):
    """Two members of cluster ``locks``, started once for the class."""

    _cluster = None

    def shared_cluster(self):
        cls = type(self)
        if cls._cluster is None:
            cluster = self.deployment.add_cluster('locks', capacity=2)
            cluster.add_member('m1', wait=False)
            cluster.add_member('m2', wait=False)
            cls._cluster = cluster
        self.addCleanup(self._attach_logs, cls._cluster)
        for name in cls._cluster.members:
            cls._cluster.wait_member(name)
        return cls._cluster


class ActiveActiveLocksTest(SharedClusterMixin, base.ClusterTestCase):

    def test_bulk_creates_are_served_by_every_member(self):
        cluster = self.shared_cluster()
        ids = cluster.create(8, timeout=300)
        volumes = cluster.volumes(ids)
        self.assertAllAvailable(volumes)
        self.assertEqual({m.host for m in cluster.members.values()},
                         self.hosts(volumes))

    def _clone_then_delete_source(self, cluster, pairs):
        """Clone ``pairs`` sources, delete each source mid-clone.

        RabbitMQ hands the messages of the cluster's queue to its
        consumers in turn: with two members and an even number of clones,
        each source's delete would reach the member of its clone. One more
        delete (of a spare volume) sent first shifts them to the other.
        """
        *sources, spare = cluster.create(pairs + 1)
        clones = [cluster.client.create_volume(
            cluster.volume_type, source=s, metadata={'create_seconds': 4})
            for s in sources]
        started = base.deployment.wait_for(
            lambda: len(self._events(cluster, 'start', 'clone',
                                     clones)) == pairs, 120)
        self.assertTrue(started, 'the clones did not start')
        cluster.client.delete_volume(spare)
        for source in sources:
            cluster.client.delete_volume(source)
        settled = cluster.client.wait_settled(sources + clones, 300)
        return sources, clones, settled

    def _events(self, cluster, event, op, volumes):
        return [e for e in self.deployment.events()
                if e['event'] == event and e['op'] == op and
                e['volume'] in volumes]

    def test_clone_excludes_delete_of_its_source_on_another_member(self):
        cluster = self.shared_cluster()
        crossed = 0
        for _round in range(3):
            sources, clones, settled = self._clone_then_delete_source(
                cluster, 4)
            self.assertAllAvailable({c: settled[c] for c in clones})
            self.assertEqual({s: None for s in sources},
                             {s: settled[s] for s in sources})
            clone_end = {e['source']: e for e in self._events(
                cluster, 'end', 'clone', clones)}
            for delete in self._events(cluster, 'start', 'delete', sources):
                clone = clone_end[delete['volume']]
                self.assertGreaterEqual(
                    delete['time'], clone['time'],
                    'source %s deleted while its clone ran' %
                    delete['volume'])
                crossed += delete['host'] != clone['host']
            if crossed:
                return
        self.fail('no source was deleted by another member than its clone '
                  'in 3 rounds: the cross-member case was not exercised')

    def test_every_lock_key_is_written_by_our_coordinator(self):
        cluster = self.shared_cluster()
        recorder = lock_writes.LockWriteRecorder(self.deployment.redis.port)
        recorder.start()
        try:
            self._clone_then_delete_source(cluster, 2)
        finally:
            recorder.stop()
        writers = recorder.writers()
        self.assertGreater(sum(writers.values()), 0,
                           'no cinder lock key was written at all')
        foreign = {name: n for name, n in writers.items()
                   if not name.startswith('ours-')}
        self.assertEqual({}, foreign,
                         'lock keys written by other connections than our '
                         'coordinator\'s (all writers: %s)' % writers)


class LockHolderKilledTest(base.ClusterTestCase):

    def test_lock_of_a_killed_holder_frees_by_itself(self):
        cluster = self.cluster('kill9', capacity=2)
        victim = cluster.add_member('a')
        [source] = cluster.create(1)
        # Only 'a' runs: the clone, and the lock on its source, are its.
        cluster.create(1, wait=False, source=source,
                       metadata={'create_seconds': 600,
                                 'slow_host': victim.conf_host})
        self.assertTrue(base.deployment.wait_for(
            lambda: cluster.member_events('a', 'start', 'clone'), 120),
            'the clone did not start')
        cluster.add_member('b')
        victim.kill()
        killed = time.time()
        cluster.client.delete_volume(source)
        # Nobody releases the lock: only its lease can free it. How soon
        # is measured by benchmarks/lock_failover.py, not asserted here.
        lease = LEASE_HEARTBEATS * self.timing['heartbeat']
        started = base.deployment.wait_for(
            lambda: cluster.member_events('b', 'start', 'delete'),
            lease + 120)
        self.assertTrue(started, 'the delete never started on b')
        LOG.info('the killed holder\'s lock was free %.1f s after the kill '
                 '(lease %.1f s)', started[0]['time'] - killed, lease)
        # ... and the survivor keeps serving.
        ids = cluster.create(2)
        self.assertAllAvailable(cluster.volumes(ids))
        self.assertIsNone(cluster.client.wait_settled([source], 60)[source])
