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

"""What a volume service's row in cinder's ``services`` table says.

cinder decides that a service is up from two timestamps of its row:
``Service.is_up`` and a cluster's ``num_down_hosts`` read ``updated_at``;
the SQL filter ``is_up`` of the service list also accepts a recent
``created_at``. The row is created or updated when the service starts, so
a member whose driver fails would count as up for ``service_down_time``.
"""

import datetime

from cinder import context
from cinder.db import api as db
from cinder import objects
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import timeutils

LOG = logging.getLogger(__name__)
CONF = cfg.CONF


def report_down(service_id):
    """Show the service down now, not only after service_down_time.

    Both timestamps are moved just past the window (``created_at`` only
    when it is inside it); the next heartbeat brings the service up.
    """
    if service_id is None:
        return
    ctxt = context.get_admin_context()
    stamp = timeutils.utcnow() - datetime.timedelta(
        seconds=CONF.service_down_time + 1)
    try:
        service = objects.Service.get_by_id(ctxt, service_id)
        values = {'updated_at': stamp}
        created = service.created_at
        if created and created.replace(tzinfo=None) > stamp:
            values['created_at'] = stamp
        db.service_update(ctxt, service_id, values)
    except Exception:
        # Without it the service still sends no heartbeat and shows down
        # after service_down_time, as with cinder's manager.
        LOG.exception('Could not mark service %s down.', service_id)
        return
    LOG.info('Service %s reports down until its volume driver initializes.',
             service_id)


def heartbeat(service_id):
    """Report the service up now rather than at the next report tick."""
    if service_id is None:
        return
    try:
        service = objects.Service.get_by_id(context.get_admin_context(),
                                            service_id)
        service.report_count += 1
        service.save()
    except Exception:
        # The service's own report_state timer sends the next heartbeat
        # anyway; this one only shortens the time shown as down.
        LOG.exception('Could not send the heartbeat of service %s.',
                      service_id)
