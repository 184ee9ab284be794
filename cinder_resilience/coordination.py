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

"""Distributed locks with tooz, safe for active-active cinder-volume.

A drop-in superset of ``cinder.coordination``: ``Coordinator`` (``start``,
``stop``, ``get_lock``), the module-level ``COORDINATOR`` and
``synchronized``.  Unlike upstream:

* a body never runs without its lock: a non-blocking or timed acquire that
  fails raises ``LockAcquireFailed`` instead of running the function;
* a lock lost behind the holder's back (lease not refreshed in time, another
  owner, ZooKeeper session gone, ``release()`` refused) is logged at ERROR,
  flagged on the lock (``lock.lost``) and reported to callbacks;
* each acquisition has a fencing token (``lock.fencing_token``) where the
  backend can give one (file, redis, etcd, zookeeper);
* backends unsafe for active-active are warned about at start.

Lock names use the same ``cinder-`` prefix and tooz naming as
``cinder.coordination``, so both exclude each other on one backend.
"""

import inspect
import threading
import time
import uuid

import decorator
from oslo_config import cfg
from oslo_log import log as logging
from tooz import coordination as tooz_coordination

from cinder_resilience import exception
from cinder_resilience import fencing
from cinder_resilience import lease_keeper
from cinder_resilience import opts

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

__all__ = ['Coordinator', 'COORDINATOR', 'Lock', 'synchronized',
           'synchronized_remove', 'register_opts']


def register_opts(conf):
    """Register ``[coordination]``: cinder's backend_url plus ours."""
    from cinder import coordination as cinder_coordination
    conf.register_opts(cinder_coordination.coordination_opts,
                       group='coordination')
    opts.register_opts(conf)


def _read_mounts():
    try:
        with open('/proc/mounts') as f:
            return f.read()
    except OSError:
        return ''


def blocking_argument(blocking, timeout):
    """Turn (blocking, timeout) into tooz's ``blocking`` argument.

    tooz takes a number as ``blocking`` to mean "wait at most that long";
    its ``timeout`` keyword means a lease length on some drivers, so it is
    never passed.
    """
    if blocking is True and timeout is not None:
        return float(timeout)
    if blocking is False or blocking is True:
        return blocking
    return float(blocking)


class Lock(object):
    """A named distributed lock handed out by ``Coordinator.get_lock``.

    ``lost`` becomes True (and callbacks run) when the backend stops holding
    the lock for us while we believe we hold it.  ``fencing_token`` is an
    integer that grows with each acquisition of the name, whoever holds it.
    """

    def __init__(self, coordinator, name, tooz_lock):
        self._coordinator = coordinator
        self.tooz_lock = tooz_lock
        self.name = name
        self.acquired = False
        self.lost = False
        self.lost_reason = None
        self.deadline = None
        self._token = None
        self._callbacks = []

    def add_lost_callback(self, callback):
        """Call ``callback(lock)`` when this lock is lost while held."""
        self._callbacks.append(callback)

    def acquire(self, blocking=True, timeout=None):
        """Take the lock; True if taken, False if not (never raises so)."""
        coord = self._coordinator
        if coord.closed:
            raise exception.CoordinatorNotStarted(name=self.name)
        if timeout is None and blocking.__class__ is bool:
            argument = blocking   # the common case, kept cheap
        else:
            argument = blocking_argument(blocking, timeout)
        lease = coord.lease_seconds
        started = time.monotonic() if lease else None
        try:
            if not self.tooz_lock.acquire(argument):
                return False
        except coord.timeout_errors:
            return False
        self.acquired = True
        if self.lost:
            self.lost = False
            self.lost_reason = None
        self._token = None
        if lease:
            # The lease began when the backend granted it: after
            # ``started`` and, after a long wait, within the last round trip.
            granted = max(started, time.monotonic() - min(1.0, lease / 10))
            self.deadline = granted + lease
        coord._held.add(self)
        return True

    def release(self):
        """Release; True only if the lock was held all along until now."""
        coord = self._coordinator
        coord._held.discard(self)
        # A session lost while the release is under way (kazoo reconnects
        # inside release() and calls the listeners meanwhile) still counts.
        coord._releasing.add(self)
        try:
            released = self.tooz_lock.release()
        except Exception as exc:
            self.mark_lost('release failed: %s' % exc)
            self.acquired = False
            raise
        finally:
            coord._releasing.discard(self)
        if not released:
            self.mark_lost('the backend refused the release (not the owner)')
        self.acquired = False
        return bool(released) and not self.lost

    @property
    def fencing_token(self):
        """Fencing token of the current acquisition (fetched once).

        :raises: LockLost if the lock is lost or not held;
                 FencingTokenUnavailable if the backend has none
        """
        self.check()
        if self._token is None:
            try:
                self._token = self._coordinator.backend.token(self.tooz_lock)
            except exception.LockLost as exc:
                self.mark_lost(exc.kwargs.get('reason', str(exc)))
                raise
        return self._token

    def check(self):
        """Raise LockLost unless the lock is held and not known lost."""
        if self.lost:
            raise exception.LockLost(name=self.name, reason=self.lost_reason)
        if not self.acquired:
            raise exception.LockLost(name=self.name, reason='not acquired')

    def mark_lost(self, reason):
        """Record that the lock is gone; log, flag and call back once."""
        if self.lost or not self.acquired:
            return
        self.lost = True
        self.lost_reason = reason
        LOG.error('Distributed lock %(name)s was lost while held: '
                  '%(reason)s. Work done under it from now on is '
                  'unprotected.', {'name': self.name, 'reason': reason})
        for callback in self._callbacks + self._coordinator.lost_callbacks:
            try:
                callback(self)
            except Exception:
                # A broken callback must not stop the others or the keeper.
                LOG.exception('Lost-lock callback %s failed', callback)

    def __enter__(self):
        if not self.acquire():
            raise exception.LockAcquireFailed(
                name=self.name, mode='blocking', f_name='the with block')
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.release()

    def __repr__(self):
        return '<Lock %s acquired=%s lost=%s>' % (self.name, self.acquired,
                                                  self.lost)


