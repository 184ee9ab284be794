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

import json
import os

import fixtures
import testtools

from os_brick_nvme_agent import journal


class JournalTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.path = journal.path(self.dir)
        self.now = 100.0
        self.journal = journal.Journal(self.path, max_events=10,
                                       clock=lambda: self.now)

    def test_events_are_appended_as_json_lines(self):
        self.journal.record(journal.FAULT_SEEN, 'vol-1', replica='r2',
                            nqn=None)
        with open(self.path) as handle:
            self.assertEqual([{'time': 100.0, 'event': 'fault_seen',
                               'volume': 'vol-1', 'replica': 'r2'}],
                             [json.loads(line) for line in handle])

    def test_bounded_to_the_newest_events(self):
        for n in range(40):
            self.now = float(n)
            self.journal.record(journal.REPORT_SENT, 'vol-%d' % n)
        events, bad = journal.read(self.path)
        self.assertEqual(0, bad)
        self.assertLessEqual(len(events), 15)      # max + max / 2
        self.assertGreaterEqual(len(events), 10)
        self.assertEqual('vol-39', events[-1]['volume'])
        # a new journal object on the same file counts what is there
        again = journal.Journal(self.path, max_events=10)
        for _ in range(10):
            again.record(journal.REPORT_SENT, 'x')
        self.assertLessEqual(len(journal.read(self.path)[0]), 15)

    def test_unreadable_lines_are_skipped_and_counted(self):
        self.journal.record(journal.LEG_ADDED, 'vol-1')
        with open(self.path, 'a') as handle:
            handle.write('{"time": 1, "eve\n[1, 2]\n')
        self.journal.record(journal.RESYNC_DONE, 'vol-1')
        events, bad = journal.read(self.path)
        self.assertEqual(['leg_added', 'resync_done'],
                         [e['event'] for e in events])
        self.assertEqual(2, bad)

    def test_write_failure_is_logged_once_and_never_raises(self):
        logger = self.useFixture(fixtures.FakeLogger(
            name='os_brick_nvme_agent.journal'))
        broken = journal.Journal(os.path.join(self.dir, 'gone', 'x.jsonl'))
        for _ in range(3):
            entry = broken.record(journal.ACTION_FAILED, 'vol-1')
        self.assertEqual('error', entry['event'])
        self.assertEqual(1, logger.output.count(
            'Cannot write the event journal'))

    def test_last_by_volume_and_rows(self):
        events = [{'time': 0, 'event': 'fault_seen', 'volume': 'b'},
                  {'time': 60, 'event': 'report_sent', 'volume': 'b',
                   'replica': 'r2', 'state': 'faulty'},
                  {'time': 0, 'event': 'agent_started', 'volume': None},
                  {'time': 0, 'event': 'leg_added', 'volume': 'a'}]
        self.assertEqual(['a', 'b'], [e['volume'] for e in
                                      journal.last_by_volume(events)])
        self.assertEqual(('b', '1970-01-01T00:01:00Z', 'report_sent',
                          'replica=r2 state=faulty'),
                         journal.row(events[1]))

    def test_reachability(self):
        self.assertIn('unknown', journal.reachability([]))
        self.assertEqual('reachable since 1970-01-01T00:00:00Z',
                         journal.reachability([
                             {'time': 0, 'event': 'provisioner_reachable'}]))
