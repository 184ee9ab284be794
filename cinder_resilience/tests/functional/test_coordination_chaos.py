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

"""Chaos: counter increments under our lock while holders and servers die.

Four worker processes each make 300 read-modify-write increments of one
counter kept in a shared JSON file, each increment under the distributed
lock and stamped with its fencing token.  The file plays the protected
resource: every read and write presents the token, the file remembers the
highest token seen and refuses an older one (each single operation is
atomic through a local ``flock``, as a disk or array would make it; the
read-modify-write as a whole is protected only by the distributed lock).

Meanwhile the harness SIGKILLs the worker holding the lock (stopped first,
and checked to still be the holder) and starts it again: it resumes from
its own count kept in the file.  It also restarts the server twice.  At the
end the counter must equal the increments every worker recorded: a lost
increment (two holders at once) or a doubled one shows up as a mismatch.
The operations the file refused must be exactly those the workers saw
refused, and none at all on etcd and ZooKeeper, which keep a lock across a
server restart (redis without persistence forgets it, and there the fence
is what keeps the counter right).  Pauses of a holder past its lease, where
fencing matters on every backend, are in ``cinder_resilience.tests.chaos``.
``python -m`` on this module runs one worker.
"""

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import fixtures
from oslo_config import cfg
import testtools

from cinder_resilience.tests.functional import servers

WORKERS = 4
INCREMENTS = 300
RUN_LIMIT = 240.0
LOCK_NAME = 'chaos-counter'


class FencedCounter(object):
    """A JSON file that accepts operations only from the newest token."""

    def __init__(self, path):
        self.path = path

    def _locked(self, token, change):
        with open(self.path + '.flock', 'a') as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            state = self.load()
            if token is not None and token < state['highest']:
                state['rejected'] += 1
                self._save(state)
                return None
            if token is not None:
                state['highest'] = token
            change(state)
            self._save(state)
            return state

    def load(self):
        try:
            with open(self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {'counter': 0, 'done': {}, 'highest': 0, 'rejected': 0}

    def _save(self, state):
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.path))
        with os.fdopen(fd, 'w') as f:
            json.dump(state, f)
        os.replace(tmp, self.path)

    def read(self, token):
        """Return the state, or None if ``token`` is stale."""
        return self._locked(token, lambda state: None)

    def write(self, token, worker, counter, done):
        """Store one increment; False if ``token`` is stale."""
        def apply(state):
            state['counter'] = counter
            state['done'][worker] = done
        return self._locked(token, apply) is not None


def _coordinator(url, heartbeat):
    from cinder_resilience import coordination
    conf = cfg.ConfigOpts()
    coordination.register_opts(conf)
    conf([])
    conf.set_override('heartbeat', heartbeat, 'coordination')
    conf.set_override('max_reconnect_backoff', 0.5, 'coordination')
    coord = coordination.Coordinator(prefix='cinder-', conf=conf,
                                     backend_url=url)
    coord.start()
    return coord


class _NoLock(object):
    """Stands in for the lock in the negative control (``--mode none``)."""

    fencing_token = None

    def acquire(self, timeout=None):
        return True

    def check(self):
        pass

    def release(self):
        pass


def _refused(store):
    """Note one operation the store refused, as the worker saw it."""
    with open(store.path + '.refusals', 'a') as f:
        f.write('%d\n' % os.getpid())


def _one_increment(lock, store, worker, count, holder_file, fenced=True):
    """Try one increment; return the worker's done count (or None).

    ``holder_file`` names this process from the acquisition until just
    before the release, so the harness can tell a holder from a former one.
    """
    if not lock.acquire(timeout=5):
        return None
    try:
        with open(holder_file, 'w') as f:
            f.write(str(os.getpid()))
        token = lock.fencing_token if fenced else None
        state = store.read(token)
        if state is None:
            _refused(store)
            return None
        done = state['done'].get(worker, 0)
        if done >= count:
            return done
        lock.check()
        if store.write(token, worker, state['counter'] + 1, done + 1):
            return done + 1
        _refused(store)
        return None
    finally:
        open(holder_file, 'w').close()
        lock.release()


def external_worker(args, store, holder_file):
    """Increment under ``cinder.utils.synchronized(external=True)``.

    Every worker has its own lock_path, as services on different hosts do:
    only the routing to the coordination backend can make them exclude
    each other.
    """
    from cinder import utils as cinder_utils
    from oslo_concurrency import lockutils

    from cinder_resilience import external_locks
    lockutils.set_defaults(tempfile.mkdtemp(prefix='lock_path-'))
    external_locks.install(_coordinator(args.url, args.heartbeat))

    @cinder_utils.synchronized(LOCK_NAME, external=True)
    def increment():
        return _one_increment(_NoLock(), store, args.worker, args.count,
                              holder_file, fenced=False)

    done = 0
    while done < args.count:
        done = increment() or done
    return 0


def worker_main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument('url')
    parser.add_argument('store')
    parser.add_argument('worker')
    parser.add_argument('--count', type=int, default=INCREMENTS)
    parser.add_argument('--heartbeat', type=float, default=0.2)
    parser.add_argument('--mode', default='fenced',
                        choices=['fenced', 'locked', 'none', 'external'],
                        help='fenced: lock + token checks; locked: lock '
                             'only; none: no lock (negative control); '
                             'external: cinder.utils.synchronized routed '
                             'to the backend')
    args = parser.parse_args(argv)
    store = FencedCounter(args.store)
    holder_file = args.store + '.holder'
    if args.mode == 'external':
        return external_worker(args, store, holder_file)
    coord = None
    done = 0
    while done < args.count:
        try:
            if args.mode == 'none':
                lock = _NoLock()
            else:
                if coord is None:
                    coord = _coordinator(args.url, args.heartbeat)
                lock = coord.get_lock(LOCK_NAME)
            done = _one_increment(lock, store, args.worker, args.count,
                                  holder_file, args.mode == 'fenced') or done
        except Exception as exc:
            # Backend down, lock lost, session expired: start over with a
            # fresh connection, as a service would.
            print('worker %s: %s: %s' % (args.worker, type(exc).__name__,
                                         exc), file=sys.stderr)
            time.sleep(0.2)
            if coord is not None:
                try:
                    coord.stop()
                except Exception:
                    pass  # The connection is already broken; drop it.
                coord = None
    if coord is not None:
        coord.stop()
    return 0


