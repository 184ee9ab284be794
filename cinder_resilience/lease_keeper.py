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

"""Keep the leases of held locks alive and notice when one is gone.

Only backends whose locks expire unless refreshed (redis, etcd, memcached)
get a keeper thread; file and zookeeper locks need none.  Each beat refreshes
every held lock.  A refresh that says "not yours" marks the lock lost at
once; a refresh that cannot reach the backend leaves it held until its lease
would have run out counted from the last successful refresh, then marks it
lost.  While the backend is unreachable beats back off with jitter between
``initial_reconnect_backoff`` and ``max_reconnect_backoff``, never past the
nearest lease deadline.
"""

import random
import threading
import time

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

#: Shortest wait between two beats, whatever the deadlines say.
MIN_DELAY = 0.01


class Backoff(object):
    """Jittered delays between two bounds ("decorrelated jitter").

    Each delay is drawn between ``initial`` and three times the previous
    one, and capped at ``maximum``: callers that fail together spread out.
    """

    def __init__(self, initial, maximum, uniform=random.uniform):
        self.initial = float(initial)
        self.maximum = max(float(maximum), self.initial)
        self._uniform = uniform
        self._last = None

    def next(self):
        high = self.initial * 3 if self._last is None else self._last * 3
        self._last = min(self.maximum, self._uniform(self.initial, high))
        return self._last

    def reset(self):
        self._last = None


def beat_interval(heartbeat, lease_seconds):
    """Seconds between beats: the option, but at most a third of a lease."""
    if lease_seconds:
        return max(MIN_DELAY, min(heartbeat, lease_seconds / 3.0))
    return heartbeat


class LeaseKeeper(object):
    """Background refresher of a coordinator's held locks.

    :param coordinator: a started ``cinder_resilience.coordination``
                        Coordinator (gives ``held_locks()`` and ``backend``)
    :param heartbeat: wanted seconds between beats
    :param backoff: a ``Backoff`` used while the backend fails
    :param clock: monotonic clock (tests inject one)
    """

    def __init__(self, coordinator, heartbeat, backoff, clock=time.monotonic):
        self._coordinator = coordinator
        self._backoff = backoff
        self._clock = clock
        self._stop = threading.Event()
        self._thread = None
        self.failing = False
        self.interval = beat_interval(heartbeat,
                                      coordinator.backend.lease_seconds)

    def start(self):
        self._thread = threading.Thread(target=self._run,
                                        name='coordination-lease-keeper',
                                        daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self):
        delay = self.interval
        while not self._stop.wait(delay):
            try:
                delay = self.beat()
            except Exception:
                # The keeper must outlive any surprise, or every held lock
                # would silently stop being refreshed.
                LOG.exception('Lease keeper beat failed')
                delay = self.interval

    def beat(self):
        """Refresh every held lock once; return seconds until the next."""
        backend = self._coordinator.backend
        lease = backend.lease_seconds
        last_error = None
        locks = [lock for lock in self._coordinator.held_locks()
                 if not lock.lost]
        for lock in locks:
            error = self._refresh(backend, lock, lease)
            last_error = error or last_error
        return self._next_delay(locks, last_error)

    def _refresh(self, backend, lock, lease):
        started = self._clock()
        try:
            held = backend.refresh(lock.tooz_lock)
        except Exception as exc:
            # Any failure to ask (connection refused, timeout, odd reply)
            # means "cannot say": the lease deadline decides.
            if lock.deadline is not None and self._clock() >= lock.deadline:
                self._lost(lock, 'no lease refresh succeeded for %.1fs '
                           '(last error: %s)' % (lease or 0, _describe(exc)))
            return exc
        if held:
            if lease:
                lock.deadline = started + lease
        else:
            self._lost(lock, 'the backend no longer holds it for us '
                       '(lease expired or another owner)')
        return None

    def _lost(self, lock, reason):
        if self._coordinator.is_held(lock):
            lock.mark_lost(reason)

    def _next_delay(self, locks, error):
        if error is not None:
            delay = self._backoff.next()
            if not self.failing:
                LOG.warning('Cannot refresh distributed locks (%(err)s); '
                            'retrying with backoff, a lock whose lease runs '
                            'out meanwhile is reported lost',
                            {'err': _describe(error)})
            self.failing = True
        else:
            if self.failing:
                LOG.info('Distributed lock refresh works again')
            self._backoff.reset()
            self.failing = False
            delay = self.interval
        deadlines = [lock.deadline for lock in locks
                     if lock.deadline is not None and not lock.lost]
        if deadlines:
            delay = min(delay, max(min(deadlines) - self._clock(), MIN_DELAY))
        return max(delay, MIN_DELAY)


def _describe(exc):
    text = str(exc)
    return '%s: %s' % (type(exc).__name__, text) if text else repr(exc)
