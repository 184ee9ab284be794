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
import select
import threading

import fixtures
import testtools

from os_brick_nvme_agent.host import watcher
from os_brick_nvme_agent.tests.unit import fixtures_util


class FakePoll(object):
    """Records registrations and returns scripted events without waiting."""

    def __init__(self, events):
        self.events = events
        self.registered = {}
        self.timeouts = []

    def register(self, fd, mask):
        self.registered[fd] = mask

    def poll(self, timeout):
        self.timeouts.append(timeout)
        return self.events(self)


def make_tree(root, arrays=('md127',)):
    os.makedirs(os.path.join(root, 'proc'))
    with open(os.path.join(root, 'proc/mdstat'), 'w') as handle:
        handle.write('Personalities : [raid1]\n')
    for name in arrays:
        md = os.path.join(root, 'sys/block', name, 'md')
        os.makedirs(os.path.join(md, 'dev-nvme1n1'))
        for attr in watcher.MD_ATTRIBUTES + ('dev-nvme1n1/state',):
            with open(os.path.join(md, attr), 'w') as handle:
                handle.write('x\n')


class WatcherTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        make_tree(self.root)

    def _watcher(self, events):
        polls = []

        def factory():
            polls.append(FakePoll(events))
            return polls[-1]
        w = watcher.Watcher(self.root, interval=7.0, poller=factory)
        self.addCleanup(w.close)
        return w, polls

    def test_watched_paths(self):
        paths = [os.path.relpath(p, self.root)
                 for p in watcher.watched_paths(self.root)]
        self.assertEqual(['proc/mdstat', 'sys/block/md127/md/array_state',
                          'sys/block/md127/md/degraded',
                          'sys/block/md127/md/sync_action',
                          'sys/block/md127/md/dev-nvme1n1/state'], paths)

    def test_timeout_registers_priority_events(self):
        w, polls = self._watcher(lambda poll: [])
        self.assertEqual(watcher.TIMEOUT, w.wait())
        poll = polls[0]
        self.assertEqual([7000.0], poll.timeouts)
        masks = sorted(poll.registered.values())
        self.assertEqual(1, masks.count(select.POLLIN))   # the stop pipe
        self.assertEqual(5, masks.count(select.POLLPRI | select.POLLERR))

    def test_kernel_event(self):
        def events(poll):
            fd = next(fd for fd, mask in poll.registered.items()
                      if mask != select.POLLIN)
            return [(fd, select.POLLPRI | select.POLLERR)]
        w, _polls = self._watcher(events)
        self.assertEqual(watcher.EVENT, w.wait())

    def test_change_between_waits_is_not_lost(self):
        w, polls = self._watcher(lambda poll: [])
        self.assertEqual(watcher.TIMEOUT, w.wait())
        with open(os.path.join(self.root, 'sys/block/md127/md/degraded'),
                  'w') as handle:
            handle.write('1\n')
        self.assertEqual(watcher.EVENT, w.wait())
        self.assertEqual(1, len(polls))     # answered without polling
        self.assertEqual(watcher.TIMEOUT, w.wait())

    def test_new_array_counts_as_change(self):
        w, _polls = self._watcher(lambda poll: [])
        w.wait()
        make_tree(os.path.join(self.root, 'x'))  # unrelated dir: no change
        self.assertEqual(watcher.TIMEOUT, w.wait())
        md = os.path.join(self.root, 'sys/block/md126/md')
        os.makedirs(md)
        with open(os.path.join(md, 'degraded'), 'w') as handle:
            handle.write('0\n')
        self.assertEqual(watcher.EVENT, w.wait())

    def test_interrupt_from_another_thread(self):
        w = watcher.Watcher(self.root, interval=30.0)
        self.addCleanup(w.close)
        w.wait(timeout=0)
        results = []
        waiter = threading.Thread(target=lambda: results.append(w.wait()))
        waiter.start()
        w.interrupt()
        # real poll() in the thread: it returns on the interrupt, long
        # before its 30 s interval
        waiter.join(10)
        self.assertFalse(waiter.is_alive())
        self.assertEqual([watcher.INTERRUPTED], results)
        self.assertEqual(watcher.TIMEOUT, w.wait(timeout=0))

    def test_interrupt_before_wait(self):
        w = watcher.Watcher(self.root, interval=30.0)
        self.addCleanup(w.close)
        w.interrupt()
        self.assertEqual(watcher.INTERRUPTED, w.wait())


class PollingModeTest(testtools.TestCase):
    """watch_md_events = false: only the interval or an interrupt wake."""

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        make_tree(self.root)
        self.polls = []

        def factory():
            self.polls.append(FakePoll(lambda poll: []))
            return self.polls[-1]
        self.w = watcher.Watcher(self.root, interval=7.0, poller=factory,
                                 events=False)
        self.addCleanup(self.w.close)

    def test_only_the_interrupt_pipe_is_watched(self):
        self.assertEqual(watcher.TIMEOUT, self.w.wait())
        self.assertEqual([select.POLLIN],
                         list(self.polls[0].registered.values()))
        self.assertEqual([7000.0], self.polls[0].timeouts)

    def test_md_change_waits_for_the_interval(self):
        self.w.wait()
        with open(os.path.join(self.root, 'sys/block/md127/md/degraded'),
                  'w') as handle:
            handle.write('1\n')
        self.assertEqual(watcher.TIMEOUT, self.w.wait(timeout=2.0))
        self.assertEqual([2000.0], self.polls[1].timeouts)

    def test_interrupt_still_ends_the_wait(self):
        w = watcher.Watcher(self.root, interval=30.0, events=False)
        self.addCleanup(w.close)
        w.interrupt()
        self.assertEqual(watcher.INTERRUPTED, w.wait())


class RealTreeTest(testtools.TestCase):

    def test_watched_paths_on_recorded_sysfs(self):
        roots = fixtures_util.real_roots()
        if not roots:
            self.skipTest('no real recordings')
        for root in roots:
            names = sorted(os.path.relpath(p, root)
                           for p in watcher.watched_paths(root))
            self.assertIn('proc/mdstat', names, root)
            for attr in watcher.MD_ATTRIBUTES:
                self.assertIn('sys/block/md127/md/' + attr, names, root)
            self.assertTrue(any(n.endswith('/state') and '/dev-' in n
                                for n in names), root)
