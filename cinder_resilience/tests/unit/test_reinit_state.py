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

from oslotest import base

from cinder_resilience import reinit_state as rs


class Loop:
    stopped = False

    def stop(self):
        self.stopped = True


class ReinitStateTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.state = rs.ReinitState()
        self.state.begin(10.0)

    def test_begin_resets_everything(self):
        self.state.count_attempt()
        self.state.exponent = 3
        self.state.stop()
        self.state.begin(20.0)
        self.assertEqual((rs.COUNTED, 0, 0, 20.0, False),
                         (self.state.phase, self.state.attempts,
                          self.state.exponent, self.state.started,
                          self.state.stopped))

    def test_first_attempt_is_not_a_retry(self):
        self.assertFalse(self.state.count_attempt())
        self.assertTrue(self.state.count_attempt())
        self.assertEqual(2, self.state.attempts)

    def test_rpc_deferred_only_while_probing(self):
        self.assertFalse(self.state.defer_rpc())
        self.assertTrue(self.state.start_probing(Loop))
        self.assertTrue(self.state.defer_rpc())
        self.assertTrue(self.state.end(rs.READY))
        self.assertFalse(self.state.rpc_pending)
        self.assertEqual(rs.READY, self.state.phase)

    def test_stop_hands_back_the_loop_once(self):
        self.state.start_probing(Loop)
        loop = self.state.stop()
        self.assertIsInstance(loop, Loop)
        self.assertIsNone(self.state.stop())
        self.assertEqual(rs.STOPPED, self.state.phase)
        self.assertFalse(self.state.probing)

    def test_no_probing_after_a_stop(self):
        self.state.stop()
        started = []
        self.assertFalse(self.state.start_probing(
            lambda: started.append(1)))
        self.assertEqual([], started)

    def test_a_probe_ending_after_a_stop_keeps_stopped(self):
        self.state.start_probing(Loop)
        self.state.stop()
        self.state.end(rs.READY)
        self.assertEqual(rs.STOPPED, self.state.phase)
