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

"""Exceptions of cinder_resilience: one base class for the whole package."""

from tooz import coordination as tooz_coordination


class CinderResilienceException(Exception):
    """Base class: ``msg_fmt`` is filled with the keyword arguments."""

    msg_fmt = 'An unknown cinder_resilience error occurred.'

    def __init__(self, message=None, **kwargs):
        self.kwargs = kwargs
        if message is None:
            message = self.msg_fmt % kwargs
        super().__init__(message)


class InvalidReinitOption(CinderResilienceException):
    """A re-initialization option holds a value the service cannot use."""

    msg_fmt = 'Invalid value for option [%(group)s] %(option)s: %(reason)s'


class CoordinationError(CinderResilienceException):
    """Base of the distributed lock errors (cinder_resilience.coordination)."""

    msg_fmt = 'Coordination failed: %(reason)s'


class CoordinatorNotStarted(CoordinationError):
    """A lock was requested before the coordinator was started."""

    msg_fmt = ('The coordinator is not started: cannot use lock %(name)s. '
               'Start it first (the volume manager does so at init_host).')


class LockAcquireFailed(CoordinationError,
                        tooz_coordination.LockAcquireFailed):
    """A non-blocking or timed acquire did not get the lock.

    The protected code did not run. It is also a
    ``tooz.coordination.LockAcquireFailed``, so callers written for
    ``cinder.coordination`` that catch tooz's exception keep working.
    """

    msg_fmt = ('Could not acquire lock %(name)s (%(mode)s); %(f_name)s was '
               'not run')


class LockLost(CoordinationError):
    """The backend no longer holds a lock for the holder that acquired it."""

    msg_fmt = 'Lock %(name)s was lost: %(reason)s'


class FencingTokenUnavailable(CoordinationError):
    """The backend cannot give a fencing token for a lock."""

    msg_fmt = ('The %(backend)s coordination backend gives no fencing token '
               '(lock %(name)s)')


class HostPatchMismatch(CinderResilienceException):
    """An upstream object a host patch relies on changed or disappeared."""

    msg_fmt = ('Cannot patch %(name)s: %(reason)s. This cinder/oslo version '
               'is not supported by cinder_resilience.host_patches.')


class BackendInternalsChanged(CoordinationError):
    """A private attribute of tooz or of its client library disappeared."""

    msg_fmt = ('%(owner)s has no attribute %(attribute)s any more: this '
               'tooz or client library version is not supported by '
               'cinder_resilience.backends.')
