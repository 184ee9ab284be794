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

"""Members that come late or die, in a real cluster (issue 10's proof).

* A member whose backend is down takes no cluster work: creates sent while
  it probes all end ``available`` on the healthy members, it reports down
  meanwhile, and it serves its share once its backend is up.
* A SIGKILLed member's creates, clones and deletes do not stay
  ``creating``/``deleting``: a surviving member cleans them up, with no
  operator call.
* Stopping a member while it waits to probe ends it on SIGTERM, without
  waiting for the probe.

How long these take is measured by benchmarks/cinder_reinit_cluster.py;
the tests only bound their waits so that a broken build fails rather than
hangs.
"""

import logging
import time

from cinder_resilience.tests.cluster import base
from cinder_resilience.tests.cluster import client as cinder_client

LOG = logging.getLogger(__name__)
wait_for = base.deployment.wait_for

#: Counted attempts (reinit_driver_count = 3, cinder's default) plus one:
#: from then on the member probes in the background.
PROBING_AFTER_FAILURES = 5
#: How long after its start the late member's backend comes up.
BACKEND_DELAY_S = 20.0
#: Added to service_down_time plus one cleanup interval
#: (dead_member_cleanup_interval) before the test gives up: without the
#: cleanup the volumes would stay transient for ever, so this is only a
#: bound on a failing run, sized for a loaded 2-core machine.
SLACK_S = 120.0


class LateMemberTest(base.ClusterTestCase):

    def _probing(self, cluster, name):
        return wait_for(lambda: cluster.setup_failures(name) >=
                        PROBING_AFTER_FAILURES, 180, interval=0.5)

    def test_late_member_takes_no_work_until_its_backend_is_up(self):
        cluster = self.cluster('late', capacity=2)
        cluster.add_member('m1', wait=False)
        cluster.add_member('m2', wait=False)
        cluster.wait_member('m1')
        cluster.wait_member('m2')
        late = cluster.add_member('m3', backend_up=False, wait=False)
        began = time.monotonic()
        self.assertTrue(self._probing(cluster, 'm3'),
                        'm3 did not reach background probing')

        during = cluster.create(6, timeout=120)
        volumes = cluster.volumes(during)
        self.assertAllAvailable(volumes)
        self.assertNotIn(late.host, self.hosts(volumes))
        self.assertEqual('down', cluster.service_state('m3'))
        [info] = [c for c in self.client.clusters()
                  if c['name'] == '%s@%s' % (cluster.name, cluster.backend)]
        self.assertEqual(1, info['num_down_hosts'])

        time.sleep(max(0.0, BACKEND_DELAY_S - (time.monotonic() - began)))
        cluster.backend_up('m3')
        cluster.wait_member('m3', timeout=120)
        after = cluster.create(9, timeout=300)
        volumes = cluster.volumes(after)
        self.assertAllAvailable(volumes)
        self.assertIn(late.host, self.hosts(volumes))

    def test_stop_while_probing_ends_on_sigterm(self):
        # The counted attempts end after 1 + 2 + 4 s; then the member
        # would sleep the whole hour before its first probe. A stop that
        # waited for that probe would need the SIGKILL after 60 s.
        cluster = self.cluster('stopper')
        member = cluster.add_member(
            'm1', backend_up=False, wait=False,
            options={'reinit_driver_probe_interval': 3600})
        self.assertTrue(
            wait_for(lambda: cluster.setup_failures('m1') >=
                     PROBING_AFTER_FAILURES - 1, 180, interval=0.5),
            'm1 did not end its counted attempts')
        time.sleep(1.0)
        took = member.stop(timeout=60)
        self.assertFalse(member.killed,
                         'm1 did not exit on SIGTERM while probing')
        self.assertEqual(PROBING_AFTER_FAILURES - 1,
                         cluster.setup_failures('m1'),
                         'm1 probed again instead of stopping')
        LOG.info('m1 exited %.1f s after SIGTERM', took)


class KilledMemberTest(base.ClusterTestCase):

    def test_killed_member_work_is_cleaned_up_without_operator(self):
        cluster = self.cluster('dead', capacity=4)
        victim = cluster.add_member('a')
        # Slow on 'a' only: the survivor's cleanup may redo a delete.
        slow_delete = {'delete_seconds': 600, 'slow_host': victim.conf_host}
        slow_create = {'create_seconds': 600, 'slow_host': victim.conf_host}
        source, doomed = cluster.create(2, metadata=slow_delete)
        # Only 'a' runs: a create, a clone and a delete, all mid-way.
        create = cluster.client.create_volume(cluster.volume_type,
                                              metadata=slow_create)
        clone = cluster.client.create_volume(
            cluster.volume_type, source=source, metadata=slow_create)
        cluster.client.delete_volume(doomed)
        self.assertTrue(wait_for(
            lambda: len(cluster.member_events('a', 'start')) >= 5, 120),
            'the create, clone and delete did not all start on a')
        cluster.add_member('b')
        [bystander] = cluster.create(1)
        victim.kill()
        bound = (self.timing['service_down_time'] +
                 self.timing['dead_member_cleanup_interval'] + SLACK_S)
        mine = [create, clone, doomed]
        settled = cluster.client.wait_settled(mine, bound, interval=2.0)
        stuck = {i: v['status'] for i, v in settled.items()
                 if v is not None and v['status'] in cinder_client.TRANSIENT}
        self.assertEqual({}, stuck, 'left in a transient state %.0f s '
                         'after the kill' % bound)
        for volume in settled.values():
            if volume is not None:
                self.assertIn(volume['status'], ('available', 'error'))
        # A member that still heartbeats is never cleaned.
        self.assertAllAvailable(cluster.volumes([bystander]))
        self.assertEqual('up', cluster.service_state('b'))
