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

from os_brick_nvme_agent.host import mdadm_detail
from os_brick_nvme_agent.tests.unit import fixtures_util


class ParseDetailTest(testtools.TestCase):

    def test_clean(self):
        detail = mdadm_detail.parse_detail_export(
            fixtures_util.read('detail_clean.txt'))
        self.assertEqual('raid1', detail.level)
        self.assertEqual(2, detail.raid_devices)
        self.assertEqual('volume-7f3e', detail.md_name)
        self.assertEqual('6b1a3c52:9e0f4d1b:a5e2c7f0:13d8b6a4', detail.uuid)
        self.assertEqual([('/dev/nvme1n1', 0), ('/dev/nvme2n1', 1)],
                         [(m.path, m.slot) for m in detail.members])

    def test_faulty_and_spare_with_homehost(self):
        detail = mdadm_detail.parse_detail_export(
            fixtures_util.read('detail_faulty.txt'))
        self.assertEqual('volume-7f3e', detail.md_name)
        roles = {m.path: m.role for m in detail.members}
        self.assertEqual({'/dev/nvme1n1': '0', '/dev/nvme2n1': 'faulty',
                          '/dev/nvme3n1': 'spare'}, roles)
        self.assertIsNone(detail.members[1].slot)

    def test_malformed_lines_and_members_are_dropped(self):
        detail = mdadm_detail.parse_detail_export(
            fixtures_util.read('detail_malformed.txt'))
        self.assertIsNone(detail.raid_devices)
        self.assertIsNone(detail.md_name)
        # 'sideways' is no role and nvme3n1 has no _DEV line
        self.assertEqual(['/dev/nvme1n1'], [m.path for m in detail.members])

    def test_empty(self):
        detail = mdadm_detail.parse_detail_export('')
        self.assertEqual((None, None, ()),
                         (detail.level, detail.md_name, detail.members))

    def test_strip_homehost(self):
        self.assertEqual('vol', mdadm_detail.strip_homehost('host:vol'))
        self.assertEqual('vol', mdadm_detail.strip_homehost('vol'))
        self.assertIsNone(mdadm_detail.strip_homehost(None))

    def test_real_recordings(self):
        for path in fixtures_util.real_files('*detail-export*'):
            with open(path) as handle:
                detail = mdadm_detail.parse_detail_export(handle.read())
            self.assertEqual('raid1', detail.level, path)
            self.assertEqual(2, detail.raid_devices, path)
            self.assertIsNotNone(detail.uuid, path)
            self.assertTrue(detail.members, path)
            # created by os-brick with --homehost=any: 'any:<alias>'
            self.assertEqual(detail.devname, detail.md_name, path)
