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

"""Wait for a change of the MD arrays, as ``mdadm --monitor`` does.

The kernel flags a change of ``/proc/mdstat`` and of md sysfs attributes
(``array_state``, ``degraded``, ``sync_action``, ``dev-*/state``) to
poll() as POLLPRI|POLLERR once the file has been read; after an event the
file must be read again to re-arm it (the kernel's md.rst). The watcher
also compares what it reads with what it read last time, so a change that
happened between two waits is never lost, and it wakes up after
``interval`` seconds in any case (periodic fallback: regular files, as in
a simulated host, never signal). :meth:`Watcher.interrupt` ends a wait at
once from another thread. With ``events=False`` it watches nothing and
only the interval or an interrupt end a wait (``[nvme_agent]
watch_md_events``).
"""

import glob
import os
import select

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

EVENT = 'event'
TIMEOUT = 'timeout'
INTERRUPTED = 'interrupted'

MD_ATTRIBUTES = ('array_state', 'degraded', 'sync_action')
_MASK = select.POLLPRI | select.POLLERR


def watched_paths(root):
    """Files to watch under ``root``: mdstat, md attributes, member states."""
    paths = [os.path.join(root, 'proc/mdstat')]
    for md_dir in sorted(glob.glob(os.path.join(root, 'sys/block/md*/md'))):
        paths.extend(os.path.join(md_dir, attr) for attr in MD_ATTRIBUTES)
        paths.extend(sorted(glob.glob(os.path.join(md_dir, 'dev-*',
                                                   'state'))))
    return paths


class Watcher(object):
    """Block until the md state may have changed.

    :param root: prefix of /proc and /sys.
    :param interval: longest wait in seconds (periodic fallback).
    :param poller: factory of poll objects (tests inject one).
    :param events: watch the md files; False leaves only the interval.
    """

    def __init__(self, root='/', interval=10.0, poller=select.poll,
                 events=True):
        self.root = root
        self.interval = interval
        self.events = events
        self._poller = poller
        self._seen = None
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)

    def interrupt(self):
        """Make the current (or next) :meth:`wait` return INTERRUPTED."""
        try:
            os.write(self._write_fd, b'x')
        except (BlockingIOError, OSError):
            pass  # already signalled, or closed during shutdown

    def close(self):
        for fd in (self._read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    def _drain(self):
        try:
            while os.read(self._read_fd, 512):
                pass
        except (BlockingIOError, OSError):
            pass

    def _arm(self):
        """Open and read every watched file: dict fd -> path, contents."""
        fds, contents = {}, {}
        for path in watched_paths(self.root):
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                contents[path] = os.read(fd, 65536)
            except OSError:
                os.close(fd)
                continue
            fds[fd] = path
        return fds, contents

    def wait(self, timeout=None):
        """Wait for a change, an interrupt or the timeout.

        :param timeout: seconds; defaults to ``interval``.
        :returns: EVENT, TIMEOUT or INTERRUPTED.
        """
        timeout = self.interval if timeout is None else timeout
        if not self.events:
            return self._poll({}, timeout)
        fds, contents = self._arm()
        try:
            changed = self._seen is not None and contents != self._seen
            self._seen = contents
            if changed:
                return EVENT
            return self._poll(fds, timeout)
        finally:
            for fd in fds:
                os.close(fd)

    def _poll(self, fds, timeout):
        poll = self._poller()
        poll.register(self._read_fd, select.POLLIN)
        for fd in fds:
            poll.register(fd, _MASK)
        events = poll.poll(max(0.0, timeout) * 1000.0)
        if any(fd == self._read_fd for fd, _mask in events):
            self._drain()
            return INTERRUPTED
        if events:
            LOG.debug('md change signalled on %s',
                      [fds.get(fd) for fd, _mask in events])
            return EVENT
        return TIMEOUT
