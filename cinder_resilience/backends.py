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

"""Backend profiles: what each tooz backend can tell a lock holder.

tooz hands out locks but says little about them once they are held.  A
*backend profile* here adds, per driver, the three things the coordinator
needs to keep a holder honest:

* ``token(lock)``: a fencing token, an integer that grows with every
  acquisition of one lock name whoever the holder is, so that a protected
  resource can refuse a writer that lost its lock without knowing it;
* ``refresh(lock)``: extend the lease of a held lock and say whether the
  backend still holds it for us (backends whose locks expire);
* ``watch(on_session_lost)``: be told at once when a session ends
  (ZooKeeper).

============  ==========================  ===========================
backend       fencing token               lock lost when
============  ==========================  ===========================
file          counter file next to the    never (the kernel drops it
              lock file, bumped under it  only when the process dies)
redis         server-side counter bumped  refresh finds another owner,
              atomically with an owner    or no refresh for the lock
              check; never below the      timeout
              server clock in us, so it
              survives a restart without
              persistence
etcd3         create revision of the      lease gone or key owned by
              lock key                    someone else, or no refresh
                                          for the lock timeout
zookeeper     czxid of the lock znode     session suspended or lost
memcached     none                        like redis (touch + owner
                                          check)
others        none                        refresh or release fails
============  ==========================  ===========================

The profile is chosen from the type of the started tooz driver
(``isinstance`` against tooz's own driver classes) and its
``CHARACTERISTICS`` say whether its locks reach across hosts.

Some profiles read attributes that tooz, redis-py, kazoo or etcd3gw keep
private (the redis-py lock token, the etcd lease and key, the kazoo client
and lock node): every such read goes through the accessors of
:mod:`cinder_resilience.backend_internals`, and client-library errors are
translated there, at one edge, from a narrow list per backend.

The lease of a lock whose holder died (``lease_url``) is set from our
``[coordination]`` options: redis and etcd ``lock_timeout``, zookeeper
session ``timeout``, unless the operator put them in ``backend_url``.
"""

import math
import os
import tempfile
from urllib import parse

from oslo_log import log as logging
from oslo_utils import importutils
import tenacity
import tooz
from tooz import coordination as tooz_coordination

from cinder_resilience import backend_internals as internals
from cinder_resilience import exception

LOG = logging.getLogger(__name__)

#: Filesystems whose POSIX locks are honoured across hosts.
SHARED_FILESYSTEMS = frozenset([
    'nfs', 'nfs4', 'ceph', 'cephfs', 'fuse.cephfs', 'glusterfs',
    'fuse.glusterfs', 'gpfs', 'lustre', 'ocfs2', 'gfs2', 'beegfs',
])

# Issue a token only if KEYS[1] still holds our redis-py token (ARGV[1]).
# The new value is above the last one and never below the server clock in
# microseconds, so a redis restarted without persistence still hands out
# larger tokens than before (as long as its clock moved on).
_REDIS_TOKEN_SCRIPT = """
if redis.replicate_commands then
    redis.replicate_commands()  -- needed before 5.0 to write after TIME
end
if redis.call('get', KEYS[1]) ~= ARGV[1] then
    return -1
end
local now = redis.call('time')
local clock = tonumber(now[1]) * 1000000 + tonumber(now[2])
local last = tonumber(redis.call('get', KEYS[2]) or '0')
local token = math.max(last + 1, clock)
redis.call('set', KEYS[2], string.format('%d', token))
return token
"""


def filesystem_of(path, mounts_text):
    """Return the filesystem type holding ``path`` from /proc/mounts text."""
    best, fstype = '', None
    path = os.path.abspath(path)
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace('\\040', ' ')
        prefix = mount_point.rstrip('/') + '/'
        inside = path.startswith(prefix) or mount_point == '/'
        if (path == mount_point or inside) and len(mount_point) > len(best):
            best, fstype = mount_point, fields[2]
    return fstype


