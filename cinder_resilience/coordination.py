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
* backends unsafe for active-active are warned about at start;
* ``start()`` fails fast, like upstream's, when the backend is unreachable;
  once started, a lock requested while the backend is unreachable waits
  (with jittered backoff) only as long as its ``blocking``/``timeout``
  allow, then is not acquired: its body never runs unlocked;
* the lease of a lock whose holder died is ``heartbeat`` x
  ``lease_heartbeats`` seconds (see ``backends.lease_url``).

Lock names use the same ``cinder-`` prefix and tooz naming as
``cinder.coordination``, so both exclude each other on one backend.  With
the plugin enabled, ``cinder.coordination.COORDINATOR`` itself is served by
``COORDINATOR`` here (see ``coordination_service``).
"""

import inspect
import os
import threading
import time
import uuid

import decorator
from oslo_config import cfg
from oslo_log import log as logging
from tooz import coordination as tooz_coordination

from cinder_resilience import backend_internals
from cinder_resilience import backends
from cinder_resilience import exception
from cinder_resilience import lease_keeper
from cinder_resilience import locks
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


def _clustered(conf):
    """False only when cinder-volume's ``cluster`` option is known unset."""
    try:
        return bool(conf.cluster)
    except cfg.NoSuchOptError:
        return True


def _read_mounts():
    try:
        with open('/proc/mounts') as f:
            return f.read()
    except OSError:
        return ''


class Coordinator(object):
    """tooz coordinator with lost-lock detection and fencing tokens.

    :param agent_id: member id suffix (a random uuid by default)
    :param prefix: prepended to the member id and to every lock name
    :param conf: oslo.config object holding ``[coordination]``
    :param backend_url: overrides ``[coordination] backend_url``
    :param on_lock_lost: ``callback(lock)`` for every lost lock
    :param waiter: ``waiter(seconds)`` between two attempts to acquire a
                   lock while the backend is unreachable, which returns True
                   to abandon (tests inject one that never sleeps); by
                   default a wait that ``stop()`` interrupts
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
        self.unreachable_errors = ()
        self._stopping = threading.Event()
        self._waiter = waiter or self._stopping.wait
        self._keeper = None

    @property
    def url(self):
        return self.backend_url or self.conf.coordination.backend_url

    def _options(self):
        register_opts(self.conf)
        return self.conf.coordination

    @property
    def effective_url(self):
        """``url`` with our lease option set (see backends.lease_url)."""
        group = self._options()
        lease = backends.lease_seconds_for(group.heartbeat,
                                           group.lease_heartbeats)
        return backends.lease_url(self.url, lease)[0]

    def start(self):
        """Connect and start lost-lock detection; fail fast like upstream.

        :raises: tooz.coordination.ToozConnectionError when the backend
                 cannot be reached (nothing is retried: the service fails
                 to start, as it does with cinder's own coordinator)
        """
        if self.started:
            return
        member_id = (self.prefix + self.agent_id).encode('ascii')
        self._stopping.clear()
        self.coordinator = self._connect(member_id)
        self.backend = backends.profile_for(self.coordinator)
        self.lease_seconds = self.backend.lease_seconds
        self.timeout_errors = self.backend.timeout_errors
        self.unreachable_errors = self.backend.connection_errors
        self._warn_if_unsafe()
        self.closed = False
        self.backend.watch(self._session_lost)
        if self.backend.lease_based:
            self._start_keeper()
        self.started = True
        _register_fork_hook()

    def _connect(self, member_id):
        url = self.effective_url
        driver = tooz_coordination.get_coordinator(url, member_id)
        try:
            with backend_internals.translated(backends.raw_errors_for(url)):
                driver.start(start_heart=False)
        except tooz_coordination.ToozConnectionError as exc:
            LOG.error('Coordination backend %(backend)s unreachable at '
                      'start: %(err)s', {'backend': _scheme(url),
                                         'err': exc})
            self.coordinator = None
            raise
        return driver

    def new_backoff(self):
        group = self._options()
        return lease_keeper.Backoff(group.initial_reconnect_backoff,
                                    group.max_reconnect_backoff)

    def wait_for_backend(self, name, error, deadline, backoff):
        """Wait before retrying ``name``; the next acquire argument or None.

        :param deadline: monotonic deadline, None to wait for ever, 0 for a
                         non-blocking acquire
        :returns: None when no time is left (the acquire fails)
        :raises: CoordinatorNotStarted when the coordinator stops meanwhile
        """
        delay = backoff.next()
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                LOG.warning('Lock %(name)s not acquired: the coordination '
                            'backend is unreachable (%(err)s)',
                            {'name': name, 'err': error})
                return None
            delay = min(delay, left)
        LOG.warning('Coordination backend unreachable while acquiring '
                    '%(name)s (%(err)s); retrying in %(delay).2fs',
                    {'name': name, 'err': error, 'delay': delay})
        if self._waiter(delay) or self.closed:
            raise exception.CoordinatorNotStarted(name=name)
        if deadline is None:
            return True
        return max(0.0, deadline - time.monotonic()) or False

    def _warn_if_unsafe(self):
        if not self.backend.across_hosts and not _clustered(self.conf):
            # Without cinder's ``cluster`` option no other host shares the
            # backends: locks of this host are all a single node needs.
            return
        risk = self.backend.risk(self.url, _read_mounts())
        if risk:
            LOG.warning('Coordination backend %(backend)s is not safe for '
                        'active-active: %(risk)s',
                        {'backend': self.backend.name, 'risk': risk})

    def stop(self):
        """Stop detection and disconnect; held locks are released.

        Also interrupts an acquire waiting for an unreachable backend.
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
        return self.lock_for(self.prefix + name)

    def lock_for(self, full_name, lock_class=None):
        """Return a ``lock_class`` (``Lock``) for an already prefixed name.

        The backend key is exactly the one a stock cinder Coordinator uses
        for the same name.
        """
        if self.coordinator is None or self.closed:
            raise exception.CoordinatorNotStarted(name=full_name)
        tooz_lock = self.coordinator.get_lock(full_name.encode('ascii'))
        return (lock_class or locks.Lock)(self, full_name, tooz_lock)

    def after_fork_in_child(self):
        """Restart the lease keeper in a forked child.

        Threads do not survive fork; locks held by the parent are not the
        child's.
        """
        self._held.clear()
        if self._keeper is not None:
            self._start_keeper()

    def _start_keeper(self):
        self._keeper = lease_keeper.LeaseKeeper(
            self, self._options().heartbeat, self.new_backoff())
        self._keeper.start()

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


Lock = locks.Lock
blocking_argument = locks.blocking_argument

COORDINATOR = Coordinator(prefix='cinder-')
_FORK_HOOK = []


def _register_fork_hook():
    """cinder-api starts its coordinator before forking its workers."""
    if not _FORK_HOOK:
        _FORK_HOOK.append(True)
        os.register_at_fork(after_in_child=_after_fork)


def _after_fork():
    if COORDINATOR.started:
        COORDINATOR.after_fork_in_child()


def _scheme(url):
    """The part of a backend URL safe to log (backend_url is secret)."""
    return url.split('://', 1)[0]


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
