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

"""Volume drivers whose backend answers late, for tests, benchmark and demo.

``GatedDriver`` asks a replaceable ``gate`` callable whether its backend is
ready; the unit tests and the benchmark drive that gate from a virtual clock.
``LateBackendDriver`` is what the functional test loads into a real
cinder-volume process: its backend is a TCP listener that the test opens only
after a while, named by ``late_backend_address`` in the backend section.
"""

import socket

from cinder import context
from cinder.db import api as db_api
from cinder.db import migration
from cinder import exception as cinder_exception
from cinder import objects
from cinder import rpc
from cinder.volume import driver
import fixtures
from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslo_log import log as logging
import oslo_messaging.conffixture as messaging_fixture

from cinder_resilience.tests.functional import cinder_service

LOG = logging.getLogger(__name__)
CONF = cfg.CONF
_SCHEMA = []

LATE_BACKEND_OPTS = [
    cfg.StrOpt('late_backend_address',
               default='127.0.0.1:9',
               help='host:port of the TCP listener that stands for the '
                    'storage backend of LateBackendDriver.'),
]


class GatedDriver(driver.VolumeDriver):
    """A volume driver ready when ``gate()`` returns without raising.

    It records what the manager did with it: setup attempts, undone partial
    setups and stats refreshes.
    """

    VERSION = '1.0.0'
    # Several members of a cluster may serve it (cinder refuses a cluster
    # otherwise); the backend state is the gate's.
    SUPPORTS_ACTIVE_ACTIVE = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gate = lambda: None
        self.setup_calls = 0
        self.undo_calls = 0
        self.stats_calls = 0
        self.session_open = False

    def do_setup(self, context):
        self.setup_calls += 1
        self.session_open = True
        self.gate()

    def check_for_setup_error(self):
        """Nothing more to check once the backend answered."""

    def undo_setup(self, context):
        """Hook called by the manager before retrying a failed start."""
        self.undo_calls += 1
        self.session_open = False

    def _update_volume_stats(self):
        self.stats_calls += 1
        backend = self.configuration.safe_get('volume_backend_name')
        self._stats = {
            'volume_backend_name': backend or self.__class__.__name__,
            'vendor_name': 'openstack-resilience',
            'driver_version': self.VERSION,
            'storage_protocol': 'iSCSI',
            'total_capacity_gb': 100,
            'free_capacity_gb': 100,
            'reserved_percentage': 0,
        }

    def create_volume(self, volume):
        """Volumes are not used by these tests."""

    def delete_volume(self, volume):
        """Volumes are not used by these tests."""


class LateBackendDriver(GatedDriver):
    """GatedDriver whose gate is a TCP connection to the backend address."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(LATE_BACKEND_OPTS)
        self.gate = self._connect

    def _connect(self):
        address = self.configuration.late_backend_address
        host, _sep, port = address.rpartition(':')
        try:
            with socket.create_connection((host, int(port)),
                                          timeout=2) as conn:
                greeting = conn.makefile('rb').readline(
                    len(cinder_service.GREETING))
        except OSError as exc:
            raise cinder_exception.VolumeBackendAPIException(
                data='backend %s does not answer: %s' % (address, exc))
        if greeting != cinder_service.GREETING:
            raise cinder_exception.VolumeBackendAPIException(
                data='%s is not the backend (said %r)' % (address, greeting))
        LOG.info('Backend %s answered.', address)


class VirtualClock:
    """Time that moves only when told to; nothing sleeps."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class VirtualRunner:
    """Stands in for the oslo.service looping call on a virtual clock.

    Has the contract of ``cinder_resilience.manager.looping_call_runner``:
    called with ``(step, first_wait, max_wait)``, returns an object with
    ``stop()``. ``run()`` then plays the loop, advancing the clock by each
    wait before calling ``step``.
    """

    def __init__(self, clock):
        self.clock = clock
        self.waits = []
        self.step = None
        self.next_wait = None
        self.max_wait = None
        self.stopped = False

    def __call__(self, step, first_wait, max_wait):
        self.step, self.next_wait, self.max_wait = step, first_wait, max_wait
        return self

    def run(self, max_steps=1000, until=None):
        """Play probes until done, stopped, ``max_steps`` or ``until`` s."""
        while (self.next_wait is not None and not self.stopped and
               len(self.waits) < max_steps and
               (until is None or self.clock() + self.next_wait <= until)):
            self.waits.append(self.next_wait)
            self.clock.advance(self.next_wait)
            self.next_wait = self.step()

    @property
    def done(self):
        return self.next_wait is None

    def stop(self):
        self.stopped = True


class CinderFixture(fixtures.Fixture):
    """In-process cinder: configuration, fake messaging, sqlite in memory.

    Enough to build and start a real VolumeManager (tests, benchmark).
    """

    def _setUp(self):
        self.config = self.useFixture(config_fixture.Config(CONF))
        messaging = messaging_fixture.ConfFixture(CONF)
        messaging.transport_url = 'fake:/'
        self.useFixture(messaging)
        tmp = self.useFixture(fixtures.TempDir()).path
        self.config.config(connection='sqlite://', group='database')
        self.config.config(driver=['noop'],
                           group='oslo_messaging_notifications')
        self.config.config(lock_path=tmp, group='oslo_concurrency')
        self.config.config(state_path=tmp)
        rpc.init(CONF)
        self.addCleanup(rpc.cleanup)
        self._fresh_database()
        self.context = context.get_admin_context()

    def _fresh_database(self):
        engine = db_api.get_engine()
        engine.dispose()
        if not _SCHEMA:
            migration.db_sync()
            with engine.connect() as conn:
                _SCHEMA.append(''.join(conn.connection.iterdump()))
            engine.dispose()
        with engine.connect() as conn:
            conn.connection.executescript(_SCHEMA[0])
        self.addCleanup(engine.dispose)

    def create_service(self, host):
        """The services row cinder's Service creates before init_host."""
        service = objects.Service(self.context, host=host,
                                  binary='cinder-volume',
                                  topic='cinder-volume', report_count=0)
        service.create()
        return service
