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

"""Serve cinder's own coordinator from ours, for the life of a service.

With the plugin enabled (``enable()``: the volume manager does it when it
is created, the ``cinder-*-resilient`` wrappers before cinder's ``main``),
the ``CINDER_COORDINATOR`` patch of :mod:`cinder_resilience.host_patches`
makes ``cinder.coordination.COORDINATOR.start()`` connect through a
``CinderDriver``: a tooz-driver look-alike backed by
``cinder_resilience.coordination.COORDINATOR``.  One tooz connection then
serves every lock of the process, with our lease keeping, lost-lock
detection, fencing tokens and bounded waits:

* ``COORDINATOR.get_lock(name)`` (cinder's code) asks the driver for the
  very key a stock cinder asks tooz for, and gets a ``CinderLock``, whose
  failed non-blocking or timed acquire raises ``LockAcquireFailed`` (cinder's
  ``synchronized`` ignores ``acquire()``'s result, so a plain False would
  run the body unlocked);
* ``COORDINATOR.stop()`` (``Service.stop()``) stops ours, gives external
  locks back to files, undoes the patch and calls the ``on_stop`` callbacks
  (the manager's ``stop_coordination``).  ``reset()`` (an oslo.service
  restart) enables it again.
"""

from oslo_config import cfg
from oslo_log import log as logging
import tooz

from cinder_resilience import coordination
from cinder_resilience import exception
from cinder_resilience import external_locks
from cinder_resilience import host_patches
from cinder_resilience import locks

LOG = logging.getLogger(__name__)
CONF = cfg.CONF


class CinderLock(locks.Lock):
    """Our lock with tooz's ``acquire(blocking, shared, timeout)``."""

    def acquire(self, blocking=True, shared=False, timeout=None):
        """Take the lock or raise LockAcquireFailed; never False."""
        if shared:
            raise tooz.NotImplemented('shared locks')
        if not super().acquire(blocking, timeout):
            mode = ('non-blocking' if blocking is False else
                    'timeout %ss' % (timeout if timeout is not None
                                     else blocking))
            raise exception.LockAcquireFailed(name=self.name, mode=mode,
                                              f_name='the caller')
        return True


class CinderDriver(object):
    """The tooz driver ``cinder.coordination.COORDINATOR`` gets.

    :param coordinator: our ``coordination.Coordinator``
    :param backend_url: what cinder asked for (``[coordination]
                        backend_url``)
    :param member_id: cinder's member id (prefix + agent id)
    :param on_stop: callables run after cinder's coordinator stopped
    """

    def __init__(self, coordinator, backend_url, member_id, on_stop=()):
        self.coordinator = coordinator
        self.backend_url = backend_url
        self.member_id = member_id
        self.on_stop = list(on_stop)
        self.stopped = False

    def start(self, start_heart=False):
        """Start ours (ours beats on its own, start_heart is not needed)."""
        coord = self.coordinator
        if coord.started and coord.url != self.backend_url:
            coord.stop()
        coord.backend_url = self.backend_url
        agent = self.member_id.decode('ascii')
        if coord.prefix and agent.startswith(coord.prefix):
            coord.agent_id = agent[len(coord.prefix):]
        coord.start()
        if CONF.coordination.route_external_locks:
            external_locks.install(coord)
        LOG.info('cinder_resilience serves every lock of cinder.coordination '
                 'in this process from one %s coordination connection',
                 coord.backend.name)

    def stop(self):
        self.stopped = True
        try:
            self.coordinator.stop()
        finally:
            external_locks.uninstall()
            host_patches.CINDER_COORDINATOR.uninstall()
            for callback in self.on_stop:
                callback()

    def get_lock(self, name):
        full = name.decode('ascii') if isinstance(name, bytes) else name
        return self.coordinator.lock_for(full, CinderLock)


def _cinder_coordinator():
    from cinder import coordination as cinder_coordination
    return cinder_coordination.COORDINATOR


def routed():
    """True when cinder's coordinator is started and served by ours."""
    driver = getattr(_cinder_coordinator(), 'coordinator', None)
    return isinstance(driver, CinderDriver) and not driver.stopped


def enable(coordinator=None, on_stop=None):
    """Serve cinder's coordinator from ``coordinator`` (ours by default).

    If cinder's coordinator is already connected on its own, it is
    restarted through ours, so that one connection remains.
    """
    coordination.register_opts(CONF)
    coord = coordinator or coordination.COORDINATOR
    callbacks = [on_stop] if on_stop else []

    def make_driver(backend_url, member_id):
        return CinderDriver(coord, backend_url, member_id, callbacks)

    host_patches.CINDER_COORDINATOR.install(make_driver)
    upstream = _cinder_coordinator()
    if upstream.started and upstream.coordinator is not None and \
            not routed():
        LOG.info('Restarting cinder\'s coordinator through '
                 'cinder_resilience')
        upstream.stop()
        upstream.start()


def disable(coordinator=None):
    """Stop serving cinder's coordinator; stop ours; undo every patch."""
    if routed():
        _cinder_coordinator().stop()   # ends in CinderDriver.stop
    host_patches.CINDER_COORDINATOR.uninstall()
    external_locks.uninstall()
    (coordinator or coordination.COORDINATOR).stop()


class CoordinationMixin(object):
    """Serve cinder's coordinator from ours for the volume service.

    Compose it first, before cinder's VolumeManager.  ``coordinator`` may
    be set to another ``Coordinator`` before ``__init__`` (tests, the
    demo).  ``stop_coordination`` is called once cinder's coordinator
    stopped (``Service.stop()``); subclasses extend it.
    """

    coordinator = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.enable_coordination()

    def _coordinator(self):
        return self.coordinator or coordination.COORDINATOR

    def enable_coordination(self):
        enable(self._coordinator(), on_stop=self.stop_coordination)

    def reset(self):
        super().reset()
        self.enable_coordination()

    def init_host(self, *args, **kwargs):
        if routed():
            LOG.info('Distributed locks served by the %s coordination '
                     'backend', self._coordinator().backend.name)
        else:
            LOG.warning('cinder\'s coordinator was not started through '
                        'cinder_resilience: cinder\'s locks are not served '
                        'by it in this process')
        return super().init_host(*args, **kwargs)

    def stop_coordination(self):
        """Stop cinder's coordinator and ours if still running."""
        disable(self._coordinator())
