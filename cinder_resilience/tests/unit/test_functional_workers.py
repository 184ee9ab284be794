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

"""The functional tests' worker file runs every test exactly once."""

import os

from stestr import scheduler
import testtools

import cinder_resilience.tests.functional as functional

WORKERS = os.path.join(os.path.dirname(functional.__file__), 'workers.yaml')
PREFIX = 'cinder_resilience.tests.functional.'


class WorkerFileTest(testtools.TestCase):

    def test_every_test_lands_on_exactly_one_worker(self):
        ids = [PREFIX + name for name in (
            'test_manager.LateBackendTest.test_stop_while_waiting',
            'test_manager.DeadMemberCleanupTest.test_dead_member',
            'test_coordination_chaos.RedisChaosTest.test_increments',
            'test_coordination_chaos.EtcdChaosTest.test_increments',
            'test_coordination.ZookeeperTest.test_fencing_tokens',
            # A module nobody has written yet.
            'test_new_module.NewTest.test_new',
        )]
        groups = scheduler.generate_worker_partitions(ids, WORKERS)
        self.assertEqual(2, len(groups))
        self.assertEqual(sorted(ids), sorted(groups[0] + groups[1]))
        self.assertEqual(ids[:3], groups[0])
