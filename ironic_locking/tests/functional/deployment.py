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

"""ironic-api and ironic-conductor as separate processes, under load.

One sqlite database, ironic's stock ``ironic-api`` (one worker, no
authentication) and one conductor over json-rpc: stock
``ironic-conductor`` or ``ironic-conductor-resilient``, swapped
behind the same API and database (same host name, so the nodes stay with
it). Nodes use ``fake-hardware`` with the fake interfaces' random delays
as hold times. Client threads send lock-taking requests through the REST
API and every answer is counted.

409s come from two places. The conductor raises NodeLocked when it gives
up waiting for a node. ironic-api raises it itself, before any RPC, when a
provision verb is not actionable from the node's current state and the
node is reserved (it would answer 400 otherwise): no task manager can
change those. ironic-api logs every RPC answer at DEBUG (``RPC <method>
to <url> returned <answer>``); the 409s whose answer is a NodeLocked error
are the conductor's, the rest are ironic-api's own.
"""

import collections
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import fixtures

BIN = os.path.dirname(sys.executable)

CONFIG = """
[DEFAULT]
auth_strategy = noauth
host = 127.0.0.1
rpc_transport = json-rpc
hash_ring_reset_interval = 2
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
debug = true
[api]
host_ip = 127.0.0.1
port = {api_port}
api_workers = 1
[conductor]
automated_clean = false
task_manager = retrying
[database]
connection = sqlite:///{workdir}/ironic.sqlite
sqlite_synchronous = false
[dhcp]
dhcp_provider = none
[fake]
power_delay = 0
management_delay = 0,1
[json_rpc]
auth_strategy = noauth
# ironic-api logs each RPC answer, so that NodeLocked errors raised by the
# conductor can be told from ironic-api's own.
debug_log_request_id_only = false
host_ip = 127.0.0.1
port = {rpc_port}
"""

STOCK_CONDUCTOR = 'ironic-conductor'
OUR_CONDUCTOR = 'ironic-conductor-resilient'
KINDS = ('patch', 'power', 'boot_device', 'provision')


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Process(object):
    """One console script in its own session, logging to its own file."""

    def __init__(self, command, conf, log, extra_args=()):
        self.command = command
        self.log_path = log
        self.process = subprocess.Popen(
            [os.path.join(BIN, command), '--config-file', conf,
             '--log-file', log] + list(extra_args),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)

    def log(self):
        try:
            with open(self.log_path) as log:
                return log.read()
        except OSError:
            return ''

    def wait_for(self, ready, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError('%s exited with %s:\n%s\n%s' % (
                    self.command, self.process.returncode,
                    self.process.stderr.read().decode(), self.log()[-3000:]))
            if ready():
                return
            time.sleep(0.3)
        raise AssertionError('%s not ready in time:\n%s' %
                             (self.command, self.log()[-3000:]))

    def stop(self):
        # The service may fork a worker; its session holds both.
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass
        self.process.stderr.close()


class Deployment(fixtures.Fixture):
    """A database, ironic-api, and one conductor at a time."""

    def _setUp(self):
        self.workdir = self.useFixture(fixtures.TempDir()).path
        self.api_port = free_port()
        self.conf = os.path.join(self.workdir, 'ironic.conf')
        with open(self.conf, 'w') as out:
            out.write(CONFIG.format(workdir=self.workdir,
                                    api_port=self.api_port,
                                    rpc_port=free_port()))
        subprocess.run([os.path.join(BIN, 'ironic-dbsync'), '--config-file',
                        self.conf, 'create_schema'],
                       check=True, capture_output=True, timeout=180)
        self.conductor = None
        self.api = Process('ironic-api', self.conf,
                           os.path.join(self.workdir, 'api.log'))
        self.addCleanup(self.api.stop)
        self.addCleanup(self.stop_conductor)
        self.api.wait_for(self._api_answers)

    def _api_answers(self):
        try:
            return self.request('GET', '/v1/nodes')[0] == 200
        except OSError:
            return False

    def start_conductor(self, command):
        self.stop_conductor()
        log = os.path.join(self.workdir, '%s.log' % command)
        self.conductor = Process(command, self.conf, log)
        self.conductor.wait_for(
            lambda: 'Successfully started conductor' in
            self.conductor.log())
        # ironic-api sees the conductor once its hash ring is rebuilt.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, body = self.request('GET', '/v1/conductors')
            if status == 200 and any(c['alive'] for c in
                                     json.loads(body)['conductors']):
                return self.conductor
            time.sleep(0.5)
        raise AssertionError('ironic-api never saw the conductor')

    def stop_conductor(self):
        if self.conductor is not None:
            self.conductor.stop()
            self.conductor = None

    def request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            'http://127.0.0.1:%d%s' % (self.api_port, path), data=data,
            method=method,
            headers={'Content-Type': 'application/json',
                     'X-OpenStack-Ironic-API-Version': 'latest'})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def node(self, uuid):
        status, body = self.request('GET', '/v1/nodes/%s' % uuid)
        assert status == 200, body
        return json.loads(body)

    def create_nodes(self, count):
        """Nodes in ``manageable``, unlocked, ready for the load."""
        uuids = []
        for _ in range(count):
            status, body = self.request('POST', '/v1/nodes',
                                        {'driver': 'fake-hardware'})
            assert status == 201, body
            uuids.append(json.loads(body)['uuid'])
        for uuid in uuids:
            self.until(uuid, lambda node: node['reservation'] is None)
            status, body = self.request(
                'PUT', '/v1/nodes/%s/states/provision' % uuid,
                {'target': 'manage'})
            assert status == 202, body
        for uuid in uuids:
            self.until(uuid, lambda node: node['provision_state'] ==
                       'manageable' and node['reservation'] is None)
        return uuids

    def until(self, uuid, predicate, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.node(uuid)):
                return
            time.sleep(0.2)
        raise AssertionError('node %s: %s' % (uuid, self.node(uuid)))

    def settle(self, uuids):
        """Wait until no node is reserved or in a transient state."""
        for uuid in uuids:
            self.until(uuid, lambda node: node['reservation'] is None and
                       node['provision_state'] in ('manageable',
                                                   'available'))

    def api_conductor_409s(self, since):
        """NodeLocked answers that came back from the conductor's RPC."""
        return sum(1 for line in self.api.log()[since:].splitlines()
                   if 'RPC ' in line and ' returned ' in line and
                   'NodeLocked' in line)


