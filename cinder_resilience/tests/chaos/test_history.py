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

"""The history checker finds each violation it claims to find."""

import os

import fixtures
import testtools

from cinder_resilience.tests.chaos import history


def acquire(t, pid, acq, token):
    return {'k': 'acquire', 't': t, 'pid': pid, 'w': 'w%d' % pid,
            'acq': acq, 'token': token}


def write(t, pid, acq, token, ok):
    return {'k': 'write', 't': t, 'pid': pid, 'w': 'w%d' % pid, 'acq': acq,
            'token': token, 'ok': ok}


def release(t, pid, acq, ok=True):
    return {'k': 'release', 't': t, 'pid': pid, 'w': 'w%d' % pid,
            'acq': acq, 'ok': ok}


def lost(t, pid, acq):
    return {'k': 'lost', 't': t, 'pid': pid, 'w': 'w%d' % pid, 'acq': acq}


def fault(t, kind, pid, until=None):
    return {'k': 'fault', 't': t, 'kind': kind, 'pid': pid, 'w': 'harness',
            'until': t if until is None else until}


def record(pid, acq, token):
    return (token, 'w=w%d pid=%d acq=%d i=0' % (pid, pid, acq))


class CheckerTest(testtools.TestCase):

    def test_clean_history(self):
        events = [acquire(1, 1, 1, 10), write(1.1, 1, 1, 10, True),
                  release(1.2, 1, 1), acquire(1.3, 2, 1, 11),
                  write(1.4, 2, 1, 11, True), release(1.5, 2, 1)]
        result = history.check(events, [record(1, 1, 10), record(2, 1, 11)],
                               lease=2)
        self.assertEqual(2, result['acquisitions'])
        for key in ('stale_writes_accepted', 'overlapping_accepted_writes',
                    'unfenced_overlaps', 'double_grants'):
            self.assertEqual(0, result[key], key)

    def test_stale_and_interleaved_records(self):
        records = [record(1, 1, 10), record(2, 1, 11), record(1, 1, 10)]
        self.assertEqual((1, 1), history.resource_checks(records))

    def test_same_token_from_two_holders_interleaved(self):
        records = [record(1, 1, 10), record(2, 1, 10), record(1, 1, 10)]
        self.assertEqual((0, 1), history.resource_checks(records))

    def test_paused_holder_told_and_its_late_write_counted(self):
        events = [acquire(1, 1, 1, 10), write(1.1, 1, 1, 10, True),
                  fault(1.2, 'pause_holder', 1, until=7.2),
                  acquire(4, 2, 1, 11), write(4.1, 2, 1, 11, True),
                  release(4.2, 2, 1), write(7.3, 1, 1, 10, False),
                  lost(7.25, 1, 1), release(7.4, 1, 1, ok=False)]
        result = history.check(events, [], lease=2)
        self.assertEqual(1, result['unfenced_overlaps'])
        self.assertEqual(0, result['double_grants'])
        self.assertEqual(1, result['pause_trials'])
        self.assertEqual(1, result['lost_lock_detected_within_lease'])
        self.assertTrue(result['pause_details'][0]['taken_over'])

    def test_paused_holder_never_told(self):
        events = [acquire(1, 1, 1, 10),
                  fault(1.2, 'pause_holder', 1, until=7.2),
                  acquire(4, 2, 1, 11), release(8, 1, 1, ok=False)]
        result = history.check(events, [], lease=2)
        self.assertEqual(1, result['pause_trials'])
        self.assertEqual(0, result['lost_lock_detected_within_lease'])

    def test_holder_that_ran_during_its_pause_is_no_trial(self):
        events = [acquire(1, 1, 1, 10),
                  fault(1.2, 'pause_holder', 1, until=7.2),
                  write(2.0, 1, 1, 10, True), release(2.1, 1, 1)]
        result = history.check(events, [], lease=2)
        self.assertEqual(0, result['pause_trials'])
        self.assertEqual('ran during the pause',
                         result['pause_details'][0]['invalid'])

    def test_told_too_late(self):
        events = [acquire(1, 1, 1, 10),
                  fault(1.2, 'pause_holder', 1, until=7.2),
                  lost(9.5, 1, 1)]
        result = history.check(events, [], lease=2)
        self.assertEqual(0, result['lost_lock_detected_within_lease'])

    def test_grant_to_a_live_holder_is_a_double_grant(self):
        events = [acquire(1, 1, 1, 10), acquire(1.5, 2, 1, 11),
                  release(2, 1, 1), release(2.5, 2, 1)]
        result = history.check(events, [], lease=2)
        self.assertEqual(1, result['double_grants'])
        self.assertEqual(0.5, result['double_grant_worst_overlap_s'])

    def test_kill_trial_says_whether_the_victim_held(self):
        events = [acquire(1, 1, 1, 10), fault(1.5, 'kill_holder', 1),
                  acquire(4, 2, 1, 11), release(4.5, 2, 1),
                  fault(5, 'kill_holder', 2)]
        trials = history.check(events, [], lease=2)['kill_trials']
        self.assertEqual([True, False], [t['held'] for t in trials])
        self.assertEqual(2.5, trials[0]['next_grant_after'])

    def test_recorder_round_trip(self):
        workdir = self.useFixture(fixtures.TempDir()).path
        rec = history.History(os.path.join(workdir, 'a.jsonl'), pid=1, w='a')
        rec.record('acquire', t=2.0, acq=1, token=5)
        rec.record('release', t=1.0, acq=1, ok=True)
        rec.close()
        with open(os.path.join(workdir, 'b.jsonl'), 'w') as f:
            f.write('{"k": "torn"')   # a writer killed mid-line
        events = history.load(workdir)
        self.assertEqual(['release', 'acquire'], [e['k'] for e in events])
