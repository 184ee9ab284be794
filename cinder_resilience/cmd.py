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

"""Console scripts: cinder's own commands with cinder's coordinator ours.

cinder-volume needs none: ``volume_manager =
cinder_resilience.manager.VolumeManager`` enables the plugin.  The other
services that start ``cinder.coordination.COORDINATOR`` (and take locks
through it) do not load our manager, so these wrappers enable it and hand
over to cinder's ``main``:

``cinder-api-resilient``
    ``cinder.cmd.api.main`` (cinder's API takes ``attachment_update``
    locks); for uWSGI or mod_wsgi use ``cinder_resilience.wsgi`` instead of
    ``cinder.wsgi.api``.
``cinder-backup-resilient``
    ``cinder.cmd.backup.main`` (the NFS backup driver's mount lock).

cinder-scheduler starts no coordinator and needs none.
"""

import importlib
import sys


def _run(module_name):
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        sys.exit('%s: cinder is not installed here (%s); install '
                 'openstack-resilience with the [cinder] extra in cinder\'s '
                 'environment' % (sys.argv[0], exc))
    from cinder_resilience import coordination_service
    coordination_service.enable()
    return module.main()


def api():
    """cinder-api with cinder's coordinator served by ours."""
    return _run('cinder.cmd.api')


def backup():
    """cinder-backup with cinder's coordinator served by ours."""
    return _run('cinder.cmd.backup')