class Backend(object):
    """Profile of a tooz driver with no known extras (memcached, sql...)."""

    name = 'generic'

    #: URL schemes whose lease option ``LEASE_OPTION`` we set.
    SCHEMES = ()
    LEASE_OPTION = None

    #: What a timed acquire that ran out of time raises instead of
    #: returning False: the drivers that poll through tooz's retry helper
    #: (etcd, memcached) let tenacity's RetryError out.
    timeout_errors = (tenacity.RetryError,)

    def __init__(self, driver):
        self.driver = driver

    @staticmethod
    def raw_errors():
        """Client-library errors meaning "backend unreachable"."""
        return ()

    @property
    def connection_errors(self):
        """What a call to an unreachable backend raises.

        tooz translates most client errors to ToozConnectionError, but
        some drivers (etcd) let the client library's own errors out.
        """
        return (tooz_coordination.ToozConnectionError,) + self.raw_errors()

    @property
    def across_hosts(self):
        return (tooz_coordination.Characteristics.DISTRIBUTED_ACROSS_HOSTS
                in getattr(self.driver, 'CHARACTERISTICS', ()))

    def risk(self, url, mounts_text=''):
        """Why this backend is unsafe for active-active, or None."""
        if not self.across_hosts:
            return 'its locks only exclude processes on this host.'
        return None

    @property
    def lease_seconds(self):
        """Lifetime of an unrefreshed lock, or None when it has none."""
        if not self.driver.requires_beating:
            return None
        timeout = getattr(self.driver, 'lock_timeout', None)
        return float(timeout) if timeout else None

    @property
    def lease_based(self):
        """True when held locks expire unless the holder refreshes them."""
        return self.driver.requires_beating

    def refresh(self, lock):
        """Extend a held lock and report whether it is still ours.

        :param lock: the tooz lock
        :returns: True if the backend still holds it for us, False if not
        :raises: tooz.ToozError when the backend cannot be asked
        """
        beat = getattr(lock, 'heartbeat', None)
        if beat is not None:
            beat()
        try:
            return bool(lock.is_still_owner())
        except tooz.NotImplemented:
            return True

    def token(self, lock):
        """Return the fencing token of a held lock.

        :raises: FencingTokenUnavailable when the backend has none;
                 LockLost when the lock is no longer ours
        """
        raise exception.FencingTokenUnavailable(
            backend=self.name, name=_text(lock.name))

    def watch(self, on_session_lost):
        """Call ``on_session_lost(reason)`` when the session ends."""

    def unwatch(self):
        """Undo ``watch``."""


class FileBackend(Backend):
    """file://: kernel locks; the token is a counter file bumped under it."""

    name = 'file'
    timeout_errors = ()

    #: tooz's file driver beats for group membership only; its locks are
    #: kernel locks that cannot expire.
    lease_based = False
    lease_seconds = None

    def risk(self, url, mounts_text=''):
        path = url.split('://', 1)[1].split('?', 1)[0]
        fstype = filesystem_of(path, mounts_text) or 'unknown'
        if fstype in SHARED_FILESYSTEMS:
            return None
        return ('file:// locks in %s live on a %s filesystem: they only '
                'exclude services on this host. Use redis, etcd or '
                'zookeeper (or a shared filesystem with working POSIX locks) '
                'when several hosts share a backend.' % (path, fstype))

    def token(self, lock):
        path = _text(lock.name) + '.fence'
        try:
            with open(path) as f:
                last = int(f.read().strip() or 0)
        except FileNotFoundError:
            last = 0
        token = last + 1
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix='.fence')
        with os.fdopen(fd, 'w') as f:
            f.write('%d\n' % token)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return token


class RedisBackend(Backend):
    """redis://: lease refreshed with the redis-py lock's ``reacquire``."""

    name = 'redis'
    SCHEMES = ('redis', 'rediss')
    LEASE_OPTION = 'lock_timeout'
    timeout_errors = ()
    raw_errors = staticmethod(internals.redis_errors)

    def __init__(self, driver):
        super().__init__(driver)
        self._script = None

    def refresh(self, lock):
        try:
            if lock.heartbeat():
                return True
        except tooz_coordination.ToozConnectionError:
            raise
        except tooz.ToozError:
            # reacquire refused: someone else's token is there, or nothing.
            LOG.debug('Refresh of %s refused by redis', _text(lock.name))
        return bool(lock.is_still_owner())

    def token(self, lock):
        owner = internals.RedisInternals.owner_token(lock)
        with internals.translated(self.raw_errors()):
            if self._script is None:
                client = internals.RedisInternals.client(self.driver)
                self._script = client.register_script(_REDIS_TOKEN_SCRIPT)
            token = self._script(keys=[lock.name, lock.name + b'_fence'],
                                 args=[owner or b''])
        if token < 0:
            raise exception.LockLost(name=_text(lock.name),
                                     reason='redis holds another owner')
        return int(token)


class EtcdBackend(Backend):
    """etcd3+http(s)://: lease keep-alive, token = create revision."""

    name = 'etcd3'
    SCHEMES = ('etcd3+http', 'etcd3+https', 'etcd3gw')
    LEASE_OPTION = 'lock_timeout'
    raw_errors = staticmethod(internals.etcd_errors)

    #: tooz's etcd3gw driver declares LINEARIZABLE but not
    #: DISTRIBUTED_ACROSS_HOSTS, which etcd, a network server, is.
    across_hosts = True

    def _owner_revision(self, lock):
        with internals.translated(self.raw_errors()):
            found = self.driver.client.get(
                internals.EtcdInternals.key(lock).decode(), metadata=True)
        mine = internals.EtcdInternals.owner_value(lock)
        for value, meta in found:
            if value == mine:
                return int(meta['create_revision'])
        return None

    def refresh(self, lock):
        lease = internals.EtcdInternals.lease(lock)
        if not lock.acquired or lease is None:
            return False
        with internals.translated(self.raw_errors()):
            ttl = lease.refresh()
        if ttl <= 0:
            return False
        return self._owner_revision(lock) is not None

    def token(self, lock):
        revision = self._owner_revision(lock)
        if revision is None:
            raise exception.LockLost(name=_text(lock.name),
                                     reason='etcd key owned by another')
        return revision


