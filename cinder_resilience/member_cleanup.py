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

"""Finish the work of a dead cluster member, as cinder's cleanup API would.

cinder records each cleanable operation (create, delete, clone ...) of a
cinder-volume service in its ``workers`` table. A service cleans its own
rows when it starts again (``CleanableManager.init_host``); the rows of a
member that never comes back wait for an operator to call the workers
cleanup API, which has a live member of the cluster run ``do_cleanup`` for
the dead one.

:func:`clean_dead_members` does that without the operator: every member of
a cluster runs it periodically, one at a time through a non-blocking lock
per cluster taken from our coordinator. For each member whose heartbeat is
older than ``service_down_time`` and that still has rows, it runs cinder's
own ``do_cleanup`` with ``until`` set before the member was last seen down,
so work a member starts after coming back is never touched. cinder claims
each row atomically (``worker_claim_for_cleanup``), so a member cleaning
itself at restart and a survivor never both clean one operation, and a
cleaned row is gone: nothing is cleaned twice.
"""

from cinder import context
from cinder.db import api as db
from cinder import objects
from oslo_log import log as logging
from oslo_utils import timeutils

from cinder_resilience import exception

LOG = logging.getLogger(__name__)

#: Lock name per cluster; with the coordinator's ``cinder-`` prefix.
LOCK_NAME = 'resilience-dead-member-cleanup-%s'
VOLUME_BINARY = 'cinder-volume'


def down_members(ctxt, cluster_name, own_service_id):
    """Members of ``cluster_name`` other than us that send no heartbeat.

    Both of cinder's notions of "down" must agree: the SQL filter (by
    ``created_at`` or ``updated_at``) and ``Service.is_up`` (by
    ``updated_at``), so a member that still heartbeats is never returned.
    """
    services = objects.ServiceList.get_all(
        ctxt, {'cluster_name': cluster_name, 'binary': VOLUME_BINARY,
               'is_up': False})
    return [s for s in services if s.id != own_service_id and not s.is_up]


def pending_work(ctxt, service_id, until):
    """The workers rows of ``service_id`` last updated before ``until``."""
    return db.worker_get_all(ctxt, service_id=service_id, until=until)


def still_down(ctxt, service_id):
    """Read the member's row again; True only if it is still down."""
    try:
        service = objects.Service.get_by_id(ctxt, service_id)
    except Exception:
        # Deleted meanwhile (cinder-manage service remove): its rows are
        # still there and still ours to finish.
        LOG.debug('Service %s is gone; cleaning its work anyway.', service_id)
        return True
    return not service.is_up


def clean_member(manager, ctxt, service):
    """Run cinder's do_cleanup for one down member; returns rows found."""
    until = timeutils.utcnow()
    rows = pending_work(ctxt, service.id, until)
    if not rows or not still_down(ctxt, service.id):
        return 0
    LOG.warning('Cluster member %(host)s (service %(id)s) has sent no '
                'heartbeat since %(seen)s; running cinder\'s workers '
                'cleanup for its %(n)d unfinished operations.',
                {'host': service.host, 'id': service.id,
                 'seen': service.updated_at, 'n': len(rows)})
    manager.do_cleanup(ctxt, objects.CleanupRequest(
        ctxt, service_id=service.id, until=until))
    return len(rows)


def clean_dead_members(manager, coordinator, ctxt):
    """One round: if elected, clean every down member of our cluster.

    :param manager: a started cinder VolumeManager (``cluster`` and
        ``service_id`` set, driver initialized)
    :param coordinator: a started ``cinder_resilience.coordination``
        Coordinator
    :returns: member service ids cleaned, or None when not elected
    """
    lock = coordinator.get_lock(LOCK_NAME % manager.cluster)
    try:
        if not lock.acquire(blocking=False):
            LOG.debug('Another member of %s runs the dead-member cleanup.',
                      manager.cluster)
            return None
    except exception.CoordinationError as exc:
        LOG.warning('Dead-member cleanup of cluster %(cluster)s skipped: '
                    '%(err)s', {'cluster': manager.cluster, 'err': exc})
        return None
    try:
        cleaned = []
        for service in down_members(ctxt, manager.cluster,
                                    manager.service_id):
            if clean_member(manager, ctxt, service):
                cleaned.append(service.id)
        return cleaned
    finally:
        lock.release()


def start(manager, coordinator, runner, interval, rand):
    """Run :func:`clean_dead_members` every ``interval`` s with ``runner``.

    :param runner: ``runner(step, first_wait, max_wait)`` as
        ``cinder_resilience.manager.looping_call_runner``
    :param rand: uniform in [0, 1): spreads the first round of members
        started together
    :returns: the loop (has ``stop()``)
    """
    ctxt = context.get_admin_context()

    def step():
        try:
            clean_dead_members(manager, coordinator, ctxt)
        except Exception:
            # The next round tries again; a loop that died would leave dead
            # members' work stuck for good.
            LOG.exception('Dead-member cleanup of cluster %s failed.',
                          manager.cluster)
        return float(interval)

    LOG.info('Dead members of cluster %(cluster)s are cleaned up every '
             '%(interval)d s (dead_member_cleanup).',
             {'cluster': manager.cluster, 'interval': interval})
    return runner(step, interval * (0.5 + rand), interval)
