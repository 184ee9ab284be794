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

"""Recorded fixtures for the host-layer tests, and test isolation."""

import atexit
import fnmatch
import os
import shutil
import sys
import tarfile
import tempfile
from unittest import mock

import fixtures

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
DOC = os.path.join(HERE, 'doc')
#: The real-kernel recordings, one root tree per state (see
#: fixtures/REAL-README.rst). Kept as one archive: the trees hold 3,000 small
#: files and sysfs's symbolic links, loops included, which no wheel or sdist
#: build copies.
REAL_ARCHIVE = os.path.join(HERE, 'real.tar.xz')
_unpacked = []


def read(name, directory=DOC):
    with open(os.path.join(directory, name)) as handle:
        return handle.read()


def real_dir():
    """The unpacked recordings; unpacked once per process, removed at exit.

    :raises FileNotFoundError: the archive is missing, so that a test over
        the recordings fails instead of passing over none.
    """
    if not _unpacked:
        target = tempfile.mkdtemp(prefix='nvme-agent-real-')
        atexit.register(shutil.rmtree, target, True)
        with tarfile.open(REAL_ARCHIVE) as archive:
            # Our own archive; 'tar' keeps the absolute /dev/md/* links the
            # host had and still refuses members outside the target.
            archive.extractall(target, filter='tar')
        _unpacked.append(os.path.join(target, 'real'))
    return _unpacked[0]


def _walk(top=None):
    """os.walk that never follows links: recorded sysfs has link loops."""
    return os.walk(real_dir() if top is None else top, followlinks=False)


def real_files(pattern):
    """Recordings from a real kernel whose name matches ``pattern``."""
    found = []
    for directory, _dirs, files in _walk():
        found.extend(os.path.join(directory, name) for name in files
                     if fnmatch.fnmatch(name, pattern)
                     and not os.path.islink(os.path.join(directory, name)))
    return sorted(found)


def real_roots():
    """Recorded trees under fixtures/real that hold a sys/block directory."""
    top = real_dir()
    return [os.path.join(top, entry) for entry in sorted(os.listdir(top))
            if os.path.isdir(os.path.join(top, entry, 'sys', 'block'))]


class IsolatedImports(fixtures.Fixture):
    """Undo, after the test, what it did to sys.meta_path and sys.modules.

    The hook tests install import finders and import os-brick's connector
    afresh; the rest of the test process must not see either.
    """

    def _setUp(self):
        self.useFixture(fixtures.MockPatchObject(sys, 'meta_path',
                                                 list(sys.meta_path)))
        modules = mock.patch.dict(sys.modules)
        modules.start()
        self.addCleanup(modules.stop)
