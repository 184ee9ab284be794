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

"""The distributed lock handed out by ``coordination.Coordinator``."""

import time

from oslo_log import log as logging

from cinder_resilience import exception

LOG = logging.getLogger(__name__)


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


def deadline_of(argument):
    """Monotonic deadline of a tooz acquire argument (see blocking_argument).

    None means "wait for ever", 0 "do not wait".
    """
    if argument is True:
        return None
    if argument is False:
        return 0
    return time.monotonic() + argument


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
        """Take the lock; True if taken, False if not (never raises so).

        While the backend cannot be reached the attempt is repeated with
        jittered backoff, as long as ``blocking``/``timeout`` allow.
        """
        coord = self._coordinator
        if coord.closed:
            raise exception.CoordinatorNotStarted(name=self.name)
        if timeout is None and blocking.__class__ is bool:
            argument = blocking   # the common case, kept cheap
        else:
            argument = blocking_argument(blocking, timeout)
        deadline = deadline_of(argument)
        backoff = None
        while True:
            try:
                return self._acquire_once(argument)
            except coord.unreachable_errors as exc:
                backoff = backoff or coord.new_backoff()
                argument = coord.wait_for_backend(self.name, exc, deadline,
                                                  backoff)
                if argument is None:
                    return False

    def _acquire_once(self, argument):
        coord = self._coordinator
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