class ChaosHarness(object):
    """Runs the workers and the faults; returns what happened."""

    def __init__(self, server, workdir, workers=WORKERS, count=INCREMENTS,
                 mode='fenced', faults=True):
        self.server = server
        self.mode = mode
        self.faults = faults
        self.store = FencedCounter(os.path.join(workdir, 'counter.json'))
        self.workers = workers
        self.count = count
        self.procs = {}
        self.log = open(os.path.join(workdir, 'workers.log'), 'ab')
        self.events = []

    def spawn(self, worker):
        url = self.server.url if self.server else 'none://'
        self.procs[worker] = subprocess.Popen(
            [sys.executable, '-m', __name__, url,
             self.store.path, worker, '--count', str(self.count),
             '--mode', self.mode],
            stdout=self.log, stderr=self.log)

    def progress(self):
        return self.store.load()['counter'] / float(self.workers * self.count)

    def _holder_pid(self):
        try:
            with open(self.store.path + '.holder') as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def kill_holder(self):
        """SIGKILL the process holding the lock (checked while stopped)."""
        pid = self._holder_pid()
        for worker, proc in self.procs.items():
            if proc.pid != pid or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGSTOP)
            if self._holder_pid() != pid:
                # It released between the read and the stop: not a holder.
                proc.send_signal(signal.SIGCONT)
                return False
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self.events.append('killed holder %s' % worker)
            self.spawn(worker)
            return True
        return False

    def refusals_seen(self):
        """Operations the workers saw refused (one line each)."""
        try:
            with open(self.store.path + '.refusals') as f:
                return len(f.read().split())
        except FileNotFoundError:
            return 0

    def run(self):
        for n in range(self.workers):
            self.spawn('w%d' % n)
        faults = [(0.2, self.kill_holder),
                  (0.4, self.restart_server),
                  (0.65, self.restart_server)] if self.faults else []
        deadline = time.monotonic() + RUN_LIMIT
        try:
            while any(p.poll() is None for p in self.procs.values()):
                if time.monotonic() > deadline:
                    raise AssertionError('chaos run did not finish in %ss'
                                         % RUN_LIMIT)
                if faults and self.progress() >= faults[0][0]:
                    if faults[0][1]():
                        faults.pop(0)
                time.sleep(0.05)
        finally:
            self.stop()
        return self.store.load()

    def restart_server(self):
        self.server.restart(down_for=0.3)
        self.events.append('restarted %s' % self.server.name)
        return True

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.log.close()


class ChaosMixin(object):
    server_cls = None
    server_options = {}
    #: redis runs without persistence: a restart forgets the lock, a second
    #: holder comes in and the fence must refuse the first one's operations.
    #: etcd and ZooKeeper keep the lock across a restart: nothing to refuse.
    loses_locks_on_restart = False

    def test_no_lost_or_doubled_increment(self):
        self.useFixture(servers.SkipIfMissing(self, self.server_cls))
        server = self.useFixture(self.server_cls(self.server_options))
        workdir = self.useFixture(fixtures.TempDir()).path
        harness = ChaosHarness(server, workdir)
        started = time.monotonic()
        state = harness.run()
        self.addDetail('chaos', testtools.content.text_content(
            'events: %s; rejected stale operations: %d; %.1fs' % (
                harness.events, state['rejected'],
                time.monotonic() - started)))
        expected = {'w%d' % n: INCREMENTS for n in range(WORKERS)}
        self.assertEqual(expected, state['done'])
        self.assertEqual(WORKERS * INCREMENTS, state['counter'])
        self.assertEqual(3, len(harness.events), harness.events)
        # kill_holder verified, with the process stopped, that it still
        # held the lock before killing it.
        self.assertTrue(harness.events[0].startswith('killed holder'),
                        harness.events)
        self.assertEqual(harness.refusals_seen(), state['rejected'])
        if not self.loses_locks_on_restart:
            self.assertEqual(0, state['rejected'])


class RedisChaosTest(ChaosMixin, testtools.TestCase):
    server_cls = servers.RedisServer
    server_options = {'lock_timeout': '3'}
    loses_locks_on_restart = True


class EtcdChaosTest(ChaosMixin, testtools.TestCase):
    server_cls = servers.EtcdServer
    server_options = {'lock_timeout': '3'}


class ZookeeperChaosTest(ChaosMixin, testtools.TestCase):
    server_cls = servers.ZookeeperServer
    server_options = {'timeout': '3'}


def hold_main(argv):
    """Take one lock, print its token (0: none), then hold it until killed."""
    from cinder_resilience import exception
    url, name = argv
    coord = _coordinator(url, 0.2)
    lock = coord.get_lock(name)
    lock.acquire()
    try:
        token = lock.fencing_token
    except exception.FencingTokenUnavailable:
        token = 0
    print(token, flush=True)
    while True:
        time.sleep(3600)


if __name__ == '__main__':
    if sys.argv[1:2] == ['hold']:
        sys.exit(hold_main(sys.argv[2:]))
    sys.exit(worker_main())
