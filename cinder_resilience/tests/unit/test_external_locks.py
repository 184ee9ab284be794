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

"""External oslo.concurrency locks routed to the coordinator."""

import fixtures
from oslo_concurrency import lockutils

from cinder_resilience import external_locks
from cinder_resilience.tests.unit import test_coordination


class ExternalLocksTest(test_coordination.CoordinationTestCase):

    def setUp(self):
        super().setUp()
        self.addCleanup(external_locks.uninstall)

    def test_cinder_prefix_routed_others_not(self):
        external_locks.install(self.coord)
        self.assertTrue(external_locks.installed())
        routed = lockutils.external_lock('attach-1', 'cinder-', self.path)
        self.assertIsInstance(routed, external_locks.ExternalLock)
        self.assertEqual('cinder-attach-1', routed.lock.name)
        other = lockutils.external_lock('connect', 'os-brick-', self.path)
        self.assertNotIsInstance(other, external_locks.ExternalLock)
        external_locks.uninstall()
        self.assertFalse(external_locks.installed())
        self.assertNotIsInstance(
            lockutils.external_lock('attach-1', 'cinder-', self.path),
            external_locks.ExternalLock)

    def test_cinder_utils_synchronized_holds_distributed_lock(self):
        from cinder import utils as cinder_utils
        self.useFixture(fixtures.MockPatchObject(
            lockutils.CONF.oslo_concurrency, 'lock_path', self.path))
        external_locks.install(self.coord)

        @cinder_utils.synchronized('vol-7', external=True)
        def attach():
            return [lock.name for lock in self.coord.held_locks()]

        self.assertEqual(['cinder-vol-7'], attach())
        self.assertEqual([], self.coord.held_locks())
        # Held elsewhere: the routed lock really excludes.
        blocker = self.make_coordinator().get_lock('vol-7')
        blocker.acquire()
        routed = lockutils.external_lock('vol-7', 'cinder-')
        self.assertFalse(routed.acquire(blocking=False))
        blocker.release()
        with routed:
            self.assertTrue(routed.lock.acquired)
