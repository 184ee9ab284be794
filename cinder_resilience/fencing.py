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

"""What each tooz backend can tell a lock holder.

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

Some profiles read attributes that tooz keeps private (the redis-py lock
token, the etcd lease, the kazoo lock node).  They are isolated here, and
the unit and functional tests pin the behaviour against tooz itself.
"""

import base64
import os
import tempfile

from oslo_log import log as logging
import tenacity
import tooz
from tooz import coordination as tooz_coordination

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


def host_local(url):
    """True for backends whose locks can only ever exclude one host."""
    scheme = url.split('://', 1)[0].split('+', 1)[0].lower()
    return scheme in ('file', 'ipc')


def active_active_risk(url, mounts_text=''):
    """Say why a backend URL is unsafe for active-active, or None."""
    scheme = url.split('://', 1)[0].split('+', 1)[0].lower()
    if scheme == 'file':
        path = url.split('://', 1)[1].split('?', 1)[0]
        fstype = filesystem_of(path, mounts_text) or 'unknown'
        if fstype in SHARED_FILESYSTEMS:
            return None
        return ('file:// locks in %s live on a %s filesystem: they only '
                'exclude services on this host. Use redis, etcd or '
                'zookeeper (or a shared filesystem with working POSIX locks) '
                'when several hosts share a backend.' % (path, fstype))
    if scheme == 'memcached':
        return ('memcached may evict lock keys under memory pressure and '
                'forgets them on restart, and gives no fencing token: two '
                'services can hold one lock. Use redis, etcd or zookeeper.')
    if scheme == 'ipc':
        return 'ipc:// locks only exclude processes on this host.'
    return None


class Backend(object):
    """Profile of a tooz driver with no known extras (memcached, sql...)."""

    name = 'generic'

    #: What a timed acquire that ran out of time raises instead of
    #: returning False: the drivers that poll through tooz's retry helper
    #: (etcd, memcached) let tenacity's RetryError out.
    timeout_errors = (tenacity.RetryError,)

    def __init__(self, driver):
        self.driver = driver

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
    timeout_errors = ()

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
        client = self.driver._client
        if self._script is None:
            self._script = client.register_script(_REDIS_TOKEN_SCRIPT)
        owner = lock._lock.local.token
        try:
            token = self._script(keys=[lock.name, lock.name + b'_fence'],
                                 args=[owner or b''])
        except Exception as exc:
            raise tooz.ToozError(str(exc)) from exc
        if token < 0:
            raise exception.LockLost(name=_text(lock.name),
                                     reason='redis holds another owner')
        return int(token)


class EtcdBackend(Backend):
    """etcd3+http(s)://: lease keep-alive, token = create revision."""

    name = 'etcd3'

    def _owner_revision(self, lock):
        from etcd3gw import exceptions as etcd_exc
        try:
            found = self.driver.client.get(lock._key.decode(), metadata=True)
        except etcd_exc.Etcd3Exception as exc:
            raise tooz_coordination.ToozConnectionError(str(exc)) from exc
        mine = base64.b64decode(lock._uuid)
        for value, meta in found:
            if value == mine:
                return int(meta['create_revision'])
        return None

    def refresh(self, lock):
        from etcd3gw import exceptions as etcd_exc
        if not lock.acquired:
            return False
        try:
            ttl = lock._lease.refresh()
        except etcd_exc.Etcd3Exception as exc:
            raise tooz_coordination.ToozConnectionError(str(exc)) from exc
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

    def __init__(self, driver):
        super().__init__(driver)
        self._listener = None
        from kazoo import exceptions as kazoo_exc
        # kazoo's lock raises LockTimeout through tooz on a timed acquire.
        self.timeout_errors = (kazoo_exc.LockTimeout,)

    @property
    def lease_seconds(self):
        return None

    @property
    def lease_based(self):
        return False

    def token(self, lock):
        znode = lock._lock.path.rstrip('/') + '/' + (lock._lock.node or '')
        try:
            stat = self.driver._coord.exists(znode)
        except Exception as exc:
            raise tooz_coordination.ToozConnectionError(str(exc)) from exc
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
        self.driver._coord.add_listener(listener)

    def unwatch(self):
        if self._listener is not None:
            self.driver._coord.remove_listener(self._listener)
            self._listener = None


class MemcachedBackend(Backend):
    """memcached://: lease refreshed with ``touch``; no fencing token."""

    name = 'memcached'


_PROFILES = {
    'FileDriver': FileBackend,
    'RedisDriver': RedisBackend,
    'Etcd3Driver': EtcdBackend,
    'KazooDriver': ZookeeperBackend,
    'MemcachedDriver': MemcachedBackend,
}


def connection_errors(url):
    """Exceptions meaning "backend unreachable" when starting ``url``.

    tooz translates most of them to ToozConnectionError, but its etcd driver
    lets etcd3gw's own errors out of ``start()``.
    """
    errors = [tooz_coordination.ToozConnectionError]
    if url.startswith('etcd3'):
        from etcd3gw import exceptions as etcd_exc
        errors += [etcd_exc.ConnectionFailedError,
                   etcd_exc.ConnectionTimeoutError]
    return tuple(errors)


def profile_for(driver):
    """Return the backend profile matching a started tooz driver."""
    for klass in type(driver).__mro__:
        if klass.__name__ in _PROFILES:
            return _PROFILES[klass.__name__](driver)
    return Backend(driver)


def _text(name):
    return name.decode('utf-8', 'replace') if isinstance(name, bytes) else name
