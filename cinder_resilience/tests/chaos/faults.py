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

"""The faults: pause or kill the holder, kill or pause a member, partition.

Each fault records one ``fault`` event (kind, t, until, pid or member) in
the harness's history and returns True, or returns False when it could not
be injected right now (nobody holds the lock, no leader): the runner tries
it again a little later.
"""

import json
import os
import signal
import time

from cinder_resilience.tests.chaos import clusters
from cinder_resilience.tests import waiting


def _all_stopped(pid):
    """True once every thread of ``pid`` is in the stopped state."""
    task_dir = '/proc/%d/task' % pid
    try:
        for tid in os.listdir(task_dir):
            with open(os.path.join(task_dir, tid, 'stat')) as f:
                # The state follows the parenthesised command name.
                if f.read().rsplit(')', 1)[1].split()[0] != 'T':
                    return False
    except (OSError, IndexError):
        return False
    return True


class Faults(object):
    """Fault injector over one cluster and the workers' processes.

    :param cluster: a started ``clusters.Cluster``
    :param workers: the runner's ``Workers`` (``procs``, ``respawn``)
    :param recorder: the harness's ``history.History``
    :param netns: the ``netns.Pair`` the partitioned member lives in, or None
    """

    def __init__(self, cluster, workers, recorder, netns=None):
        self.cluster = cluster
        self.workers = workers
        self.rec = recorder
        self.netns = netns
        self.lease = cluster.lease

    def _holder(self):
        """Stop the announced holder.

        :returns: (pid, time it was stopped) if it holds the lock, or
                  (None, None) after resuming it if it does not
        """
        try:
            with open(os.path.join(self.workers.workdir, 'holder')) as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None, None
        if pid not in self.workers.pids():
            return None, None
        os.kill(pid, signal.SIGSTOP)
        # kill() returns before the worker has stopped; until every thread
        # has, it may still write events that would look like running
        # during the pause.
        if not waiting.wait_for(lambda: _all_stopped(pid), 10,
                                interval=0.01):
            os.kill(pid, signal.SIGCONT)
            return None, None
        stopped = time.monotonic()
        if self._holding(pid):
            return pid, stopped
        os.kill(pid, signal.SIGCONT)
        return None, None

    def _holding(self, pid):
        """True if ``pid`` holds the lock and has writes left to make."""
        last = None
        for path in self.workers.history_files(pid):
            with open(path, 'rb') as f:
                # Only the tail: the holder is stopped while we read.
                f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
                lines = f.read().split(b'\n')
            if len(lines) >= 2 and lines[-2].startswith(b'{'):
                last = json.loads(lines[-2])
        if last is None:
            return False
        return last['k'] == 'acquire' or (
            last['k'] == 'write' and last['ok'] and not last['last'])

    def pause_holder(self):
        pid, started = self._holder()
        if pid is None:
            return False
        time.sleep(2.5 * self.lease)
        resumed = time.monotonic()
        os.kill(pid, signal.SIGCONT)
        self.rec.record('fault', t=started, kind='pause_holder', pid=pid,
                        until=resumed)
        time.sleep(self.lease)
        return True

    def kill_holder(self):
        pid, _stopped = self._holder()
        if pid is None:
            return False
        killed = time.monotonic()
        self.workers.kill(pid)
        self.rec.record('fault', t=killed, kind='kill_holder', pid=pid,
                        until=killed)
        self.workers.respawn()
        time.sleep(self.lease)
        return True

    def _server_fault(self, kind, member, action):
        if member is None:
            return False
        started = time.monotonic()
        action(member)
        self.rec.record('fault', t=started, kind=kind, member=member.name,
                        until=time.monotonic())
        clusters.wait_until(self.cluster.ready, 120, self.cluster.name)
        time.sleep(self.lease)
        return True

    def _down_for(self):
        # Long enough for sentinels to fail over (down-after 1 s + vote).
        return 5.0 if self.cluster.backend == 'redis' else 2.0

    def restart_leader(self):
        return self._server_fault(
            'restart_leader', self.cluster.leader(),
            lambda m: self.cluster.restart(m, self._down_for()))

    def restart_follower(self):
        return self._server_fault(
            'restart_follower', self.cluster.follower(),
            lambda m: self.cluster.restart(m, self._down_for()))

    def pause_member(self):
        def pause(member):
            member.pause()
            time.sleep(2 * self.lease)
            member.resume()
        return self._server_fault('pause_leader', self.cluster.leader(),
                                  pause)

    def partition_member(self):
        if self.netns is None:
            return False
        member = [m for m in self.cluster.members if m.netns][0]

        def cut(member):
            self.netns.set_link(False)
            time.sleep(2 * self.lease + 1)
            self.netns.set_link(True)
        return self._server_fault('partition_member', member, cut)

    def available(self):
        kinds = ['pause_holder', 'kill_holder', 'restart_leader',
                 'restart_follower', 'pause_member']
        if self.netns is not None:
            kinds.append('partition_member')
        return kinds
