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

"""A real ironic process, stock and with the plugin, under lock contention.

Each service is ironic's single-process command (API and conductor in one,
sqlite, ``fake-hardware``, no authentication, no RPC transport) started
from its console script. The test creates one node through the REST API,
then runs rounds of real requests that all need the node's exclusive lock:
setting the boot device holds it for about a second (the fake management
interface's delay, like a slow BMC), and meanwhile four threads at once
change the power state or PATCH the node. Stock ``ironic`` answers some of
them with HTTP 409 NodeLocked; ``ironic-resilient`` with ``[conductor]
task_manager = retrying`` answers none of them so. Both run ironic's
default retry options.
"""

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import fixtures
import testtools

BIN = os.path.dirname(sys.executable)
API_VERSION = '1.1'
ROUNDS = 3
WAITERS = 4
REQUESTS = ROUNDS * (1 + WAITERS)

CONFIG = """
[DEFAULT]
auth_strategy = noauth
host = functional-conductor
rpc_transport = {transport}
enabled_hardware_types = fake-hardware
enabled_boot_interfaces = fake
enabled_console_interfaces = no-console
enabled_deploy_interfaces = fake
enabled_inspect_interfaces = no-inspect
enabled_management_interfaces = fake
enabled_network_interfaces = noop
enabled_power_interfaces = fake
enabled_raid_interfaces = fake
enabled_vendor_interfaces = fake
enabled_bios_interfaces = no-bios
enabled_firmware_interfaces = no-firmware
enabled_rescue_interfaces = no-rescue
enabled_storage_interfaces = noop
log_file = {workdir}/ironic.log
debug = true
[api]
host_ip = 127.0.0.1
port = {port}
[database]
connection = sqlite:///{workdir}/ironic.sqlite
sqlite_synchronous = false
[dhcp]
dhcp_provider = none
[fake]
management_delay = 1
[conductor]
task_manager = {task_manager}
[json_rpc]
auth_strategy = noauth
host_ip = 127.0.0.1
port = {rpc_port}
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class IronicService(fixtures.Fixture):
    """One ironic process started from a console script, stopped on exit."""

    def __init__(self, command, task_manager='retrying', transport='none',
                 workdir=None, extra=''):
        super().__init__()
        self.command = command
        self.task_manager = task_manager
        self.transport = transport
        # A given workdir means: reuse the database another service made.
        self.workdir = workdir
        self.extra = extra

    def _setUp(self):
        new_database = self.workdir is None
        if new_database:
            self.workdir = self.useFixture(fixtures.TempDir()).path
        self.port = free_port()
        self.conf = os.path.join(self.workdir, '%s.conf' % self.command)
        with open(self.conf, 'w') as out:
            out.write(CONFIG.format(workdir=self.workdir, port=self.port,
                                    rpc_port=free_port(),
                                    task_manager=self.task_manager,
                                    transport=self.transport))
            out.write(self.extra)
        if new_database:
            subprocess.run([os.path.join(BIN, 'ironic-dbsync'),
                            '--config-file', self.conf, 'create_schema'],
                           check=True, capture_output=True, timeout=120)
        self.process = subprocess.Popen(
            [os.path.join(BIN, self.command), '--config-file', self.conf],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        self.addCleanup(self.stop)
        self._wait_ready(deadline=time.monotonic() + 90)

    def ready(self):
        if self.transport == 'none':
            try:
                return self.request('GET', '/v1/nodes')[0] == 200
            except OSError:
                return False
        # A conductor alone has no REST API; it says when it is up.
        return 'Successfully started conductor' in self.log()

    def stop(self):
        # The service forks a worker; its session holds both.
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass

    def _wait_ready(self, deadline):
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError('%s exited with %s:\n%s' % (
                    self.command, self.process.returncode, self.log()))
            if self.ready():
                return
            time.sleep(0.3)
        raise AssertionError('%s did not answer in time:\n%s' %
                             (self.command, self.log()))

    def log(self):
        try:
            with open(os.path.join(self.workdir, 'ironic.log')) as log:
                return log.read()
        except OSError:
            return ''

    def request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            'http://127.0.0.1:%d%s' % (self.port, path), data=data,
            method=method,
            headers={'Content-Type': 'application/json',
                     'X-OpenStack-Ironic-API-Version': API_VERSION})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


def _wait_unlocked(service, node, deadline):
    while time.monotonic() < deadline:
        status, body = service.request('GET', '/v1/nodes/%s' % node)
        if status == 200 and not json.loads(body)['reservation']:
            return
        time.sleep(0.2)
    raise AssertionError('node %s stayed locked' % node)


def _wait_locked(service, node, deadline):
    while time.monotonic() < deadline:
        status, body = service.request('GET', '/v1/nodes/%s' % node)
        if status == 200 and json.loads(body)['reservation']:
            return
        time.sleep(0.02)
    raise AssertionError('node %s never got locked' % node)


def contend(service, node):
    """Rounds of concurrent requests that all need the node's lock.

    Each round: setting the boot device keeps the node locked for about a
    second (the fake management interface's delay, like a slow BMC); while
    it does, WAITERS threads at once ask for a power-state change or a
    PATCH, which need the same lock.

    :returns: (counter of HTTP statuses, bodies of the 409 answers).
    """
    statuses = collections.Counter()
    conflicts = []
    lock = threading.Lock()

    def record(status, body):
        with lock:
            statuses[status] += 1
            if status == 409:
                conflicts.append(body)

    def blocker():
        record(*service.request(
            'PUT', '/v1/nodes/%s/management/boot_device' % node,
            {'boot_device': 'pxe'}))

    def waiter(index, step, start):
        start.wait()
        if index == 0:
            record(*service.request(
                'PUT', '/v1/nodes/%s/states/power' % node,
                {'target': 'power on' if step % 2 else 'power off'}))
        else:
            record(*service.request(
                'PATCH', '/v1/nodes/%s' % node,
                [{'op': 'add', 'path': '/extra/t%d' % index,
                  'value': str(step)}]))

    for step in range(ROUNDS):
        _wait_unlocked(service, node, time.monotonic() + 30)
        start = threading.Barrier(WAITERS)
        threads = [threading.Thread(target=blocker)]
        threads[0].start()
        _wait_locked(service, node, time.monotonic() + 30)
        threads += [threading.Thread(target=waiter, args=(i, step, start))
                    for i in range(WAITERS)]
        for thread in threads[1:]:
            thread.start()
        for thread in threads:
            thread.join()
    return statuses, conflicts


class IronicProcessTest(testtools.TestCase):

    def run_contention(self, command, task_manager='retrying'):
        service = self.useFixture(IronicService(command, task_manager))
        status, body = service.request('POST', '/v1/nodes',
                                       {'driver': 'fake-hardware'})
        self.assertEqual(201, status, body)
        node = json.loads(body)['uuid']
        statuses, conflicts = contend(service, node)
        self.addDetail('%s statuses' % command,
                       testtools.content.text_content(json.dumps(statuses)))
        self.assertEqual(REQUESTS, sum(statuses.values()))
        # Every round's lock holder did its work: the contention happened.
        self.assertEqual(ROUNDS, statuses[204], statuses)
        # Free the machine for the next service; the log stays readable.
        service.stop()
        return service.log(), statuses, conflicts

    def test_same_load_stock_refuses_resilient_serves(self):
        # One after the other, so that the two services never compete for
        # the machine with each other.
        stock, stock_statuses, stock_conflicts = self.run_contention('ironic')
        ours, statuses, conflicts = self.run_contention('ironic-resilient',
                                                        'retrying')

        self.assertGreater(stock_statuses[409], 0, stock_statuses)
        self.assertIn('is locked by host', stock_conflicts[0])
        self.assertNotIn('Node locks are taken by task manager', stock)

        self.assertEqual([], conflicts)
        self.assertEqual(REQUESTS - ROUNDS, statuses[200] + statuses[202],
                         statuses)
        self.assertIn('Node locks are taken by task manager retrying', ours)
        # The requests did meet a held lock: the plugin waited it out.
        self.assertIn('retrying the reservation', ours)

    def test_conductor_wrapper_takes_locks_with_plugin(self):
        # Stock ironic makes the node (a conductor alone has no REST API).
        api = self.useFixture(IronicService('ironic'))
        status, body = api.request('POST', '/v1/nodes',
                                   {'driver': 'fake-hardware'})
        self.assertEqual(201, status, body)
        api.stop()
        # The conductor's periodic power-state sync locks every node, each
        # second here: through the plugin's acquire, if it is in place.
        conductor = self.useFixture(IronicService(
            'ironic-conductor-resilient', 'retrying', transport='json-rpc',
            workdir=api.workdir,
            extra='[conductor]\nsync_power_state_interval = 1\n'))
        deadline = time.monotonic() + 30
        expected = 'Node locks are taken by task manager retrying'
        while expected not in conductor.log():
            self.assertLess(time.monotonic(), deadline, conductor.log())
            time.sleep(0.3)
        self.assertIn('Created RPC server with json-rpc transport',
                      conductor.log())
        self.assertIsNone(conductor.process.poll())
