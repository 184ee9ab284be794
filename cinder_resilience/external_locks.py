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

"""Serve cinder's external oslo.concurrency locks from the tooz backend.

``cinder.utils.synchronized(name, external=True)`` takes a lock file in
``lock_path``: it excludes processes of one host only.  oslo.concurrency
builds that file lock through ``lockutils.external_lock`` at call time, so
replacing that one function (the ``EXTERNAL_LOCKS`` patch of
:mod:`cinder_resilience.host_patches`) routes every external lock with
cinder's ``cinder-`` prefix (and only those) to a distributed lock, including
the functions cinder decorated at import time.  Other prefixes (os-brick's,
for instance) keep their lock files.
"""

from oslo_log import log as logging

from cinder_resilience import exception
from cinder_resilience import host_patches

LOG = logging.getLogger(__name__)

#: cinder.utils.synchronized is ``synchronized_with_prefix('cinder-')``.
CINDER_PREFIX = 'cinder-'


class ExternalLock(object):
    """The part of fasteners' InterProcessLock that lockutils.lock uses."""

    def __init__(self, lock):
        self.lock = lock

    def acquire(self, blocking=True, delay=None, max_delay=None,
                timeout=None):
        return self.lock.acquire(blocking, timeout)

    def release(self):
        self.lock.release()

    def __enter__(self):
        if not self.acquire():
            raise exception.LockAcquireFailed(
                name=self.lock.name, mode='blocking',
                f_name='the with block')
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.release()


def installed():
    """True when external locks are currently routed."""
    return host_patches.EXTERNAL_LOCKS.installed


def install(coordinator, prefix=CINDER_PREFIX):
    """Route external locks with ``prefix`` through ``coordinator``.

    The coordinator's own prefix is used for the tooz name, so a lock file
    ``cinder-foo`` becomes the distributed lock ``cinder-foo`` when the
    coordinator's prefix is ``cinder-``.  See
    :class:`cinder_resilience.host_patches.ExternalLockRouting`.
    """
    host_patches.EXTERNAL_LOCKS.install(coordinator, prefix)
    LOG.info('External locks with prefix %(prefix)s are served by the '
             '%(url)s coordination backend',
             {'prefix': prefix, 'url': coordinator.backend.name
              if coordinator.backend else 'configured'})


def uninstall():
    """Give external locks back to lock files."""
    host_patches.EXTERNAL_LOCKS.uninstall()
