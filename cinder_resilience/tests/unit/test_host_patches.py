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

"""Each host patch: pinned upstream names, exact install and uninstall."""

from unittest import mock

from cinder import coordination as cinder_coordination
import fixtures
from oslo_concurrency import lockutils
from oslotest import base
from tooz import coordination as tooz_coordination

from cinder_resilience import exception
from cinder_resilience import host_patches


class FakeCoordinator(object):
    started = True

    def get_lock(self, name):
        return FakeLock(name)


class FakeLock(object):

    def __init__(self, name):
        self.name = name


class PinsTest(base.BaseTestCase):
    """A cinder/oslo upgrade that changes a patched name fails here."""

    def test_every_patch_pins_hold_on_installed_packages(self):
        for patch in host_patches.PATCHES:
            self.assertTrue(patch.PINS, patch.name)
            host_patches.check_pins(patch.PINS)

    def test_changed_signature_is_refused(self):
        exc = self.assertRaises(
            exception.HostPatchMismatch, host_patches.check_pins,
            {'oslo_concurrency.lockutils.external_lock': '(name)'})
        self.assertIn('oslo_concurrency.lockutils.external_lock', str(exc))

    def test_missing_name_is_refused(self):
        self.assertRaises(exception.HostPatchMismatch,
                          host_patches.check_pins,
                          {'cinder.coordination.NoSuchThing': None})

    def test_parameters_drop_annotations(self):
        # cinder annotates get_lock(self, name: str); annotations may change.
        self.assertEqual('(self, name)', host_patches.parameters_of(
            cinder_coordination.Coordinator.get_lock))


class ExternalLockRoutingTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.path = self.useFixture(fixtures.TempDir()).path
        self.addCleanup(host_patches.uninstall_all)
        self.original = lockutils.external_lock

    def test_install_records_and_uninstall_restores(self):
        patch = host_patches.EXTERNAL_LOCKS
        coord = FakeCoordinator()
        patch.install(coord, 'cinder-')
        self.assertIsNot(self.original, lockutils.external_lock)
        self.assertIs(coord, patch.coordinator)
        [record] = patch.replacements
        self.assertIs(self.original, record.original)
        routed = lockutils.external_lock('x', 'cinder-', None)
        self.assertEqual('x', routed.lock.name)
        patch.uninstall()
        self.assertIs(self.original, lockutils.external_lock)
        self.assertFalse(patch.installed)
        patch.uninstall()   # idempotent
        self.assertIs(self.original, lockutils.external_lock)

    def test_reinstall_replaces_instead_of_stacking(self):
        patch = host_patches.EXTERNAL_LOCKS
        patch.install(FakeCoordinator(), 'cinder-')
        patch.install(FakeCoordinator(), 'cinder-')
        self.assertIs(self.original, patch.replacements[0].original)
        patch.uninstall()
        self.assertIs(self.original, lockutils.external_lock)

    def test_other_prefix_and_stopped_coordinator_keep_files(self):
        coord = FakeCoordinator()
        host_patches.EXTERNAL_LOCKS.install(coord, 'cinder-')
        other = lockutils.external_lock('c', 'os-brick-', self.path)
        self.assertFalse(hasattr(other, 'lock'))
        coord.started = False
        self.assertFalse(hasattr(
            lockutils.external_lock('c', 'cinder-', self.path), 'lock'))


class CinderCoordinatorRoutingTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.addCleanup(host_patches.uninstall_all)
        self.upstream = cinder_coordination.COORDINATOR
        self.before = dict(vars(self.upstream))
        self.made = []

    def make_driver(self, url, member_id):
        self.made.append((url, member_id))
        return mock.sentinel.driver

    def test_only_the_module_global_is_replaced_and_restored(self):
        patch = host_patches.CINDER_COORDINATOR
        patch.install(self.make_driver)
        [record] = patch.replacements
        self.assertIs(cinder_coordination, record.target)
        self.assertIs(tooz_coordination, record.original)
        shim = cinder_coordination.coordination
        self.assertIsInstance(shim, host_patches.ToozForCinder)
        # Every other name is tooz's own.
        self.assertIs(tooz_coordination.ToozError, shim.ToozError)
        self.assertEqual(self.before, vars(self.upstream))
        patch.uninstall()
        self.assertIs(tooz_coordination, cinder_coordination.coordination)

    def test_routes_only_cinders_global_coordinator(self):
        host_patches.CINDER_COORDINATOR.install(self.make_driver)
        shim = cinder_coordination.coordination
        member = ('cinder-' + self.upstream.agent_id).encode('ascii')
        self.assertIs(mock.sentinel.driver,
                      shim.get_coordinator('file:///x', member))
        self.assertEqual([('file:///x', member)], self.made)
        with mock.patch.object(tooz_coordination, 'get_coordinator') as get:
            other = shim.get_coordinator('redis://h', b'cinder-other')
        # Looked up at call time: tests that mock tooz still mock it.
        self.assertIs(get.return_value, other)
        get.assert_called_once_with('redis://h', b'cinder-other')

    def test_synchronized_default_is_rendered_by_type(self):
        self.assertEqual(
            '(*lock_names, blocking=True, coordinator=<Coordinator>)',
            host_patches.parameters_of(cinder_coordination.synchronized))
