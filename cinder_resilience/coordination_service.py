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

"""Tie the coordinator to the life of a cinder-volume service.

cinder's ``Service`` starts ``cinder.coordination.COORDINATOR`` before the
manager's ``init_host`` and stops it in ``Service.stop()``; managers get no
stop call of their own.  ``CoordinationMixin`` therefore starts our
coordinator first thing in ``init_host`` (before the driver, which may take
locks) and follows cinder's coordinator when it stops (the
``FOLLOW_CINDER_STOP`` patch of :mod:`cinder_resilience.host_patches`, which
removes itself when it fires or when ours stops first).
"""

from oslo_config import cfg
from oslo_log import log as logging

from cinder_resilience import coordination
from cinder_resilience import external_locks
from cinder_resilience import host_patches

LOG = logging.getLogger(__name__)
CONF = cfg.CONF


class CoordinationMixin(object):
    """Start/stop ``coordination.COORDINATOR`` with the volume service.

    Compose it first, before cinder's VolumeManager.  ``coordinator`` may
    be set to another ``Coordinator`` (tests, the demo).
    """

    coordinator = None

    def init_host(self, *args, **kwargs):
        self.start_coordination()
        return super().init_host(*args, **kwargs)

    def _coordinator(self):
        return self.coordinator or coordination.COORDINATOR

    def start_coordination(self):
        """Start the coordinator and, if configured, route external locks."""
        coordination.register_opts(CONF)
        coord = self._coordinator()
        coord.start()
        if CONF.coordination.route_external_locks:
            external_locks.install(coord)
        host_patches.FOLLOW_CINDER_STOP.install(self.stop_coordination)
        LOG.info('Distributed locks served by the %s coordination backend',
                 coord.backend.name)

    def stop_coordination(self):
        """Give external locks back to files and stop the coordinator."""
        host_patches.FOLLOW_CINDER_STOP.uninstall()
        external_locks.uninstall()
        self._coordinator().stop()
