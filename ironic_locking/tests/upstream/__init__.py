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

"""ironic's own conductor tests, run with our TaskManager swapped in.

``tox -e upstream-ironic`` discovers this package. Its ``load_tests`` loads
ironic's installed ``test_task_manager`` and ``test_manager`` and wraps each
test so that, while (and only while) it runs:

* ``ironic.conductor.task_manager.TaskManager`` and ``acquire`` are ours
  (:mod:`ironic_locking.task_manager`), so that both the tests that build
  the class directly and the conductor code that calls ``acquire`` use it;
* our hand-off registry is a fresh one, as a new conductor process has
  (each of ironic's tests also gets a fresh database);
* with ``IRONIC_LOCKING_UPSTREAM_INTERVAL`` set (to seconds),
  ``[conductor] node_locked_retry_interval`` is that value whatever the
  test sets (ironic's tests set 0; ironic's default is 1).

Test ids stay ironic's, so stestr filters work as for ironic's own runs.
"""

import contextlib
import os
from unittest import mock

# Selects oslo.service's threading backend before ironic's conductor
# modules are imported, as ironic's own test package does.
import ironic.tests.unit  # noqa: F401
from ironic.conductor import task_manager as ironic_task_manager  # noqa: H306
from ironic.tests import base as ironic_test_base

from ironic_locking import handoff
from ironic_locking import task_manager

MODULES = (
    'ironic.tests.unit.conductor.test_task_manager',
    'ironic.tests.unit.conductor.test_manager',
)
INTERVAL_ENV = 'IRONIC_LOCKING_UPSTREAM_INTERVAL'


def _forced_interval_config(interval):
    real_config = ironic_test_base.TestCase.config

    def config(self, **kw):
        if 'node_locked_retry_interval' in kw:
            kw['node_locked_retry_interval'] = interval
        return real_config(self, **kw)
    return config


class SwappedTest(object):
    """One of ironic's tests, run with our task manager in ironic's place."""

    def __init__(self, test, interval=None):
        self._test = test
        self._interval = interval

    def id(self):
        return self._test.id()

    def __str__(self):
        return str(self._test)

    def shortDescription(self):
        return self._test.shortDescription()

    def countTestCases(self):
        return 1

    def __call__(self, result=None):
        return self.run(result)

    def run(self, result=None):
        with contextlib.ExitStack() as stack:
            patches = [
                mock.patch.object(ironic_task_manager, 'TaskManager',
                                  task_manager.TaskManager),
                mock.patch.object(ironic_task_manager, 'acquire',
                                  task_manager.acquire),
                mock.patch.object(task_manager.TaskManager, 'handoff',
                                  handoff.Registry()),
            ]
            if self._interval is not None:
                patches.append(mock.patch.object(
                    ironic_test_base.TestCase, 'config',
                    _forced_interval_config(self._interval)))
            for patch in patches:
                stack.enter_context(patch)
            return self._test.run(result)


def _tests(suite):
    for item in suite:
        if hasattr(item, '__iter__'):
            yield from _tests(item)
        else:
            yield item


def load_tests(loader, standard_tests, pattern):
    interval = os.environ.get(INTERVAL_ENV)
    interval = int(interval) if interval else None
    suite = loader.suiteClass()
    for name in MODULES:
        for test in _tests(loader.loadTestsFromName(name)):
            suite.addTest(SwappedTest(test, interval))
    return suite
