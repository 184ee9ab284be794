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
of a replicated NVMe-oF volume. This is the only part of the agent that
runs inside the host service (nova-compute, cinder-volume). It reads the
agent's own config file; when the file is absent or ``[nvme_agent]
enabled`` is false it returns at once. Otherwise, if no agent holds the
lock, it has the agent started (:mod:`os_brick_nvme_agent.starter`):
by systemd where systemd runs the host, else by the detaching launcher.
A failed start is logged once at ERROR, and again only when its message
changes; every connect tries again.
"""

import collections
import os
import sys

from oslo_log import log as logging

from os_brick_nvme_agent import pidlock

LOG = logging.getLogger(__name__)

DEFAULT_CONFIG_FILE = '/etc/os-brick-nvme-agent/agent.conf'
CONFIG_FILE_ENV = 'OS_BRICK_NVME_AGENT_CONFIG'

# Re-exported: callers check the lock through the hook.
is_running = pidlock.is_running
pid_file = pidlock.pid_file

Settings = collections.namedtuple(
    'Settings', 'enabled state_dir python start_method systemd_unit')

# (path, mtime_ns, size) -> Settings: re-parse the file only when it
# changes.
_settings_cache = {}
# The last failed start's message, logged at ERROR once.
_last_failure = {}


def config_file():
    return os.environ.get(CONFIG_FILE_ENV) or DEFAULT_CONFIG_FILE


def load_settings(path):
    """:class:`Settings` from the agent config file, or None."""
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
        _settings_cache[key] = Settings(
            group.enabled, group.state_dir, group.python or sys.executable,
            group.start_method, group.systemd_unit)
    return _settings_cache[key]


def _report(error):
    """Log a failed start at ERROR once per distinct message."""
    if _last_failure.get('error') == error:
        LOG.debug('The NVMe-oF healing agent still cannot start: %s', error)
        return
    _last_failure['error'] = error
    LOG.error('The NVMe-oF healing agent did not start: %s. Volumes stay '
              'attached, but nothing will heal their replicas until this '
              'is fixed.', error)


def _ensure_running(connector):
    path = config_file()
    settings = load_settings(path)
    if settings is None or not settings.enabled:
        return False
    if pidlock.is_running(settings.state_dir):
        _last_failure.clear()
        return False
    from os_brick_nvme_agent import starter
    method = starter.start_method(settings.start_method)
    argv = starter.command(method, settings.python, path,
                           settings.systemd_unit)
    log = LOG.debug if _last_failure else LOG.info
    log('Starting the NVMe-oF healing agent (config %s, %s) for %s',
        path, method, type(connector).__name__)
    error = starter.start(argv)
    if error:
        _report(error)
        return False
    _last_failure.clear()
    return True


class NVMeOFAgent(object):
    """What os-brick's NVMe-oF connector looks for in ``nvmeof_agent``."""

    @staticmethod
    def ensure_running(connector):
        """Start the agent if it is enabled and not running; never raises.

        :param connector: the os-brick ``NVMeOFConnector`` that connected.
        :returns: True if the agent was started.
        """
        try:
            return _ensure_running(connector)
        except Exception as exc:
            # An exception here would reach connect_volume, which then
            # disconnects the legs it has just assembled: losing a working
            # volume is far worse than a missing healing agent.
            LOG.debug('Hook failure', exc_info=True)
            _report('%s: %s' % (type(exc).__name__, exc))
            return False
