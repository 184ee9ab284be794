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

"""Refuse writes from lock holders that no longer hold their lock.

A distributed lock alone cannot protect a resource: a holder that was
paused (garbage collection, a stopped VM, swap) or cut off can wake up after
its lease ran out and another service took the lock, and still write.  The
remedy is *fencing*: every acquisition carries a token that grows with each
acquisition of the lock name (``Lock.fencing_token`` in
``cinder_resilience.coordination``), the holder sends it with every write,
and the resource itself refuses a token lower than the highest it has seen.

Driver authors use the pattern where their back end can compare a number
(an array's metadata field, a database row, a file on shared storage):

* ``FencingGate`` is the comparison, in memory, for a service that fronts
  the resource (thread safe);
* ``FencedFile`` is a complete example on a file: appends are accepted only
  with a token at least the highest seen, kept next to the file; each
  check-and-append is atomic through ``flock`` (on a shared filesystem that
  honours POSIX locks, across hosts).

Only the resource can do this check: the holder cannot, because it may be
paused between its own check and its write.
"""

import fcntl
import os
import threading

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

__all__ = ['FencingGate', 'FencedFile']


class FencingGate(object):
    """Admit a token only if it is at least the highest admitted so far.

    :param highest: highest token already seen (0: none)
    """

    def __init__(self, highest=0):
        self.highest = int(highest)
        self.rejected = 0
        self._mutex = threading.Lock()

    def admit(self, token):
        """Return True and remember ``token`` if it is not stale.

        :param token: the writer's fencing token (an integer)
        :returns: False when a newer holder has already been admitted
        """
        token = int(token)
        with self._mutex:
            if token < self.highest:
                self.rejected += 1
                return False
            self.highest = token
            return True


class FencedFile(object):
    """An append-only file that takes records only from the newest holder.

    Each record is one line ``<token> <text>``.  The highest token is kept
    in ``<path>.fence``, which is also the file ``flock`` serializes on.

    :param path: the data file (created on first append)
    """

    def __init__(self, path):
        self.path = path
        self.fence_path = path + '.fence'

    def append(self, token, text):
        """Append ``text`` (one line) if ``token`` is not stale.

        :param token: the writer's fencing token (an integer)
        :param text: the record, without newline
        :returns: True if appended, False if a newer token was seen first
        """
        token = int(token)
        if '\n' in text:
            raise ValueError('a record is one line')
        with open(self.fence_path, 'a+') as fence:
            fcntl.flock(fence, fcntl.LOCK_EX)
            fence.seek(0)
            gate = FencingGate(int(fence.read().strip() or 0))
            if not gate.admit(token):
                LOG.warning('Refused a write to %(path)s with stale fencing '
                            'token %(token)d (highest %(highest)d)',
                            {'path': self.path, 'token': token,
                             'highest': gate.highest})
                return False
            with open(self.path, 'a') as data:
                data.write('%d %s\n' % (token, text))
            fence.seek(0)
            fence.truncate()
            fence.write('%d\n' % token)
            return True

    def highest(self):
        """Return the highest token accepted so far (0 when none)."""
        try:
            with open(self.fence_path) as fence:
                return int(fence.read().strip() or 0)
        except FileNotFoundError:
            return 0

    def records(self):
        """Return the accepted records as ``(token, text)`` in order."""
        try:
            with open(self.path) as data:
                lines = data.read().splitlines()
        except FileNotFoundError:
            return []
        result = []
        for line in lines:
            token, _sep, text = line.partition(' ')
            result.append((int(token), text))
        return result

    def remove(self):
        """Delete the file and its fence."""
        for path in (self.path, self.fence_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
