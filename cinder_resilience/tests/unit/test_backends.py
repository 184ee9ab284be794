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
from oslotest import base
import tooz
from tooz import coordination as tooz_coordination

from cinder_resilience import backend_internals
from cinder_resilience import backends
from cinder_resilience import exception

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
        self.assertEqual('nfs4', backends.filesystem_of(
            '/var/lib/cinder/locks', MOUNTS))
        self.assertEqual('nfs4', backends.filesystem_of(
            '/var/lib/cinder', MOUNTS))
        self.assertEqual('xfs', backends.filesystem_of(
            '/var/lib/cinder2', MOUNTS))
        self.assertEqual('ext4', backends.filesystem_of('/opt/x', MOUNTS))
        self.assertEqual('ext4', backends.filesystem_of(
            '/srv/my disk/l', MOUNTS))
        self.assertIsNone(backends.filesystem_of('/x', ''))

    def _risk(self, url, mounts=MOUNTS):
        driver = tooz_coordination.get_coordinator(url, b'member')
        return backends.profile_for(driver).risk(url, mounts)

    def test_risks_from_driver_characteristics(self):
        self.assertIsNone(self._risk('file:///var/lib/cinder/locks'))
        risk = self._risk('file:///var/lib/locks')
        self.assertIn('xfs filesystem', risk)
        self.assertIn('memcached may evict',
                      self._risk('memcached://127.0.0.1:11211'))
        # A driver without a profile: its CHARACTERISTICS decide.
        local = backends.profile_for(tooz_coordination.CoordinationDriver(
            b'm', None, {}))
        self.assertIn('this host', local.risk('x://'))
        for url in ('redis://h:6379', 'etcd3+http://h:2379',
                    'etcd3+https://h:2379?ca_cert=/x',
                    'zookeeper://h:2181', 'kazoo://h:2181'):
            self.assertIsNone(self._risk(url), url)


class ProfileTest(base.BaseTestCase):

    def _driver(self, url):
        return tooz_coordination.get_coordinator(url, b'member')

    def test_profiles_by_driver(self):
        path = self.useFixture(fixtures.TempDir()).path
        cases = [('file://' + path, backends.FileBackend, False),
                 ('redis://127.0.0.1:1', backends.RedisBackend, True),
                 ('etcd3+http://127.0.0.1:1', backends.EtcdBackend, True),
                 ('zookeeper://127.0.0.1:1', backends.ZookeeperBackend, False)]
        try:
            import pymemcache  # noqa: F401
            cases.append(('memcached://127.0.0.1:1',
                          backends.MemcachedBackend, True))
        except ImportError:
            pass  # The memcached extra is optional.
        for url, klass, lease_based in cases:
            profile = backends.profile_for(self._driver(url))
            self.assertIs(klass, type(profile), url)
            self.assertEqual(lease_based, bool(profile.lease_based), url)

    def test_lease_seconds_from_url_options(self):
        redis = backends.profile_for(
            self._driver('redis://127.0.0.1:1?lock_timeout=7'))
        self.assertEqual(7.0, redis.lease_seconds)
        etcd = backends.profile_for(
            self._driver('etcd3+http://127.0.0.1:1?lock_timeout=4'))
        self.assertEqual(4.0, etcd.lease_seconds)
        zk = backends.profile_for(self._driver('zookeeper://127.0.0.1:1'))
        self.assertIsNone(zk.lease_seconds)

    def test_generic_backend_has_no_token(self):
        class BeatingDriver(tooz_coordination.CoordinationDriver):
            lock_timeout = 9

            def heartbeat(self):
                return 1

        profile = backends.profile_for(BeatingDriver(b'm', None, {}))
        self.assertIs(backends.Backend, type(profile))
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
        plain = backends.profile_for(tooz_coordination.CoordinationDriver(
            b'm', None, {}))
        self.assertFalse(plain.lease_based)
        self.assertIsNone(plain.lease_seconds)


