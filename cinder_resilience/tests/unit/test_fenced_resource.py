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

from cinder_resilience import fenced_resource


class FencingGateTest(testtools.TestCase):

    def test_admits_equal_and_newer_tokens_only(self):
        gate = fenced_resource.FencingGate()
        self.assertTrue(gate.admit(3))
        self.assertTrue(gate.admit(3))
        self.assertFalse(gate.admit(2))
        self.assertTrue(gate.admit(7))
        self.assertFalse(gate.admit(3))
        self.assertEqual(7, gate.highest)
        self.assertEqual(2, gate.rejected)


class FencedFileTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                                 'resource')

    def test_refuses_a_stale_token(self):
        resource = fenced_resource.FencedFile(self.path)
        self.assertEqual(0, resource.highest())
        self.assertTrue(resource.append(5, 'a'))
        self.assertTrue(resource.append(5, 'b'))
        self.assertFalse(resource.append(4, 'c'))
        self.assertTrue(resource.append(9, 'd'))
        self.assertEqual([(5, 'a'), (5, 'b'), (9, 'd')], resource.records())

    def test_highest_token_survives_a_new_instance(self):
        fenced_resource.FencedFile(self.path).append(12, 'x')
        again = fenced_resource.FencedFile(self.path)
        self.assertEqual(12, again.highest())
        self.assertFalse(again.append(11, 'y'))

    def test_one_record_per_line(self):
        resource = fenced_resource.FencedFile(self.path)
        self.assertRaises(ValueError, resource.append, 1, 'a\nb')
        self.assertEqual([], resource.records())

    def test_remove(self):
        resource = fenced_resource.FencedFile(self.path)
        resource.append(1, 'a')
        resource.remove()
        self.assertEqual(([], 0), (resource.records(), resource.highest()))
