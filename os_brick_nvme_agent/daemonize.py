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

"""Leave the process that started us: session, cgroup, fork.

Where systemd runs the host, the os-brick hook has systemd start the
agent's unit, so it lives in its own cgroup (see :mod:`starter`).
Elsewhere the launcher (``os-brick-nvme-agent run --detach``) detaches
itself: it moves into its own cgroup v2 group when the cgroup v2
hierarchy is writable, so that killing the starter's cgroup (what
systemd does to stop a unit, ``cgroup.kill``, a container runtime)
leaves the agent alone, then forks the daemon in a new session.
"""

import os

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

MOUNTINFO = '/proc/self/mountinfo'
CGROUP = '/proc/self/cgroup'


def systemd_booted(root='/'):
    """True when systemd is PID 1 (sd_booted() and /proc/1/comm agree)."""
    if not os.path.isdir(os.path.join(root, 'run/systemd/system')):
        return False
    try:
        with open(os.path.join(root, 'proc/1/comm'), encoding='utf-8') as f:
            return f.read().strip() == 'systemd'
    except OSError:
        return False


def cgroup2_mount(mountinfo=MOUNTINFO):
    """Mount point of the cgroup v2 hierarchy, or None."""
    try:
        with open(mountinfo, encoding='utf-8') as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields, _sep, tail = line.partition(' - ')
        parts = fields.split()
        if tail.split(' ', 1)[0] == 'cgroup2' and len(parts) > 4:
            return parts[4].replace('\\040', ' ')
    return None


def current_cgroup(cgroup=CGROUP):
    """Our cgroup v2 path ('/system.slice/x.service'), or None."""
    try:
        with open(cgroup, encoding='utf-8') as handle:
            for line in handle:
                if line.startswith('0::'):
                    return line[3:].strip()
    except OSError:
        pass
    return None


def leave_cgroup(name, mountinfo=MOUNTINFO, cgroup=CGROUP):
    """Move this process into the cgroup v2 group ``/<name>``.

    :returns: the group's directory, or None when there is nothing to do
        (no name, no cgroup v2 hierarchy, already there).
    :raises OSError: the hierarchy is not writable for us.
    """
    mount = cgroup2_mount(mountinfo)
    if not name or mount is None or current_cgroup(cgroup) == '/' + name:
        return None
    group = os.path.join(mount, name)
    os.makedirs(group, mode=0o755, exist_ok=True)
    with open(os.path.join(group, 'cgroup.procs'), 'w') as procs:
        procs.write('%d\n' % os.getpid())
    return group


def move_out(name):
    """leave_cgroup() that logs its outcome instead of raising."""
    try:
        group = leave_cgroup(name)
    except OSError as exc:
        LOG.warning('Could not move the agent into its own cgroup %s (%s): '
                    'stopping the service that started it may stop the '
                    'agent too; run it under its systemd unit instead',
                    name, exc)
        return None
    if group:
        LOG.info('The agent runs in its own cgroup %s', group)
    return group


def detach():
    """Become a daemon: new session, fork, the parent exits at once.

    The fork makes the daemon a non-leader that can never acquire a
    terminal, and lets the caller reap the launcher at once. Descriptors
    opened before (the pid lock, the log file) stay open in the daemon.
    """
    if os.getsid(0) != os.getpid():
        os.setsid()
    if os.fork() > 0:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)
