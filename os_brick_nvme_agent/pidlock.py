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

"""The agent's single-instance lock: ``<state_dir>/agent.pid``.

The daemon holds an exclusive ``flock`` on the file for its whole life
and writes its pid into it. A checker (the os-brick hook, ``status``)
takes a shared lock for an instant: if it cannot, an agent runs.
"""

import errno
import fcntl
import os
import time

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

PID_FILE = 'agent.pid'

__all__ = ['PID_FILE', 'pid_file', 'is_running', 'read_pid', 'acquire']


def pid_file(state_dir):
    return os.path.join(state_dir, PID_FILE)


def is_running(state_dir):
    """True when a daemon holds the lock on the pid file."""
    try:
        fd = os.open(pid_file(state_dir), os.O_RDONLY)
    except FileNotFoundError:
        return False
    except PermissionError:
        # Another user's agent (e.g. run by the init system as root):
        # not ours to start.
        LOG.debug('Cannot read %s; assuming an agent runs', state_dir)
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return True
        raise
    finally:
        os.close(fd)  # also drops the shared lock we may have taken
    return False


def read_pid(state_dir):
    """The pid written in the pid file, or None."""
    try:
        with open(pid_file(state_dir), encoding='ascii') as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def acquire(state_dir, attempts=20, wait=None):
    """Hold the single-instance lock; None if another agent holds it.

    A checker holds a shared lock for an instant; a few short retries
    keep such a check from turning away the only agent that is starting.
    The lock is kept by every process that inherits the descriptor, so
    the launcher may take it before it forks the daemon.

    :returns: the locked file descriptor, or None.
    :raises OSError: the state directory or the file cannot be created.
    """
    wait = wait or time.sleep
    # Readable by the services whose hook checks the lock (e.g. nova).
    os.makedirs(state_dir, mode=0o755, exist_ok=True)
    fd = os.open(pid_file(state_dir), os.O_RDWR | os.O_CREAT, 0o644)
    for attempt in range(attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            if attempt == attempts - 1:
                os.close(fd)
                return None
            wait(0.05)
    return None


def write_pid(fd, pid=None):
    """Record ``pid`` (default: ours) in the locked file."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, b'%d\n' % (pid or os.getpid()), 0)