def _send(deployment, kind, uuid, step):
    """One lock-taking request; returns the HTTP status and body."""
    if kind == 'patch':
        return deployment.request('PATCH', '/v1/nodes/%s' % uuid, [
            {'op': 'add', 'path': '/extra/step', 'value': str(step)}])
    if kind == 'power':
        return deployment.request(
            'PUT', '/v1/nodes/%s/states/power' % uuid,
            {'target': 'power on' if step % 2 else 'power off'})
    if kind == 'boot_device':
        return deployment.request(
            'PUT', '/v1/nodes/%s/management/boot_device' % uuid,
            {'boot_device': 'pxe'})
    state = deployment.node(uuid)['provision_state']
    verb = 'provide' if state == 'manageable' else 'manage'
    return deployment.request('PUT', '/v1/nodes/%s/states/provision' % uuid,
                              {'target': verb})


def run_load(deployment, uuids, clients=12, rounds=10, seed=1):
    """Rounds of simultaneous requests: ``clients`` x ``rounds``.

    In each round every client sends one request at the same moment, as
    scripts driving a fleet do; client ``i`` works on node ``i mod
    len(uuids)``, so each node meets ``clients / len(uuids)`` requests
    at once. The kind of each request is random, seeded, so the stock and
    the resilient run send the same sequence. A round ends when every
    answer is in and no node is reserved or in a transient state.

    :returns: dict of counts: ``requests``, ``statuses`` (per HTTP
        status), ``by_kind`` (kind -> status -> count), ``409``,
        ``conductor_409``, ``api_409``, ``seconds``.
    """
    by_kind = collections.defaultdict(collections.Counter)
    lock = threading.Lock()
    log_start = len(deployment.api.log())
    rng = random.Random(seed)

    def client(index, kind, step, start):
        start.wait()
        status, _ = _send(deployment, kind, uuids[index % len(uuids)], step)
        with lock:
            by_kind[kind][status] += 1

    began = time.monotonic()
    for step in range(rounds):
        start = threading.Barrier(clients)
        threads = [threading.Thread(target=client,
                                    args=(i, rng.choice(KINDS), step, start))
                   for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        deployment.settle(uuids)
    seconds = time.monotonic() - began
    statuses = collections.Counter()
    for counter in by_kind.values():
        statuses.update(counter)
    conductor_409 = deployment.api_conductor_409s(log_start)
    return {'requests': sum(statuses.values()),
            'statuses': dict(statuses),
            'by_kind': {kind: dict(c) for kind, c in by_kind.items()},
            '409': statuses[409], 'conductor_409': conductor_409,
            'api_409': statuses[409] - conductor_409,
            'seconds': round(seconds, 1)}