class Coordinator(object):
    """tooz coordinator with lost-lock detection and fencing tokens.

    :param agent_id: member id suffix (a random uuid by default)
    :param prefix: prepended to the member id and to every lock name
    :param conf: oslo.config object holding ``[coordination]``
    :param backend_url: overrides ``[coordination] backend_url``
    :param on_lock_lost: ``callback(lock)`` for every lost lock
    :param waiter: ``waiter(seconds)`` between connection attempts, which
                   returns True to abandon (tests inject one that never
                   sleeps); by default an interruptible wait
    """

    def __init__(self, agent_id=None, prefix='', conf=None, backend_url=None,
                 on_lock_lost=None, waiter=None):
        self.agent_id = agent_id or str(uuid.uuid4())
        self.prefix = prefix
        self.conf = conf if conf is not None else CONF
        self.backend_url = backend_url
        self.coordinator = None
        self.backend = None
        self.started = False
        self.closed = True
        self.lost_callbacks = [on_lock_lost] if on_lock_lost else []
        # Plain set operations are atomic under the GIL; the keeper thread
        # only ever takes a snapshot (held_locks) or tests membership.
        self._held = set()
        self._releasing = set()
        self.lease_seconds = None
        self.timeout_errors = ()
        self._stopping = threading.Event()
        self._waiter = waiter or self._stopping.wait
        self._keeper = None

    @property
    def url(self):
        return self.backend_url or self.conf.coordination.backend_url

    def _options(self):
        register_opts(self.conf)
        return self.conf.coordination

    def start(self):
        """Connect (retrying with backoff) and start lost-lock detection."""
        if self.started:
            return
        group = self._options()
        member_id = (self.prefix + self.agent_id).encode('ascii')
        backoff = lease_keeper.Backoff(group.initial_reconnect_backoff,
                                       group.max_reconnect_backoff)
        self._stopping.clear()
        self.coordinator = self._connect(member_id, backoff)
        self.backend = fencing.profile_for(self.coordinator)
        self.lease_seconds = self.backend.lease_seconds
        self.timeout_errors = self.backend.timeout_errors
        self._warn_if_unsafe()
        self.closed = False
        self.backend.watch(self._session_lost)
        if self.backend.lease_based:
            self._keeper = lease_keeper.LeaseKeeper(
                self, group.heartbeat, backoff)
            self._keeper.start()
        self.started = True

    def _connect(self, member_id, backoff):
        unreachable = fencing.connection_errors(self.url)
        attempt = 0
        while True:
            attempt += 1
            driver = tooz_coordination.get_coordinator(self.url, member_id)
            try:
                driver.start(start_heart=False)
                return driver
            except unreachable as exc:
                delay = backoff.next()
                LOG.warning('Coordination backend unreachable (attempt '
                            '%(n)d): %(err)s; retrying in %(delay).2fs',
                            {'n': attempt, 'err': exc, 'delay': delay})
                if self._waiter(delay):
                    raise

    def _warn_if_unsafe(self):
        risk = fencing.active_active_risk(self.url, _read_mounts())
        if risk:
            LOG.warning('Coordination backend %(backend)s is not safe for '
                        'active-active: %(risk)s',
                        {'backend': self.backend.name, 'risk': risk})

    def stop(self):
        """Stop detection and disconnect; held locks are released.

        Also interrupts a ``start()`` still waiting for the backend.
        """
        self._stopping.set()
        if not self.started:
            return
        self.closed = True
        if self._keeper is not None:
            self._keeper.stop()
            self._keeper = None
        self.backend.unwatch()
        for lock in self.held_locks():
            _release(lock, 'stop')
        try:
            self.coordinator.stop()
        except Exception as exc:
            # Stopping anyway: a backend that is gone cannot be told.
            LOG.warning('Coordination backend did not acknowledge the '
                        'disconnect: %s', exc)
        finally:
            self.coordinator = None
            self.started = False

    def get_lock(self, name):
        """Return a ``Lock`` for ``name`` (prefixed like cinder's)."""
        if self.coordinator is None or self.closed:
            raise exception.CoordinatorNotStarted(name=name)
        full = self.prefix + name
        return Lock(self, full, self.coordinator.get_lock(full.encode()))

    def remove_lock(self, glob_name):
        """Remove lock files (file backend only, like cinder's)."""
        from cinder import coordination as cinder_coordination
        cleaner = cinder_coordination.Coordinator(prefix=self.prefix)
        cleaner._file_path = cleaner._get_file_path(self.url)
        cleaner.remove_lock(glob_name)

    def held_locks(self):
        return list(self._held)

    def is_held(self, lock):
        return lock in self._held

    def _session_lost(self, reason):
        for lock in self.held_locks() + list(self._releasing):
            lock.mark_lost(reason)


