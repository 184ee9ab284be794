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

"""Who wrote each lock key on the redis server.

``LockWriteRecorder`` runs ``MONITOR`` on the tooz redis server and keeps
every ``SET`` of a cinder lock key (tooz's redis locks are
``SET <namespace>_<name>_lock <token> NX PX <ms>``) with the client address
that sent it. ``CLIENT LIST`` then maps addresses to the names that
``driver.name_redis_connections`` gave each coordinator's connections.
"""

import collections
import re
import socket
import threading

import redis

LOCK_KEY = re.compile(r'^_tooz_cinder-.+_lock$')
#: One line of MONITOR output: +TIME [DB ADDRESS] "COMMAND" "ARG" ...
MONITOR_LINE = re.compile(r'^\+[0-9.]+ \[\d+ ([^\]]+)\] "([^"]+)" "([^"]*)"')


class LockWriteRecorder(object):

    def __init__(self, port):
        self.port = port
        self.client = redis.Redis(host='127.0.0.1', port=port)
        self.writes = []   # (client address, key)
        self.lines = 0
        self._sock = None
        self._thread = None

    def start(self):
        self._sock = socket.create_connection(('127.0.0.1', self.port),
                                              timeout=10)
        self._sock.settimeout(None)
        reader = self._sock.makefile('rb')
        self._sock.sendall(b'MONITOR\r\n')
        if reader.readline().strip() != b'+OK':
            raise RuntimeError('redis refused MONITOR')
        self._thread = threading.Thread(target=self._run, args=(reader,),
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self, reader):
        try:
            for raw in reader:
                self.lines += 1
                self._record(raw.decode('utf-8', 'replace'))
        except (OSError, ValueError):
            return   # stop() closed the socket

    def _record(self, line):
        match = MONITOR_LINE.match(line)
        if match is None:
            return
        address, command, key = match.groups()
        if command.upper() == 'SET' and LOCK_KEY.match(key):
            self.writes.append((address, key))

    def stop(self):
        if self._sock is not None:
            self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        if self._thread is not None:
            self._thread.join(10)

    def client_names(self):
        """{address: client name} of the connections open now."""
        return {c['addr']: c.get('name', '')
                for c in self.client.client_list()}

    def writers(self):
        """Lock key writes counted per client name ('' when unnamed)."""
        names = self.client_names()
        counts = collections.Counter(
            names.get(address, '(closed %s)' % address)
            for address, _key in self.writes)
        return dict(counts)
