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

"""How the os-brick hook starts the agent, inside the host service.

Where systemd is PID 1 (``start_method = auto`` or ``systemd``) the hook
runs ``systemctl start <systemd_unit>``, through ``sudo -n`` when the
service does not run as root (see the admin guide for the sudoers
line): the agent then lives in its own unit and cgroup, and systemd
restarts it. Elsewhere it runs the launcher,
``os-brick-nvme-agent run --detach``, which validates the configuration,
the logging and the dependencies before it forks the daemon and exits.

Either way the starter waits for the command and returns its failure
as one line, which the hook logs.
"""

import os
import subprocess

from os_brick_nvme_agent import daemonize

#: Seconds the hook waits for the launcher or systemctl.
START_TIMEOUT = 60

__all__ = ['start_method', 'command', 'describe', 'start']


def start_method(configured, booted=None):
    """'systemd' or 'detach' for the ``start_method`` option value."""
    if configured == 'auto':
        booted = booted or daemonize.systemd_booted
        return 'systemd' if booted() else 'detach'
    return configured


def command(method, python, config_file, unit):
    """The argument list that starts the agent."""
    if method == 'systemd':
        argv = ['systemctl', 'start', unit]
        return argv if os.geteuid() == 0 else ['sudo', '-n'] + argv
    return [python, '-m', 'os_brick_nvme_agent.cmd.agent', 'run',
            '--detach', '--config-file', config_file]


def _last_line(text):
    lines = [line.strip() for line in (text or '').splitlines()
             if line.strip()]
    return lines[-1] if lines else ''


def describe(argv):
    """A short name of the start command for messages."""
    if 'systemctl' in argv:
        return ' '.join(argv[argv.index('systemctl'):])
    return 'the agent launcher (%s run --detach)' % argv[0]


def start(argv, run=subprocess.run, timeout=START_TIMEOUT):
    """Run ``argv`` and wait for it.

    The launcher exits once the daemon is forked, and systemctl once the
    unit reported ready, so this takes as long as validating the
    configuration does.

    :returns: None on success, else one line saying what went wrong.
    """
    try:
        proc = run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, text=True, close_fds=True,
                   start_new_session=True, cwd='/', timeout=timeout,
                   check=False)
    except subprocess.TimeoutExpired:
        return '%s did not finish within %ss' % (describe(argv), timeout)
    except OSError as exc:
        return '%s: %s' % (describe(argv), exc)
    if proc.returncode != 0:
        return '%s exited with status %s: %s' % (
            describe(argv), proc.returncode,
            _last_line(proc.stderr) or 'no message')
    return None
