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

"""A local HTTPS server that speaks the part of the KumoScale REST API the
agent uses, for tests and the demo.

The paths, verbs, bearer-token check and JSON shapes are those cinder's
``kioxia`` driver sends and parses (``rest_client.py``, ``entities.py``):
lists of records for queries, ``{"status", "description"}`` for failures.
State lives in memory; a test prepares volumes with :meth:`add_volume`,
can make the next answers fail (:meth:`fail_next`) or come back garbled
(``malformed``), and stops the server to simulate an outage.
"""

import base64
import datetime
import http.server
import ipaddress
import itertools
import json
import os
import ssl
import tempfile
import threading
from urllib import parse
import uuid

TOKEN = 'test-token-%s' % uuid.uuid4().hex[:8]
CLIENT_ID = 'os-brick-nvme-agent'
CLIENT_SECRET = 'client-secret-%s' % uuid.uuid4().hex[:8]


class KumoScaleState(object):
    """Volumes, backends and targets of a pretend KumoScale."""

    def __init__(self, backends=4):
        self.lock = threading.Lock()
        self._clock = itertools.count(1700000000000, 1000)
        self.backends = {
            'backend-%d' % n: {
                'persistentID': 'backend-%d' % n, 'state': 'Available',
                'portals': [{'ip': '192.0.2.%d' % (10 + n), 'port': 4420,
                             'transport': 'TCP'}]}
            for n in range(backends)}
        self.volumes = {}
        self.requests = []      # (method, path) seen, for assertions
        self.logs = []          # forward_log records, oldest first

    def tick(self):
        return next(self._clock)

    def add_volume(self, alias, replicas=2, capacity=1):
        volume_uuid = str(uuid.uuid4())
        self.volumes[volume_uuid] = {
            'uuid': volume_uuid, 'alias': alias, 'capacity': capacity,
            'numReplicas': replicas, 'writable': True, 'location': []}
        for _ in range(replicas):
            self._add_location(self.volumes[volume_uuid])
        return volume_uuid

    def _add_location(self, volume):
        used = {loc['backend']['persistentID'] for loc in volume['location']}
        free = sorted(set(self.backends) - used)
        if not free:
            return False
        volume['location'].append({
            'uuid': str(uuid.uuid4()),
            'backend': {'persistentID': free[0]},
            'replicaState': 'Available',
            'currentStateTime': self.tick()})
        return True

    def target_name(self, volume, backend_id):
        return 'nqn.2019-05.com.kioxia:%s-%s' % (volume['uuid'], backend_id)

    def by_alias(self, alias):
        return [v for v in self.volumes.values() if v['alias'] == alias]


class _Handler(http.server.BaseHTTPRequestHandler):

    server_version = 'FakeKumoScale/1.0'

    def log_message(self, *args):
        pass        # keep test output quiet

    def do_GET(self):
        self._dispatch('GET')

    def do_POST(self):
        self._dispatch('POST')

    def do_PATCH(self):
        self._dispatch('PATCH')

    def do_DELETE(self):
        self._dispatch('DELETE')

    def _dispatch(self, method):
        fake = self.server.fake
        url = parse.urlsplit(self.path)
        parts = [parse.unquote(p) for p in url.path.strip('/').split('/')]
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        with fake.state.lock:
            fake.state.requests.append((method, url.path))
            if url.path == '/oauth/token' and method == 'POST':
                return self._token(fake, body)
            if self.headers.get('Authorization') != 'Bearer ' + fake.token:
                return self._send(401, {'status': 'Status 401',
                                        'description': 'Bad credentials'})
            if fake.failures:
                return self._send(fake.failures.pop(0), {
                    'status': 'Error', 'description': 'injected'})
            if fake.malformed:
                return self._send_raw(200, b'{"records": [garbage')
            status, answer = _route(fake.state, method, parts,
                                    parse.parse_qs(url.query), body)
        self._send(status, answer)

    def _token(self, fake, body):
        """OAuth 2.0 client credentials grant (RFC 6749, 4.4)."""
        expected = 'Basic ' + base64.b64encode(
            ('%s:%s' % (CLIENT_ID, CLIENT_SECRET)).encode()).decode()
        form = parse.parse_qs(body.decode())
        if form.get('grant_type') != ['client_credentials']:
            return self._send(400, {'error': 'unsupported_grant_type'})
        if self.headers.get('Authorization') != expected:
            return self._send(401, {'error': 'invalid_client'})
        fake.tokens_issued += 1
        return self._send(200, {'access_token': fake.token,
                                'token_type': 'Bearer',
                                'expires_in': fake.token_lifetime})

    def _send(self, status, answer):
        self._send_raw(status, json.dumps(answer).encode())

    def _send_raw(self, status, data):
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _route(state, method, parts, query, body):
    head = parts[0]
    if method == 'GET' and parts == ['info']:
        return 200, {'version': '3.22', 'totalFreeSpace': 1 << 40}
    if method == 'GET' and parts == ['volumes']:
        return 200, list(state.volumes.values())
    if method == 'GET' and head == 'volumes_by_alias' and len(parts) == 2:
        return 200, state.by_alias(parts[1])
    if method == 'GET' and head == 'backends' and len(parts) == 2:
        backend = state.backends.get(parts[1])
        return 200, [backend] if backend else []
    if method == 'GET' and head == 'targets':
        return _targets(state, query)
    if method == 'POST' and parts == ['forward_log']:
        return _forward_log(state, body)
    if head == 'replica' and len(parts) >= 2:
        return _replica(state, method, parts[1:], body)
    return 404, {'status': 'NotFound', 'description': '/'.join(parts)}


