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

"""Tests of tools/check_extras.py's own logic (run by tox -e extras)."""

import contextlib
import io
import os
import shutil
import stat
import tempfile
import unittest
import zipfile

import check_extras

ENTRY_POINTS = '''\
[console_scripts]
ironic-resilient = ironic_locking.cmd.ironic:main
os-brick-nvme-agent = os_brick_nvme_agent.cmd.agent:main

[oslo.config.opts]
cinder_resilience = cinder_resilience.opts:list_opts
'''


class ToolTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)

    def script(self, name, body):
        path = os.path.join(self.dir, name)
        with open(path, 'w') as stream:
            stream.write('#!/bin/sh\n' + body + '\n')
        os.chmod(path, stat.S_IRWXU)

    def test_wheel_contents(self):
        wheel = os.path.join(self.dir, 'x-1-py3-none-any.whl')
        with zipfile.ZipFile(wheel, 'w') as archive:
            archive.writestr('hook.pth', 'import sys\n')
            archive.writestr('pkg/sub.pth', '')
            archive.writestr('x-1.dist-info/entry_points.txt', ENTRY_POINTS)
        pth, scripts = check_extras.wheel_contents(wheel)
        self.assertEqual(['hook.pth'], pth)
        self.assertEqual({'ironic-resilient': 'ironic_locking',
                          'os-brick-nvme-agent': 'os_brick_nvme_agent'},
                         scripts)

    def test_missing_host_one_line(self):
        self.script('good', "echo \"good needs ironic: pip install "
                            "'openstack-resilience[ironic]'\" >&2; exit 1")
        self.assertIsNone(
            check_extras.check_missing_host(self.dir, 'good', 'ironic'))

    def test_missing_host_bad_answers(self):
        self.script('traceback', 'echo Traceback; echo "No module named '
                                 'ironic [ironic]"; exit 1')
        self.script('zero', "echo 'install [ironic]'; exit 0")
        self.script('unnamed', "echo 'No module named ironic'; exit 1")
        for name in ('traceback', 'zero', 'unnamed'):
            error = check_extras.check_missing_host(self.dir, name, 'ironic')
            self.assertIn('one line naming the extra [ironic]', error)

    def test_help(self):
        self.script('fine', 'echo "usage: fine [-h]"')
        self.script('broken', 'echo "usage: broken"; exit 2')
        self.assertIsNone(check_extras.check_help(self.dir, 'fine'))
        self.assertIn('rc 2', check_extras.check_help(self.dir, 'broken'))

    def test_checks_count(self):
        checks = check_extras.Checks()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            checks.record('a', None)
            checks.record('b', 'it broke')
        self.assertRegex(out.getvalue(), r'^PASS a .*\nFAIL b .*: it broke\n$')
        self.assertEqual((1, ['b']), (checks.passed, checks.failed))


if __name__ == '__main__':
    unittest.main()
