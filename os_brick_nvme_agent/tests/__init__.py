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

"""Tests of the NVMe-oF healing agent (os_brick_nvme_agent).

:func:`missing` is how a test says that a part it needs from the machine
(a server binary, qemu, the test kernel, a backend's client library) is
absent. On a developer's machine the test skips; when ``CI`` is set (CI
sets ``CI=true``), bindep.txt and tox have installed every part, so a
missing one is a broken set-up and the test fails instead of hiding it.
"""

import os
import unittest

#: Values of ``CI`` that mean "not under CI".
_NOT_SET = ('', '0', 'false', 'no', 'off')


def under_ci():
    """True when the ``CI`` environment variable is set to a true value."""
    return os.environ.get('CI', '').strip().lower() not in _NOT_SET


def missing(reason):
    """The exception a test raises when a part it needs is missing.

    :param reason: what is missing and how to install it (one line).
    :returns: ``unittest.SkipTest`` (a skip), or ``AssertionError`` (a
        failure) when :func:`under_ci`.
    """
    if under_ci():
        return AssertionError('%s (CI is set: a missing part fails the '
                              'run instead of skipping)' % reason)
    return unittest.SkipTest(reason)
