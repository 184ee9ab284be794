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

"""The volume driver of the cluster environment.

``ClusterTestDriver`` is cinder's own ``FakeHAReplicatedLoggingVolumeDriver``
(``cinder/tests/fake_driver.py``, active-active) with three additions:

* every create, clone and delete takes ``cluster_test_op_seconds`` (or the
  ``create_seconds`` / ``delete_seconds`` metadata of the volume, on the
  member named by its ``slow_host`` metadata if there is one), and at
  most ``cluster_test_capacity`` of them run at once in one process, so a
  member's throughput is bounded even on eventlet;
* ``do_setup`` fails while the file ``cluster_test_up_flag`` names does not
  exist: the test creates it to bring the backend up late;
* each operation appends ``start`` and ``end`` events (JSON lines, with the
  member's ``host`` and pid) to ``cluster_test_events``, which the tests read
  to see who served what and when.

At setup it also names the redis connections of the process's coordinators
(``CLIENT SETNAME``), so the tests can tell on the redis server which
coordinator wrote each lock key.
"""

import json
import os
import threading
import time

from cinder import exception
from cinder.tests import fake_driver
from oslo_config import cfg
from oslo_log import log as logging

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

CLUSTER_TEST_OPTS = [
    cfg.FloatOpt('cluster_test_op_seconds', default=1.0, min=0.0,
                 help='Seconds each create, clone and delete takes.'),
    cfg.IntOpt('cluster_test_capacity', default=1, min=1,
               help='Operations one process runs at the same time.'),
    cfg.StrOpt('cluster_test_up_flag',
               help='The backend is down while this file does not exist.'),
    cfg.StrOpt('cluster_test_events',
               help='File the driver appends its events to (JSON lines).'),
]

#: Client names the tests look for on the redis server.
OURS_NAME = 'ours'
UPSTREAM_NAME = 'upstream'

_CAPACITY = []
_CAPACITY_GUARD = threading.Lock()


def _semaphore(size):
    with _CAPACITY_GUARD:
        if not _CAPACITY:
            _CAPACITY.append(threading.Semaphore(size))
        return _CAPACITY[0]


def _redis_client(coordinator):
    """The redis-py client behind a coordinator object, or None."""
    tooz_driver = getattr(coordinator, 'coordinator', None)
    return getattr(tooz_driver, '_client', None)


def name_redis_connections(host):
    """Name the redis connections of both coordinators of this process.

    Upstream's first, ours last: when both hold the same connection, it is
    ours. Existing connections are closed so that every connection the pool
    opens from now on sends ``CLIENT SETNAME``. Test instrumentation only:
    it reads tooz's ``_client`` and redis-py's pool lists.
    """
    from cinder import coordination as upstream
    from cinder_resilience import coordination as ours
    for label, coord in ((UPSTREAM_NAME, upstream.COORDINATOR),
                         (OURS_NAME, ours.COORDINATOR)):
        client = _redis_client(coord)
        if client is None:
            continue
        name = '%s-%s' % (label, host.replace(' ', '_'))
        pool = client.connection_pool
        pool.connection_kwargs['client_name'] = name
        # The pool reuses its Connection objects, which keep the name they
        # were built with: rename them too (they reconnect on next use).
        for conn in (list(getattr(pool, '_available_connections', ())) +
                     list(getattr(pool, '_in_use_connections', ()))):
            conn.client_name = name
        pool.disconnect()


class ClusterTestDriver(fake_driver.FakeHAReplicatedLoggingVolumeDriver):
    """cinder's active-active fake driver with time, capacity and events."""

    SUPPORTS_ACTIVE_ACTIVE = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(CLUSTER_TEST_OPTS)
        self.backend_name = (
            self.configuration.safe_get('volume_backend_name') or 'fake')

    def do_setup(self, context):
        flag = self.configuration.cluster_test_up_flag
        if flag and not os.path.exists(flag):
            self._event('setup-failed', None)
            raise exception.VolumeBackendAPIException(
                data='cluster test backend is down (%s missing)' % flag)
        try:
            name_redis_connections(CONF.host)
        except Exception:
            # Only the lock-key test needs the names; it fails by itself
            # when they are missing, so setup goes on.
            LOG.exception('Could not name the redis connections.')
        self._event('setup', None)

    def _event(self, what, op, **fields):
        path = self.configuration.cluster_test_events
        if not path:
            return
        record = dict(fields, event=what, op=op, host=CONF.host,
                      pid=os.getpid(), time=time.time())
        line = (json.dumps(record, sort_keys=True) + '\n').encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)   # one short O_APPEND write: never interleaved
        finally:
            os.close(fd)

    def _seconds(self, volume, key):
        """The volume's ``key`` metadata, else the configured time.

        With ``slow_host`` in the metadata, only that member (``host``
        option) takes the volume's own time: a survivor that redoes the
        operation in a cleanup takes the usual one.
        """
        metadata = getattr(volume, 'metadata', None) or {}
        value = metadata.get(key)
        slow_host = metadata.get('slow_host')
        if value is None or slow_host not in (None, CONF.host):
            return self.configuration.cluster_test_op_seconds
        return float(value)

    def _operation(self, op, volume, seconds, **fields):
        with _semaphore(self.configuration.cluster_test_capacity):
            self._event('start', op, volume=volume.id, **fields)
            time.sleep(seconds)
            self._event('end', op, volume=volume.id, **fields)

    def create_volume(self, volume):
        self._operation('create', volume,
                        self._seconds(volume, 'create_seconds'))
        return super().create_volume(volume)

    def create_cloned_volume(self, volume, src_vref):
        self._operation('clone', volume,
                        self._seconds(volume, 'create_seconds'),
                        source=src_vref.id)
        return super().create_cloned_volume(volume, src_vref)

    def delete_volume(self, volume):
        self._operation('delete', volume,
                        self._seconds(volume, 'delete_seconds'))
        return super().delete_volume(volume)

    def _update_volume_stats(self):
        super()._update_volume_stats()
        # Real capacity numbers, so the scheduler's filters and weighers
        # treat the cluster like any backend.
        self._stats['pools'][0].update(total_capacity_gb=100000,
                                       free_capacity_gb=100000,
                                       reserved_percentage=0)
