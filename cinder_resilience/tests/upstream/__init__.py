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

"""cinder's own unit tests, run from the installed cinder with our plugin.

``tox -e upstream-cinder`` (stestr ``--test-path`` this package) loads
``cinder.tests.unit.test_coordination`` and the modules of
``cinder.tests.unit.volume`` (its ``drivers`` subpackage aside: thousands
of vendor-driver tests that never create a volume manager and mock tooz)
and enables the plugin in their configuration:

* ``volume_manager`` defaults to ``cinder_resilience.manager.VolumeManager``
  (cinder's tests create their managers from that option);
* before each test's ``setUp``, ``coordination_service.enable()`` installs
  the host patches, so the ``COORDINATOR.start()`` of cinder's test base is
  served by our coordinator; after the test (after cinder's own cleanups)
  ``disable()`` runs as ``Service.stop()`` would, and the test fails if
  any patch or a started coordinator is left behind.

``RESILIENCE_UPSTREAM_STOCK=1`` runs the same tests without the plugin, to
know upstream's own baseline on this machine.
"""

import os
import pkgutil
import unittest

STOCK = os.environ.get('RESILIENCE_UPSTREAM_STOCK') == '1'


def _volume_modules():
    from cinder.tests.unit import volume
    names = []
    for info in pkgutil.walk_packages(volume.__path__, volume.__name__ + '.'):
        if '.drivers' in info.name[len(volume.__name__):]:
            continue
        if info.name.rsplit('.', 1)[-1].startswith('test_'):
            names.append(info.name)
    return sorted(names)


def _enable_plugin_config():
    from cinder.common import config  # noqa: F401 (registers the option)
    from oslo_config import cfg
    cfg.CONF.set_default('volume_manager',
                         'cinder_resilience.manager.VolumeManager')


def _nothing_left_behind():
    from cinder import coordination as cinder_coordination
    from oslo_concurrency import lockutils
    from tooz import coordination as tooz_coordination

    from cinder_resilience import coordination
    from cinder_resilience import host_patches
    left = [patch.name for patch in host_patches.PATCHES if patch.installed]
    if cinder_coordination.coordination is not tooz_coordination:
        left.append('cinder.coordination.coordination')
    if hasattr(lockutils.external_lock, 'routed_to'):
        left.append('lockutils.external_lock')
    if coordination.COORDINATOR.started:
        left.append('a started cinder_resilience coordinator')
    if left:
        raise AssertionError('left behind after the test: %s'
                             % ', '.join(left))


def _with_plugin(test):
    from cinder_resilience import coordination_service
    original = test.setUp

    def setUp():
        coordination_service.enable()
        test.addCleanup(_nothing_left_behind)
        test.addCleanup(coordination_service.disable)
        original()

    test.setUp = setUp


def _tests(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _tests(item)
        else:
            yield item


def load_tests(loader, standard_tests, pattern):
    names = ['cinder.tests.unit.test_coordination'] + _volume_modules()
    loaded = loader.loadTestsFromNames(names)
    suite = unittest.TestSuite()
    if not STOCK:
        _enable_plugin_config()
    for test in _tests(loaded):
        if not STOCK and hasattr(test, 'setUp'):
            _with_plugin(test)
        suite.addTest(test)
    return suite
