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

"""The os-brick hook: start the healing agent after a replicated connect.

os-brick calls :meth:`NVMeOFAgent.ensure_running` (through the module
``os_brick.initiator.connectors.nvmeof_agent``, see
:mod:`os_brick_nvme_agent._hook_loader`) after it assembled the MD array
of a replicated NVMe-oF volume. The hook reads the agent's own config
file; when the file is absent or ``[nvme_agent] enabled`` is false it
returns at once. Otherwise it checks the daemon's lock and, if no agent
holds it, starts ``os-brick-nvme-agent run --detach`` in a new session
with its standard streams on /dev/null, so the agent outlives the service
(nova-compute, cinder-volume) that connected the volume.
"""

import errno
import fcntl
import os
import subprocess
import sys
import sysconfig

from oslo_log import log as logging

from os_brick_nvme_agent import _hook_loader

LOG = logging.getLogger(__name__)

DEFAULT_CONFIG_FILE = '/etc/os-brick-nvme-agent/agent.conf'
CONFIG_FILE_ENV = 'OS_BRICK_NVME_AGENT_CONFIG'
PID_FILE = 'agent.pid'
SPAWN_TIMEOUT = 30

# (path, mtime_ns, size) -> (enabled, state_dir, python): re-parse the file
# only when it changes.
_settings_cache = {}


def config_file():
    return os.environ.get(CONFIG_FILE_ENV) or DEFAULT_CONFIG_FILE


def load_settings(path):
    """(enabled, state_dir, python) from the agent config file, or None."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _settings_cache:
        # Imported here: a host without the agent enabled never pays for it.
        from oslo_config import cfg

        from os_brick_nvme_agent import opts
        conf = cfg.ConfigOpts()  # never the host service's global CONF
        opts.register_opts(conf)
        conf(args=[], default_config_files=[path], default_config_dirs=[],
             project='os-brick-nvme-agent')
        group = conf.nvme_agent
        _settings_cache.clear()
        _settings_cache[key] = (group.enabled, group.state_dir,
                                group.python or sys.executable)
    return _settings_cache[key]


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


def daemon_argv(python, path):
    return [python, '-m', 'os_brick_nvme_agent.cmd.agent', 'run',
            '--detach', '--config-file', path]


def spawn(python, path, popen=subprocess.Popen):
    """Start the daemon detached; returns once the launcher has forked."""
    proc = popen(daemon_argv(python, path), stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                 close_fds=True, start_new_session=True, cwd='/')
    try:
        # The launcher forks the daemon and exits at once; reaping it here
        # leaves no zombie in the calling service.
        proc.wait(timeout=SPAWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        LOG.warning('The NVMe agent launcher (pid %s) did not exit within '
                    '%ss', proc.pid, SPAWN_TIMEOUT)
    return proc


def _ensure_running(connector):
    path = config_file()
    settings = load_settings(path)
    if settings is None or not settings[0]:
        return False
    enabled, state_dir, python = settings
    if is_running(state_dir):
        return False
    LOG.info('Starting the NVMe-oF healing agent (config %s) for %s',
             path, type(connector).__name__)
    spawn(python, path)
    return True


class NVMeOFAgent(object):
    """What os-brick's NVMe-oF connector looks for in ``nvmeof_agent``."""

    @staticmethod
    def ensure_running(connector):
        """Start the agent if it is enabled and not running; never raises.

        :param connector: the os-brick ``NVMeOFConnector`` that connected.
        :returns: True if a daemon was started.
        """
        try:
            return _ensure_running(connector)
        except Exception:
            # An exception here would reach connect_volume, which then
            # disconnects the legs it has just assembled: losing a working
            # volume is far worse than a missing healing agent.
            LOG.exception('Could not start the NVMe-oF healing agent')
            return False


# Installing and removing the .pth file (the fallback to the packaged one).

def site_dir():
    return sysconfig.get_paths()['purelib']


def install_pth(directory=None):
    path = os.path.join(directory or site_dir(), _hook_loader.PTH_NAME)
    tmp = path + '.tmp'
    with open(tmp, 'w') as handle:
        handle.write(_hook_loader.PTH_LINE)
    os.replace(tmp, path)
    return path


def remove_pth(directory=None):
    path = os.path.join(directory or site_dir(), _hook_loader.PTH_NAME)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return None
    return path


def hook_status(directory=None, python=None):
    """(pth path or None, importable in a fresh interpreter: bool)."""
    path = os.path.join(directory or site_dir(), _hook_loader.PTH_NAME)
    # A fresh interpreter processes the .pth files of its site-packages;
    # another directory is processed as a site directory explicitly.
    probe = subprocess.run(
        [python or sys.executable, '-c',
         'import importlib, site, sys\n'
         'if sys.argv[1]:\n'
         '    site.addsitedir(sys.argv[1])\n'
         'mod = importlib.import_module(%r)\n'
         'sys.exit(0 if hasattr(mod, "NVMeOFAgent") else 1)'
         % _hook_loader.TARGET, directory or ''],
        stdin=subprocess.DEVNULL, capture_output=True, check=False)
    return (path if os.path.exists(path) else None), probe.returncode == 0