class ZookeeperBackend(Backend):
    """zookeeper://: session-based; token = czxid of our lock znode."""

    name = 'zookeeper'
    SCHEMES = ('zookeeper', 'kazoo')
    LEASE_OPTION = 'timeout'
    raw_errors = staticmethod(internals.kazoo_errors)
    lease_seconds = None
    lease_based = False

    def __init__(self, driver):
        super().__init__(driver)
        self._listener = None
        from kazoo import exceptions as kazoo_exc
        # kazoo's lock raises LockTimeout through tooz on a timed acquire.
        self.timeout_errors = (kazoo_exc.LockTimeout,)

    def token(self, lock):
        znode = internals.KazooInternals.lock_node(lock)
        with internals.translated(self.raw_errors()):
            stat = internals.KazooInternals.client(self.driver).exists(znode)
        if not lock.acquired or stat is None:
            raise exception.LockLost(name=_text(lock.name),
                                     reason='lock znode is gone')
        return int(stat.czxid)

    def watch(self, on_session_lost):
        from kazoo.protocol import states

        def listener(state):
            if state in (states.KazooState.SUSPENDED, states.KazooState.LOST):
                on_session_lost('zookeeper session %s' % state.lower())
            return False

        self._listener = listener
        internals.KazooInternals.client(self.driver).add_listener(listener)

    def unwatch(self):
        if self._listener is not None:
            internals.KazooInternals.client(self.driver).remove_listener(
                self._listener)
            self._listener = None


class MemcachedBackend(Backend):
    """memcached://: lease refreshed with ``touch``; no fencing token."""

    name = 'memcached'

    def risk(self, url, mounts_text=''):
        return ('memcached may evict lock keys under memory pressure and '
                'forgets them on restart, and gives no fencing token: two '
                'services can hold one lock. Use redis, etcd or zookeeper.')


#: (tooz driver module, class, profile): the class is imported only when
#: its client library is installed, and matched with isinstance.
_DRIVERS = (
    ('tooz.drivers.file', 'FileDriver', FileBackend),
    ('tooz.drivers.redis', 'RedisDriver', RedisBackend),
    ('tooz.drivers.etcd3gw', 'Etcd3Driver', EtcdBackend),
    ('tooz.drivers.zookeeper', 'KazooDriver', ZookeeperBackend),
    ('tooz.drivers.memcached', 'MemcachedDriver', MemcachedBackend),
)


def _driver_classes():
    for module_name, class_name, profile in _DRIVERS:
        module = importutils.try_import(module_name)
        if module is not None:
            yield getattr(module, class_name), profile


def profile_for(driver):
    """Return the backend profile matching a (started) tooz driver."""
    for driver_class, profile in _driver_classes():
        if isinstance(driver, driver_class):
            return profile(driver)
    return Backend(driver)


def active_active_risk(url, mounts_text=''):
    """Why the backend of ``url`` is unsafe for active-active, or None.

    Builds the tooz driver without connecting it.
    """
    driver = tooz_coordination.get_coordinator(url, b'risk-check')
    return profile_for(driver).risk(url, mounts_text)


def _profile_class_for_url(url):
    scheme = url.split('://', 1)[0].lower()
    for _module, _class, profile in _DRIVERS:
        if scheme in profile.SCHEMES:
            return profile
    return Backend


def lease_seconds_for(heartbeat, lease_heartbeats):
    """Whole seconds (tooz takes integers) of a dead holder's lease."""
    return max(1, int(math.ceil(heartbeat * lease_heartbeats)))


def lease_url(url, lease_seconds):
    """``url`` with the backend's lease option set, unless already there.

    :returns: (url, True if the operator's own value was kept)
    """
    option = _profile_class_for_url(url).LEASE_OPTION
    if option is None:
        return url, False
    parts = parse.urlsplit(url)
    query = parse.parse_qsl(parts.query, keep_blank_values=True)
    if any(key == option for key, _value in query):
        return url, True
    query.append((option, str(lease_seconds)))
    return parse.urlunsplit(parts._replace(query=parse.urlencode(query))), \
        False


def raw_errors_for(url):
    """Client-library errors of the backend of ``url`` (see internals)."""
    return _profile_class_for_url(url).raw_errors()


def _text(name):
    return name.decode('utf-8', 'replace') if isinstance(name, bytes) else name
