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

"""Replica provisioner plugins and their loader."""

from importlib import metadata as importlib_metadata

from oslo_log import log as logging
from stevedore import driver
from stevedore import exception as stevedore_exception

from os_brick_nvme_agent import exception

LOG = logging.getLogger(__name__)

NAMESPACE = 'os_brick_nvme_agent.provisioners'

__all__ = ['NAMESPACE', 'load']


def load(name, conf):
    """Load and instantiate the provisioner plugin called ``name``.

    :param name: an entry-point name under :data:`NAMESPACE` (the value of
        ``[nvme_agent] provisioner``).
    :param conf: the ``ConfigOpts`` handed to the plugin.
    :returns: a :class:`~os_brick_nvme_agent.provisioners.base.Provisioner`.
    :raises ProvisionerNotFound: no plugin of that name is installed.
    :raises ProvisionerError: the plugin is installed but failed to load.
    """
    try:
        manager = driver.DriverManager(
            NAMESPACE, name, invoke_on_load=True, invoke_args=(conf,),
            on_load_failure_callback=_load_failed)
    except stevedore_exception.NoMatches:
        raise exception.ProvisionerNotFound(
            'No replica provisioner named %r is installed (option '
            '[nvme_agent] provisioner; entry-point namespace %s). Installed: '
            '%s' % (name, NAMESPACE, ', '.join(_installed()) or 'none'))
    LOG.info('Using replica provisioner %s', name)
    return manager.driver


def _load_failed(manager, entrypoint, exc):
    """Say why an installed plugin failed, instead of "not installed"."""
    raise exception.ProvisionerError(
        'Replica provisioner %r (%s) failed to load: %s: %s'
        % (entrypoint.name, entrypoint.value, type(exc).__name__, exc)
    ) from exc


def _installed():
    return sorted({ep.name for ep in
                   importlib_metadata.entry_points(group=NAMESPACE)})
