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

from os_brick_nvme_agent.host import md_sysfs


def write_md_dir(base, values, members):
    """Write an md sysfs directory: attribute values and dev-* members."""
    md = os.path.join(base, 'md')
    os.makedirs(md)
    for attr, value in values.items():
        with open(os.path.join(md, attr), 'w') as handle:
            handle.write(value + '\n')
    for device, (state, slot) in members.items():
        entry = os.path.join(md, 'dev-' + device)
        os.makedirs(entry)
        for attr, value in (('state', state), ('slot', slot)):
            if value is not None:
                with open(os.path.join(entry, attr), 'w') as handle:
                    handle.write(value + '\n')
        os.symlink('../../../' + device, os.path.join(entry, 'block'))
    return md


DEGRADED = {'level': 'raid1', 'raid_disks': '2', 'degraded': '1',
            'array_state': 'active', 'sync_action': 'idle'}


class ParseTest(testtools.TestCase):

    def test_member_state(self):
        self.assertEqual(frozenset({'in_sync', 'failfast'}),
                         md_sysfs.parse_member_state('in_sync,failfast\n'))
        self.assertEqual(frozenset({'faulty'}),
                         md_sysfs.parse_member_state('faulty\n'))
        self.assertIsNone(md_sysfs.parse_member_state('in_sync,bogus\n'))
        self.assertIsNone(md_sysfs.parse_member_state('\n'))
        self.assertIsNone(md_sysfs.parse_member_state(None))

    def test_slot(self):
        self.assertIsNone(md_sysfs.parse_slot('none\n'))
        self.assertEqual(1, md_sysfs.parse_slot('1\n'))
        self.assertRaises(ValueError, md_sysfs.parse_slot, '-1\n')
        self.assertRaises(ValueError, md_sysfs.parse_slot, None)

    def test_words_and_ints(self):
        self.assertEqual('clean', md_sysfs.parse_array_state('clean\n'))
        self.assertEqual('active-idle',
                         md_sysfs.parse_array_state('active-idle\n'))
        self.assertIsNone(md_sysfs.parse_array_state('exploded\n'))
        self.assertEqual('recover', md_sysfs.parse_sync_action('recover\n'))
        self.assertIsNone(md_sysfs.parse_sync_action(None))
        self.assertEqual(1, md_sysfs.parse_int('1\n'))
        self.assertIsNone(md_sysfs.parse_int('one\n'))
        self.assertIsNone(md_sysfs.parse_int(None))


class ReadMdDirTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.base = self.useFixture(fixtures.TempDir()).path

    def test_degraded_array(self):
        md = write_md_dir(self.base, DEGRADED, {
            'nvme1n1': ('in_sync,failfast', '0'),
            'nvme2n1': ('faulty,failfast', 'none')})
        result = md_sysfs.read_md_dir(md, 'md127')
        self.assertTrue(result.complete)
        self.assertEqual((2, 1, 'active', 'idle', 'raid1'),
                         (result.raid_disks, result.degraded,
                          result.array_state, result.sync_action,
                          result.level))
        members = {m.device: (m.flags, m.slot) for m in result.members}
        self.assertEqual(
            {'nvme1n1': (frozenset({'in_sync', 'failfast'}), 0),
             'nvme2n1': (frozenset({'faulty', 'failfast'}), None)}, members)

    def test_block_link_names_the_device(self):
        md = write_md_dir(self.base, DEGRADED,
                          {'nvme1n1': ('in_sync', '0')})
        os.unlink(os.path.join(md, 'dev-nvme1n1', 'block'))
        os.symlink('../../../../../virtual/nvme-fabrics/ctl/nvme4/nvme4n1',
                   os.path.join(md, 'dev-nvme1n1', 'block'))
        result = md_sysfs.read_md_dir(md, 'md127')
        self.assertEqual('nvme4n1', result.members[0].device)

    def test_unreadable_member_marks_incomplete(self):
        md = write_md_dir(self.base, DEGRADED, {
            'nvme1n1': ('in_sync', '0'), 'nvme2n1': (None, '1')})
        result = md_sysfs.read_md_dir(md, 'md127')
        self.assertFalse(result.complete)
        self.assertEqual(['nvme1n1'], [m.device for m in result.members])

    def test_malformed_slot_marks_incomplete(self):
        md = write_md_dir(self.base, DEGRADED,
                          {'nvme1n1': ('in_sync', 'zero')})
        self.assertFalse(md_sysfs.read_md_dir(md, 'md127').complete)

    def test_malformed_attributes_are_none(self):
        md = write_md_dir(self.base, dict(DEGRADED, degraded='x',
                                          array_state='???'), {})
        result = md_sysfs.read_md_dir(md, 'md127')
        self.assertIsNone(result.degraded)
        self.assertIsNone(result.array_state)

    def test_missing_directory(self):
        self.assertIsNone(md_sysfs.read_md_dir(
            os.path.join(self.base, 'nothing'), 'md1'))
