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

"""Backend profiles: safety assessment, profile choice, file tokens."""

from unittest import mock

import fixtures
from oslo_concurrency import lockutils
from oslotest import base
import tooz
from tooz import coordination as tooz_coordination

from cinder_resilience import exception
from cinder_resilience import external_locks
from cinder_resilience import fencing
from cinder_resilience.tests.unit import test_coordination

# Recorded from a compute host with an NFS-mounted state path.
MOUNTS = """\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
/dev/vda1 / ext4 rw,relatime,discard,errors=remount-ro 0 0
tmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime,size=401996k,mode=755 0 0
/dev/vdb1 /var/lib xfs rw,relatime,attr2,inode64,noquota 0 0
nas:/export/cinder /var/lib/cinder nfs4 rw,relatime,vers=4.2,hard 0 0
/dev/vdc1 /srv/my\\040disk ext4 rw,relatime 0 0
"""


class FilesystemTest(base.BaseTestCase):

    def test_longest_mount_wins(self):
        self.assertEqual('nfs4', fencing.filesystem_of(
            '/var/lib/cinder/locks', MOUNTS))
        self.assertEqual('nfs4', fencing.filesystem_of('/var/lib/cinder',
                                                       MOUNTS))
        self.assertEqual('xfs', fencing.filesystem_of('/var/lib/cinder2',
                                                      MOUNTS))
        self.assertEqual('ext4', fencing.filesystem_of('/opt/x', MOUNTS))
        self.assertEqual('ext4', fencing.filesystem_of('/srv/my disk/l',
                                                       MOUNTS))
        self.assertIsNone(fencing.filesystem_of('/x', ''))

    def test_risks(self):
        self.assertIsNone(fencing.active_active_risk(
            'file:///var/lib/cinder/locks', MOUNTS))
        risk = fencing.active_active_risk('file:///var/lib/locks', MOUNTS)
        self.assertIn('xfs filesystem', risk)
        self.assertIn('memcached may evict', fencing.active_active_risk(
            'memcached://127.0.0.1:11211'))
        self.assertIn('this host', fencing.active_active_risk('ipc://'))
        for url in ('redis://h:6379', 'etcd3+http://h:2379',
                    'etcd3+https://h:2379?ca_cert=/x',
                    'zookeeper://h:2181', 'kazoo://h:2181'):
            self.assertIsNone(fencing.active_active_risk(url, MOUNTS), url)


class ProfileTest(base.BaseTestCase):

    def _driver(self, url):
        return tooz_coordination.get_coordinator(url, b'member')

    def test_profiles_by_driver(self):
        path = self.useFixture(fixtures.TempDir()).path
        cases = [('file://' + path, fencing.FileBackend, False),
                 ('redis://127.0.0.1:1', fencing.RedisBackend, True),
                 ('etcd3+http://127.0.0.1:1', fencing.EtcdBackend, True),
                 ('zookeeper://127.0.0.1:1', fencing.ZookeeperBackend, False)]
        try:
            import pymemcache  # noqa: F401
            cases.append(('memcached://127.0.0.1:1',
                          fencing.MemcachedBackend, True))
        except ImportError:
            pass  # The memcached extra is optional.
        for url, klass, lease_based in cases:
            profile = fencing.profile_for(self._driver(url))
            self.assertIs(klass, type(profile), url)
            self.assertEqual(lease_based, bool(profile.lease_based), url)

    def test_lease_seconds_from_url_options(self):
        redis = fencing.profile_for(
            self._driver('redis://127.0.0.1:1?lock_timeout=7'))
        self.assertEqual(7.0, redis.lease_seconds)
        etcd = fencing.profile_for(
            self._driver('etcd3+http://127.0.0.1:1?lock_timeout=4'))
        self.assertEqual(4.0, etcd.lease_seconds)
        zk = fencing.profile_for(self._driver('zookeeper://127.0.0.1:1'))
        self.assertIsNone(zk.lease_seconds)

    def test_generic_backend_has_no_token(self):
        class BeatingDriver(tooz_coordination.CoordinationDriver):
            lock_timeout = 9

            def heartbeat(self):
                return 1

        profile = fencing.profile_for(BeatingDriver(b'm', None, {}))
        self.assertIs(fencing.Backend, type(profile))
        self.assertTrue(profile.lease_based)
        self.assertEqual(9.0, profile.lease_seconds)
        lock = mock.Mock()
        lock.name = b'x'
        self.assertRaises(exception.FencingTokenUnavailable,
                          profile.token, lock)
        lock.is_still_owner.return_value = False
        self.assertFalse(profile.refresh(lock))
        lock.heartbeat.assert_called_once_with()
        lock.is_still_owner.side_effect = tooz.NotImplemented('no')
        self.assertTrue(profile.refresh(lock))
        plain = fencing.profile_for(tooz_coordination.CoordinationDriver(
            b'm', None, {}))
        self.assertFalse(plain.lease_based)
        self.assertIsNone(plain.lease_seconds)


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