#: Fields of cinder's ForwardEntity, each with its JSON type.
FORWARD_FIELDS = {'loggingType': str, 'level': str, 'host': str,
                  'appName': str, 'message': str, 'parametersList': list}


def _forward_log(state, body):
    try:
        record = json.loads(body or b'null')
    except ValueError:
        record = None
    if not isinstance(record, dict) or sorted(record) != sorted(
            FORWARD_FIELDS) or not all(
            isinstance(record[k], t) for k, t in FORWARD_FIELDS.items()):
        return 400, {'status': 'InvalidParameter',
                     'description': 'not a ForwardEntity'}
    state.logs.append(record)
    return 200, {'status': 'Success'}


def _targets(state, query):
    volume = state.volumes.get((query.get('volId') or [''])[0])
    if volume is None:
        return 200, []
    return 200, [{'targetName': state.target_name(
        volume, loc['backend']['persistentID']),
        'backend': {'persistentID': loc['backend']['persistentID']}}
        for loc in volume['location']]


def _replica(state, method, parts, body):
    volume = state.volumes.get(parts[0])
    if volume is None:
        return 404, {'status': 'VolumeNotFound', 'description': parts[0]}
    if method == 'POST' and len(parts) == 1:
        json.loads(body or b'{}')
        if not state._add_location(volume):
            return 200, {'status': 'NoBackend',
                         'description': 'no backend left'}
        return 200, {'status': 'Success'}
    found = [loc for loc in volume['location'] if loc['uuid'] == parts[1]]
    if not found:
        return 404, {'status': 'ReplicaNotFound', 'description': parts[1]}
    location = found[0]
    if method == 'PATCH' and len(parts) == 3:
        if location['replicaState'] != parts[2]:
            location['replicaState'] = parts[2]
            location['currentStateTime'] = state.tick()
        return 200, {'status': 'Success'}
    if method == 'PATCH' and len(parts) == 2:
        location['replicaState'] = 'Deleting'
        location['currentStateTime'] = state.tick()
        return 200, {'status': 'Success'}
    if method == 'DELETE' and len(parts) == 2:
        volume['location'].remove(location)
        for other in volume['location']:
            other['currentStateTime'] = state.tick()
        return 200, {'status': 'Success'}
    return 404, {'status': 'NotFound', 'description': '/'.join(parts)}


class FakeKumoScale(object):
    """Runs the fake on 127.0.0.1 with a fresh self-signed certificate.

    Use ``start()``/``stop()`` (or as a context manager); ``url``,
    ``token`` and ``ca_file`` configure the client.
    """

    def __init__(self, backends=4):
        self.state = KumoScaleState(backends)
        self.token = TOKEN
        self.tokens_issued = 0
        self.token_lifetime = 3600
        self.failures = []
        self.malformed = False
        self._dir = tempfile.mkdtemp(prefix='fake-kumoscale-')
        self.ca_file = os.path.join(self._dir, 'cert.pem')
        self._key_file = os.path.join(self._dir, 'key.pem')
        self._server = None
        self._thread = None

    def fail_next(self, *statuses):
        self.failures.extend(statuses)

    def start(self):
        _write_self_signed(self.ca_file, self._key_file)
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
        server.daemon_threads = True
        server.fake = self
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, self._key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={'poll_interval': 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    @property
    def url(self):
        return 'https://127.0.0.1:%d' % self._server.server_address[1]

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None
        for name in os.listdir(self._dir):
            os.unlink(os.path.join(self._dir, name))
        os.rmdir(self._dir)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _write_self_signed(cert_path, key_path):
    # Imported here: only the TLS tests need cryptography.
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                         'fake-kumoscale')])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                           critical=True)
            .sign(key, hashes.SHA256()))
    with open(key_path, 'wb') as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cert_path, 'wb') as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