class LeaseUrlTest(base.BaseTestCase):

    def test_lease_from_heartbeat(self):
        self.assertEqual(3, backends.lease_seconds_for(1.0, 3))
        self.assertEqual(2, backends.lease_seconds_for(0.5, 3))
        self.assertEqual(1, backends.lease_seconds_for(0.05, 2))

    def test_lease_option_per_backend(self):
        cases = [
            ('redis://h:6379', 'redis://h:6379?lock_timeout=3'),
            ('redis://h:6379?db=2', 'redis://h:6379?db=2&lock_timeout=3'),
            ('etcd3+http://h:2379', 'etcd3+http://h:2379?lock_timeout=3'),
            ('zookeeper://h:2181', 'zookeeper://h:2181?timeout=3'),
            ('kazoo://h:2181', 'kazoo://h:2181?timeout=3'),
            ('file:///var/lib/cinder', 'file:///var/lib/cinder'),
        ]
        for url, expected in cases:
            self.assertEqual((expected, False), backends.lease_url(url, 3))

    def test_operator_value_kept(self):
        url = 'redis://:secret@h:6379?lock_timeout=20'
        self.assertEqual((url, True), backends.lease_url(url, 3))

    def test_drivers_take_the_lease(self):
        for url in ('redis://127.0.0.1:1', 'etcd3+http://127.0.0.1:1'):
            driver = tooz_coordination.get_coordinator(
                backends.lease_url(url, 4)[0], b'm')
            self.assertEqual(4, driver.lock_timeout, url)
        zk = tooz_coordination.get_coordinator(
            backends.lease_url('zookeeper://127.0.0.1:1', 4)[0], b'm')
        self.assertEqual(4, zk.timeout)


class InternalsTest(base.BaseTestCase):
    """Each private read works on real tooz objects (no server needed)."""

    def test_redis(self):
        import redis
        from tooz.drivers import redis as tooz_redis
        driver = tooz_coordination.get_coordinator('redis://127.0.0.1:1',
                                                   b'm')
        driver._client = redis.Redis(port=1)
        self.assertIs(driver._client,
                      backend_internals.RedisInternals.client(driver))
        lock = tooz_redis.RedisLock(driver, driver._client, b'n', 3)
        self.assertIsNone(backend_internals.RedisInternals.owner_token(lock))

    def test_etcd(self):
        from tooz.drivers import etcd3gw as tooz_etcd
        driver = tooz_coordination.get_coordinator('etcd3+http://127.0.0.1:1',
                                                   b'm')
        lock = tooz_etcd.Etcd3Lock(driver, b'n', 3)
        self.assertIsInstance(backend_internals.EtcdInternals.key(lock),
                              bytes)
        self.assertEqual(16, len(
            backend_internals.EtcdInternals.owner_value(lock)))
        # tooz sets the lease at acquire (functional tests read it then).
        self.assertRaises(exception.BackendInternalsChanged,
                          backend_internals.EtcdInternals.lease, lock)

    def test_kazoo(self):
        from kazoo.recipe import lock as kazoo_lock
        from tooz.drivers import zookeeper as tooz_zk
        driver = tooz_coordination.get_coordinator('zookeeper://127.0.0.1:1',
                                                   b'm')
        client = backend_internals.KazooInternals.client(driver)
        self.assertTrue(hasattr(client, 'add_listener'))
        lock = tooz_zk.ZooKeeperLock(
            b'n', kazoo_lock.Lock(client, '/tooz/locks/n'))
        self.assertEqual('/tooz/locks/n/',
                         backend_internals.KazooInternals.lock_node(lock))

    def test_missing_attribute_is_named(self):
        exc = self.assertRaises(
            exception.BackendInternalsChanged,
            backend_internals.RedisInternals.owner_token, object())
        self.assertIn('has no attribute _lock', str(exc))

    def test_translation_is_narrow(self):
        from redis import exceptions as redis_exc
        errors = backend_internals.redis_errors()

        def raising(exc):
            with backend_internals.translated(errors):
                raise exc

        self.assertRaises(tooz_coordination.ToozConnectionError, raising,
                          redis_exc.ConnectionError('refused'))
        self.assertRaises(ValueError, raising, ValueError('bug'))
        self.assertRaises(redis_exc.ResponseError, raising,
                          redis_exc.ResponseError('script'))
