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

"""Console scripts that run ironic's own commands with the plugin applied.

Each script registers this plugin's options, installs
:func:`ironic_locking.loader.acquire` in place of ironic's
``ironic.conductor.task_manager.acquire`` and hands over to ironic's own
``main``. The patch is made before ironic starts (and before any worker
process is forked), so every conductor thread sees it.
"""

import sys


def run(ironic_main):
    """Apply the plugin, then run one of ironic's command mains.

    :param ironic_main: ironic's ``main`` callable.
    :returns: what ``ironic_main`` returns (it usually exits instead).
    """
    # NOTE: imported here, not at the top: ``ironic.command`` selects
    # oslo.service's threading backend and must come before ironic's
    # conductor modules (which the loader imports) pull in oslo.service;
    # importing this package alone (test discovery does) stays harmless.
    from ironic import command as _ironic_command  # noqa: F401
    from oslo_config import cfg

    from ironic_locking import loader
    from ironic_locking import opts

    # ironic refuses to start if its conductor manager was imported before
    # its configuration was parsed; neither may the plugin import it.
    assert 'ironic.conductor.manager' not in sys.modules
    opts.register_opts(cfg.CONF)
    loader.install()
    return ironic_main()