COORDINATOR = Coordinator(prefix='cinder-')


def synchronized_remove(glob_name, coordinator=COORDINATOR):
    coordinator.remove_lock(glob_name)


def _lock_names(f, lock_names, args, kwargs):
    call_args = inspect.getcallargs(f, *args, **kwargs)
    call_args['f_name'] = f.__name__
    return sorted(set(name.format(**call_args) for name in lock_names))


def synchronized(*lock_names, blocking=True, timeout=None,
                 coordinator=None):
    """Run the decorated function holding every named lock.

    Names are format strings over the call's arguments plus ``f_name``
    (``'{volume.id}-{f_name}'``); several names are taken in sorted order,
    so two callers never deadlock on them.  ``blocking=False`` or a
    ``timeout`` (seconds) bounds the wait; if a lock is not acquired the
    locks already taken are released and ``LockAcquireFailed`` is raised:
    the function does not run.  ``coordinator`` defaults to ``COORDINATOR``
    looked up at call time.
    """
    mode = ('blocking' if blocking is True and timeout is None else
            'non-blocking' if blocking is False else
            'timeout %ss' % (timeout if timeout is not None else blocking))

    @decorator.decorator
    def _synchronized(f, *a, **k):
        coord = coordinator or COORDINATOR
        held = []
        try:
            for name in _lock_names(f, lock_names, a, k):
                lock = coord.get_lock(name)
                if not lock.acquire(blocking, timeout):
                    raise exception.LockAcquireFailed(
                        name=lock.name, mode=mode, f_name=f.__name__)
                held.append(lock)
            return f(*a, **k)
        finally:
            for lock in reversed(held):
                _release(lock, f.__name__)

    return _synchronized


def _release(lock, f_name):
    try:
        lock.release()
    except Exception as exc:
        # Like cinder: a failed release must not mask the body's outcome;
        # the lock has already been reported lost by Lock.release.
        LOG.error('Failed to release lock %(name)s after %(f)s: %(err)s',
                  {'name': lock.name, 'f': f_name, 'err': exc})
