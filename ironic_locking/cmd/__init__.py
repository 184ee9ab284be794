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
process is forked), so every conductor thread sees it. Right after ironic
has read its configuration, the plugin's configuration is checked; a bad
value stops the command with one line naming the option.

Nothing of ironic is imported at module level: in an environment without
ironic (an install without the ``[ironic]`` extra) the scripts say so in
one line and exit with status 1.
"""

import importlib
import sys

EXTRA = 'openstack-resilience[ironic]'


def _ironic_main(prog, module):
    """ironic's ``main`` of ``module``, or exit naming the extra."""
    try:
        # ``ironic.command`` selects oslo.service's threading backend; it
        # must come before ironic's conductor modules (which the loader
        # imports) pull in oslo.service.
        importlib.import_module('ironic.command')
        return importlib.import_module(module).main
    except ImportError as error:
        sys.exit('%s: ironic is not installed in this environment (%s); '
                 'install %s' % (prog, error, EXTRA))


def _checking(prepare_service, prog):
    """Wrap ironic's ``prepare_service``: check our options right after."""
    from ironic_locking import exception
    from ironic_locking import loader

    def prepare(*args, **kwargs):
        result = prepare_service(*args, **kwargs)
        try:
            loader.check_configuration()
            return result
        except exception.ConfigurationError as error:
            problem = str(error)
        conf = loader.CONF
        if conf.log_file or conf.log_dir:
            # Logging goes to a file: say it there too. Otherwise it goes
            # to stderr, where the line below is enough.
            loader.LOG.error('Refusing to start: %s', problem)
        sys.exit('%s: %s' % (prog, problem))
    return prepare


def run(prog, module):
    """Apply the plugin, then run the ``main`` of an ironic command.

    :param prog: the console script's name, for messages.
    :param module: the ironic command module, e.g.
        ``ironic.command.conductor``.
    :returns: what ironic's ``main`` returns (it usually exits instead).
    """
    ironic_main = _ironic_main(prog, module)
    from ironic.common import service as ironic_service
    from oslo_config import cfg

    from ironic_locking import loader
    from ironic_locking import opts

    # ironic refuses to start if its conductor manager was imported before
    # its configuration was parsed; neither may the plugin import it.
    assert 'ironic.conductor.manager' not in sys.modules
    opts.register_opts(cfg.CONF)
    loader.install()
    real_prepare = ironic_service.prepare_service
    ironic_service.prepare_service = _checking(real_prepare, prog)
    try:
        return ironic_main()
    finally:
        ironic_service.prepare_service = real_prepare
