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

import os

import fixtures
import testtools

from os_brick_nvme_agent import daemonize

# /proc/self/mountinfo of a host with the hybrid (v1 + v2) layout
MOUNTINFO = '''\
24 31 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 24 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/systemd rw shared:11 - cgroup cgroup rw,name=sd
'''


class CgroupTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, 'w') as handle:
            handle.write(text)
        return path

    def test_cgroup2_mount_and_current_cgroup(self):
        self.assertEqual('/sys/fs/cgroup/unified', daemonize.cgroup2_mount(
            self.write('mountinfo', MOUNTINFO)))
        self.assertIsNone(daemonize.cgroup2_mount(self.write(
            'v1', MOUNTINFO.replace('cgroup2 cgroup2', 'tmpfs tmpfs'))))
        self.assertEqual('/system.slice/nova-compute.service',
                         daemonize.current_cgroup(self.write(
                             'cgroup', '1:name=systemd:/x\n'
                             '0::/system.slice/nova-compute.service\n')))
        self.assertIsNone(daemonize.current_cgroup('/nonexistent'))

    def test_leave_cgroup_moves_this_process(self):
        mount = os.path.join(self.dir, 'cg')
        os.mkdir(mount)
        mountinfo = self.write('mountinfo', MOUNTINFO.replace(
            '/sys/fs/cgroup/unified', mount))
        cgroup = self.write('cgroup', '0::/system.slice/nova.service\n')
        group = daemonize.leave_cgroup('agent', mountinfo, cgroup)
        self.assertEqual(os.path.join(mount, 'agent'), group)
        with open(os.path.join(group, 'cgroup.procs')) as handle:
            self.assertEqual('%d\n' % os.getpid(), handle.read())
        # already there, no name, or no cgroup v2: nothing to do
        cgroup = self.write('cgroup', '0::/agent\n')
        self.assertIsNone(daemonize.leave_cgroup('agent', mountinfo, cgroup))
        self.assertIsNone(daemonize.leave_cgroup('', mountinfo, cgroup))
        self.assertIsNone(daemonize.leave_cgroup('agent', '/nonexistent'))

    def test_move_out_failure_is_a_warning_not_a_stop(self):
        logger = self.useFixture(fixtures.FakeLogger(
            name='os_brick_nvme_agent.daemonize'))
        self.useFixture(fixtures.MockPatchObject(
            daemonize, 'leave_cgroup',
            side_effect=PermissionError(13, 'Permission denied')))
        self.assertIsNone(daemonize.move_out('os-brick-nvme-agent'))
        self.assertIn('Could not move the agent into its own cgroup '
                      'os-brick-nvme-agent ([Errno 13] Permission denied)',
                      logger.output)

    def test_systemd_booted(self):
        self.assertFalse(daemonize.systemd_booted(self.dir))
        os.makedirs(os.path.join(self.dir, 'run/systemd/system'))
        os.makedirs(os.path.join(self.dir, 'proc/1'))
        self.write('proc/1/comm', 'tini\n')
        self.assertFalse(daemonize.systemd_booted(self.dir))
        self.write('proc/1/comm', 'systemd\n')
        self.assertTrue(daemonize.systemd_booted(self.dir))
