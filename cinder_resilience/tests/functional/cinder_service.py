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

"""Start a real cinder-volume process for the functional tests and demo.

The process is cinder's own console script from the venv that runs the
tests, with a sqlite database prepared by ``cinder-manage db sync``,
oslo.messaging's in-process fake transport and one backend served by
``late_backend.LateBackendDriver``. What it does is read back from its log
file and from its ``services`` table.
"""

import contextlib
import datetime
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

from cinder_resilience.tests.functional import servers
from cinder_resilience.tests import waiting

OURS = 'cinder_resilience.manager.VolumeManager'
UPSTREAM = 'cinder.volume.manager.VolumeManager'
DRIVER = 'cinder_resilience.tests.functional.late_backend.LateBackendDriver'
BACKEND = 'late'
READY_LINE = 'Driver initialization completed successfully.'
CAPABILITIES_LINE = 'Notifying Schedulers of capabilities'
# cinder's manager, after its counted attempts, at init_host_with_rpc:
GIVE_UP_LINE = 'Cannot complete RPC initialization'
# ours, after its counted attempts:
PROBING_LINE = 'probing in the background'
DEFERRED_LINE = 'deferred until the driver initializes'
RPC_READY_LINE = 'Driver post RPC initialization completed successfully.'
# ours, for each RPC server Service.start builds while the driver is down:
HELD_LINE = 'is held until the volume driver initializes'
# ours, at the first failed attempt:
DOWN_LINE = 'reports down until its volume driver initializes'
SERVICE_DOWN_TIME = 10

# cinder.manager at DEBUG shows the capabilities being sent to schedulers.
_LOG_LEVELS = ('cinder.manager=DEBUG', 'amqp=WARN', 'sqlalchemy=WARN',
               'oslo_messaging=INFO', 'stevedore=WARN', 'urllib3=WARN',
               'oslo_policy=INFO', 'oslo.privsep.daemon=INFO')

_CONF = """\
[DEFAULT]
host = {name}
state_path = {path}
transport_url = fake:/
enabled_backends = {backend}
volume_manager = {manager}
report_interval = 2
periodic_interval = 5
service_down_time = {down_time}
log_file = {path}/cinder-volume.log
debug = false
default_log_levels = {log_levels}
reinit_driver_probe_interval = {probe_interval}
reinit_driver_jitter = 0.1
{extra}

[database]
connection = sqlite:///{path}/cinder.sqlite

[oslo_concurrency]
lock_path = {path}/locks

[coordination]
backend_url = file://{path}/coordination

[oslo_messaging_notifications]
driver = noop

[{backend}]
volume_driver = {driver}
volume_backend_name = {backend}
late_backend_address = 127.0.0.1:{port}
"""


def venv_script(name):
    """Path of a console script next to the running interpreter."""
    return os.path.join(os.path.dirname(sys.executable), name)


free_port = servers.free_port


#: What the stand-in backend says on every connection. The driver insists on
#: it, so another test's server that happens to take the port the backend
#: will later listen on (free ports are only free when picked) does not pass
#: for the backend.
GREETING = b'late-backend ready\n'


class Backend:
    """The 'storage backend': a TCP listener opened when the test says."""

    def __init__(self, port):
        self.port = port
        self._sock = None
        self._thread = None

    def open(self):
        self._sock = socket.create_server(('127.0.0.1', self.port))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                conn, _addr = self._sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.sendall(GREETING)
                except OSError:
                    pass  # the driver gave up on this connection already

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class CinderVolume:
    """One cinder-volume process with its own config, database and log."""

    def __init__(self, path, name, manager, port, probe_interval=4,
                 threading=False, extra=''):
        self.path = path
        self.threading = threading
        self.name = name
        self.host = '%s@%s' % (name, BACKEND)
        self.conf_file = os.path.join(path, 'cinder.conf')
        self.log_file = os.path.join(path, 'cinder-volume.log')
        self.process = None
        self.killed = False
        os.makedirs(os.path.join(path, 'locks'), exist_ok=True)
        with open(self.conf_file, 'w') as conf:
            conf.write(_CONF.format(name=name, path=path, backend=BACKEND,
                                    manager=manager, driver=DRIVER,
                                    port=port,
                                    probe_interval=probe_interval,
                                    extra=extra,
                                    down_time=SERVICE_DOWN_TIME,
                                    log_levels=','.join(_LOG_LEVELS)))

    @property
    def database(self):
        return os.path.join(self.path, 'cinder.sqlite')

    def db_sync(self, template=None):
        """Create the schema, or copy it from ``template``'s database."""
        if template is not None:
            shutil.copyfile(template.database, self.database)
            return
        subprocess.run([venv_script('cinder-manage'), '--config-file',
                        self.conf_file, 'db', 'sync'],
                       check=True, capture_output=True, timeout=300)

    def start(self, template=None, synced=False):
        """Prepare the database (see db_sync) and start cinder-volume."""
        if not synced:
            self.db_sync(template)
        with open(os.path.join(self.path, 'stdout.log'), 'wb') as out:
            self.process = subprocess.Popen(
                [venv_script('cinder-volume'), '--config-file',
                 self.conf_file],
                stdout=out, stderr=subprocess.STDOUT, env=self._env(),
                start_new_session=True)

    def _env(self):
        # cinder 29 picks its oslo.service backend from this variable:
        # eventlet by default, native threads when it is set to 1.
        env = dict(os.environ)
        env['OS_CINDER_DISABLE_EVENTLET_PATCHING'] = (
            '1' if self.threading else '0')
        return env

    def stop(self, timeout=10):
        """SIGTERM the process group; SIGKILL it after ``timeout`` s.

        :returns: seconds the process took to exit after SIGTERM; ``killed``
                  tells whether it needed the SIGKILL
        """
        if self.process is None or self.process.poll() is not None:
            return 0.0
        began = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.killed = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        return time.monotonic() - began

    def log(self):
        try:
            with open(self.log_file, errors='replace') as log:
                return log.read()
        except FileNotFoundError:
            return ''

    def service_row(self):
        """This backend's row of the services table, as a dict (or None)."""
        db = sqlite3.connect(self.database, timeout=5)
        try:
            db.row_factory = sqlite3.Row
            row = db.execute(
                'SELECT host, report_count, updated_at, replication_status'
                ' FROM services'
                ' WHERE "binary" = ? AND host = ?',
                ('cinder-volume', self.host)).fetchone()
            return dict(row) if row else None
        except sqlite3.OperationalError:
            return None
        finally:
            db.close()

    def shown_up(self):
        """What cinder's Service.is_up says of the row right now."""
        row = self.service_row()
        if not row or not row['updated_at']:
            return False
        seen = datetime.datetime.fromisoformat(row['updated_at'])
        now = datetime.datetime.now(datetime.timezone.utc)
        age = now.replace(tzinfo=None) - seen
        return age.total_seconds() < SERVICE_DOWN_TIME

    def exited(self, timeout):
        """The exit status once the process ends within ``timeout``."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def sql(self, statement, args=()):
        """Run one statement on the service's database; returns the rows."""
        db = sqlite3.connect(self.database, timeout=30)
        try:
            with db:
                return db.execute(statement, args).fetchall()
        finally:
            db.close()

    def initialized(self):
        return READY_LINE in self.log()

    def reporting(self):
        row = self.service_row()
        return bool(row and row['report_count'] > 0)


wait_for = waiting.wait_for
