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

import testtools

from os_brick_nvme_agent.host import mdstat
from os_brick_nvme_agent.tests.unit import fixtures_util


class ParseMdstatTest(testtools.TestCase):

    def test_clean_raid1(self):
        arrays = mdstat.parse_mdstat(fixtures_util.read('mdstat_clean.txt'))
        self.assertEqual(['md127'], list(arrays))
        md = arrays['md127']
        self.assertTrue(md.active)
        self.assertEqual('raid1', md.level)
        self.assertEqual((2, 2, 'UU'),
                         (md.raid_disks, md.working_disks, md.slot_map))
        self.assertEqual({('nvme1n1', 0), ('nvme2n1', 1)},
                         {(m.device, m.role) for m in md.members})
        self.assertIsNone(md.action)

    def test_faulty_member(self):
        md = mdstat.parse_mdstat(
            fixtures_util.read('mdstat_faulty.txt'))['md127']
        flags = {m.device: m.flags for m in md.members}
        self.assertEqual(frozenset({'faulty'}), flags['nvme2n1'])
        self.assertEqual(frozenset(), flags['nvme1n1'])
        self.assertEqual('U_', md.slot_map)
        self.assertEqual(1, md.working_disks)

    def test_recovery_progress(self):
        md = mdstat.parse_mdstat(
            fixtures_util.read('mdstat_recovery.txt'))['md127']
        self.assertEqual('recovery', md.action)
        self.assertEqual(17.3, md.progress)

    def test_mixed_arrays(self):
        arrays = mdstat.parse_mdstat(fixtures_util.read('mdstat_mixed.txt'))
        self.assertEqual({'md0', 'md125', 'md126', 'md127'}, set(arrays))
        self.assertFalse(arrays['md126'].active)
        self.assertIsNone(arrays['md126'].level)
        self.assertEqual(frozenset({'spare'}),
                         arrays['md126'].members[0].flags)
        self.assertTrue(arrays['md125'].readonly)
        flags = {m.device: m.flags for m in arrays['md125'].members}
        self.assertEqual(frozenset({'write_mostly'}), flags['nvme6n1'])
        self.assertEqual(frozenset({'spare'}), flags['nvme7n1'])

    def test_malformed_entries_are_skipped(self):
        arrays = mdstat.parse_mdstat(
            fixtures_util.read('mdstat_malformed.txt'))
        self.assertEqual(['md127'], list(arrays))
        self.assertEqual('UU', arrays['md127'].slot_map)

    def test_empty_and_garbage(self):
        self.assertEqual({}, mdstat.parse_mdstat(''))
        self.assertEqual({}, mdstat.parse_mdstat('\x00\x01 not mdstat\n'))

    def test_real_recordings(self):
        for path in fixtures_util.real_files('*mdstat*'):
            with open(path) as handle:
                text = handle.read()
            arrays = mdstat.parse_mdstat(text)
            headers = [line for line in text.splitlines()
                       if line.startswith('md') and ' : ' in line]
            self.assertEqual(len(headers), len(arrays), path)
            for md in arrays.values():
                if md.active and md.level == 'raid1':
                    self.assertIsNotNone(md.slot_map, path)
