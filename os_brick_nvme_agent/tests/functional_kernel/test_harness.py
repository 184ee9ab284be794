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

"""The pure parts of the kernel harness: tools/kernel/build.py, guest.py.

No qemu here; the tests that need the downloaded kernel package skip
without it (fail when ``CI`` is set).
"""

import importlib.util
import io
import lzma
import os
import pathlib
import shlex
import struct

import fixtures
import testtools

from os_brick_nvme_agent import tests
from os_brick_nvme_agent.tests.functional_kernel import guest
from os_brick_nvme_agent.tests.functional_kernel import test_scenarios

BUILD_PY = guest.REPO / 'tools' / 'kernel' / 'build.py'


def load_build():
    spec = importlib.util.spec_from_file_location('kernel_build', BUILD_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_newc(data):
    """Parse a newc archive: list of (name, mode, body)."""
    entries, offset = [], 0
    while True:
        header = data[offset:offset + 110]
        assert header[:6] == b'070701', header[:6]
        fields = [int(header[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        offset += 110
        name = data[offset:offset + namesize - 1].decode()
        offset += namesize + (-(110 + namesize) % 4)
        body = data[offset:offset + size]
        offset += size + (-size % 4)
        if name == 'TRAILER!!!':
            return entries
        entries.append((name, mode, body))


class TestCpio(testtools.TestCase):

    def test_roundtrip(self):
        build = load_build()
        stream = io.BytesIO()
        cpio = build.Cpio(stream)
        cpio.file('usr/sbin/tool', b'#!/bin/sh\n', 0o755)
        cpio.symlink('bin/sh', 'busybox')
        cpio.file('/lib/modules/x/a.ko', b'\0' * 5)
        cpio.close()
        entries = read_newc(stream.getvalue())
        by_name = {name: (mode, body) for name, mode, body in entries}
        self.assertEqual((0o100755, b'#!/bin/sh\n'), by_name['usr/sbin/tool'])
        self.assertEqual((0o120777, b'busybox'), by_name['bin/sh'])
        self.assertEqual(0o040755, by_name['lib/modules/x'][0])
        # parents come before children, each directory once
        names = [name for name, _mode, _body in entries]
        self.assertLess(names.index('lib'), names.index('lib/modules'))
        self.assertEqual(len(names), len(set(names)))


class TestExtractVmlinux(testtools.TestCase):

    def _bzimage(self, payload, setup_sects=1):
        data = bytearray((setup_sects + 1) * 512)
        data[0x1f1] = setup_sects
        data[0x202:0x206] = b'HdrS'
        struct.pack_into('<II', data, 0x248, 16, len(payload))
        return bytes(data) + b'\0' * 16 + payload + b'\0\0\0\0'

    def test_xz_payload(self):
        build = load_build()
        elf = b'\x7fELF' + os.urandom(1000)
        path = self.useFixture(fixtures.TempDir()).join('bz')
        pathlib.Path(path).write_bytes(self._bzimage(
            lzma.compress(elf, format=lzma.FORMAT_XZ)))
        self.assertEqual(elf, build.extract_vmlinux(path))

    def test_not_a_bzimage(self):
        build = load_build()
        path = self.useFixture(fixtures.TempDir()).join('bz')
        pathlib.Path(path).write_bytes(b'\0' * 4096)
        self.assertRaises(ValueError, build.extract_vmlinux, path)


class TestModules(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.build = load_build()
        roots = sorted((self.build.cache_dir() / 'pkg').glob(
            '*/lib/modules/*'))
        if not roots:
            raise tests.missing(
                'kernel package not unpacked: tools/kernel/build.sh')
        self.modroot = roots[-1]

    def test_dependencies_come_first(self):
        order = [ko.stem for ko in self.build.module_order(
            self.modroot, ('raid1', 'nvmet-tcp'))]
        self.assertLess(order.index('md-mod'), order.index('raid1'))
        self.assertLess(order.index('nvmet'), order.index('nvmet-tcp'))
        self.assertLess(order.index('configfs'), order.index('nvmet'))


class TestGuestCommands(testtools.TestCase):

    def test_qemu_command(self):
        argv = guest.qemu_command(pathlib.Path('/k'), '/w d', 'job.sh', 30)
        self.assertIn('-no-reboot', argv)
        self.assertEqual('/k/vmlinux', argv[argv.index('-kernel') + 1])
        append = argv[argv.index('-append') + 1]
        self.assertIn('rsjob=job.sh', append)
        self.assertIn('rstimeout=30', append)
        shares = [argv[i + 1] for i, a in enumerate(argv) if a == '-virtfs']
        self.assertIn('readonly=on', shares[1])
        self.assertNotIn('readonly', shares[0])

    def test_job_script_quotes_paths(self):
        script = test_scenarios.job_script('/v env/bin/python', '/tmp/a b',
                                           ['fail'])
        line = script.splitlines()[1]
        words = shlex.split(line)
        self.assertEqual(['exec', 'chroot', '/host', '/usr/bin/env', '-i'],
                         words[:5])
        inner = shlex.split(words[-1])
        self.assertIn('/v env/bin/python', inner)
        self.assertEqual(['--workdir', '/tmp/a b', 'fail'], inner[-3:])


class TestMissingKernel(testtools.TestCase):
    """The scenario tests turn a missing qemu into tests.missing()."""

    def test_missing_qemu_fails_the_scenarios_under_ci(self):
        self.useFixture(fixtures.EnvironmentVariable('CI', 'true'))
        self.useFixture(fixtures.EnvironmentVariable('PATH', '/nonexistent'))
        self.useFixture(fixtures.EnvironmentVariable(
            test_scenarios.ENABLE_ENV))
        for attr in ('results', 'error', 'fixture'):
            self.useFixture(fixtures.MonkeyPatch(
                'os_brick_nvme_agent.tests.functional_kernel.test_scenarios.'
                '_Run.' + attr, None))
        error = self.assertRaises(AssertionError, test_scenarios._Run.get)
        self.assertIn('qemu-system-x86_64 is not installed', str(error))
