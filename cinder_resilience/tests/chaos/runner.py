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

"""Run one backend's chaos: cluster, workers, faults, then the checker.

``python -m cinder_resilience.tests.chaos.runner BACKEND [--long]`` prints
the checker's summary as JSON.  With ``--netns`` (root) the run happens in
a namespace pair it creates and deletes (see ``netns``), and a member is
partitioned as well; without, everything stays on 127.0.0.1.

A run is bounded: it ends after one pass over every fault (CI size) or,
with ``--long``, once it has the wanted acquisitions and pause trials, and
in any case at ``--max-seconds``.  Every process and namespace it made is
gone when it returns.
"""

import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from cinder_resilience.fenced_resource import FencedFile
from cinder_resilience.tests.chaos import clusters
from cinder_resilience.tests.chaos import faults as chaos_faults
from cinder_resilience.tests.chaos import history
from cinder_resilience.tests.chaos import netns as chaos_netns

ORDER = ['pause_holder', 'kill_holder', 'partition_member', 'restart_leader',
         'restart_follower', 'pause_member']


class Workers(object):
    """The worker processes of one run."""

    def __init__(self, workdir, url, lease, netns_for=None):
        self.workdir = workdir
        self.url = url
        self.lease = lease
        self.netns_for = netns_for or {}
        self.procs = {}
        self.log = open(os.path.join(workdir, 'workers.log'), 'ab')
        self.next_id = 0
        self.dead = None

    def spawn(self, worker=None):
        if worker is None:
            worker = 'w%d' % self.next_id
            self.next_id += 1
        argv = [sys.executable, '-m',
                'cinder_resilience.tests.chaos.workload', self.url,
                self.workdir, worker, '--lease', str(self.lease)]
        ns = self.netns_for.get(worker)
        if ns:
            argv = ['ip', 'netns', 'exec', ns] + argv
        # Its own session: when the process group it would otherwise share
        # with the caller becomes orphaned, the kernel sends SIGCONT to
        # every stopped member, which would end a pause trial early.
        proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log,
                                stdin=subprocess.DEVNULL,
                                start_new_session=True)
        self.procs[proc.pid] = (worker, proc)

    def pids(self):
        return [pid for pid, (_w, p) in self.procs.items()
                if p.poll() is None]

    def kill(self, pid):
        worker, proc = self.procs.pop(pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.dead = worker

    def respawn(self):
        self.spawn(self.dead)

    def history_files(self, pid):
        return glob.glob(os.path.join(self.workdir, 'w-*-%d.jsonl' % pid))

    def acquisitions(self):
        count = 0
        for path in glob.glob(os.path.join(self.workdir, 'w-*.jsonl')):
            with open(path) as f:
                count += f.read().count('"k": "acquire"')
        return count

    def stop(self):
        open(os.path.join(self.workdir, 'stop'), 'w').close()
        deadline = time.monotonic() + 15
        for _worker, proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.log.close()


def _layout(backend, pair):
    """Hosts and namespaces of the three member slots (slot 2 is cut off)."""
    if pair is None:
        return ['127.0.0.1'] * 3, [None] * 3, {}
    hosts = [pair.addr_a, pair.addr_a, pair.addr_b]
    spaces = [None, None, pair.b]
    # A redis client stuck with the old primary is what splits the brain.
    minority = {'w2': pair.b} if backend == 'redis-sentinel' else {}
    return hosts, spaces, minority


class Run(object):

    def __init__(self, args, pair=None):
        self.args = args
        self.pair = pair
        self.workdir = tempfile.mkdtemp(prefix='chaos-run-')
        hosts, spaces, minority = _layout(args.backend, pair)
        self.cluster = clusters.CLUSTERS[args.backend](
            self.workdir, hosts, spaces, lease=args.lease)
        self.minority = minority
        self.rec = None
        self.workers = None
        self.timings = {}

    def _enough(self, started, passes):
        args = self.args
        elapsed = time.monotonic() - started
        if elapsed > args.max_seconds:
            return True
        if not args.long:
            return passes >= 1
        trials = sum(1 for e in history.load(self.workdir)
                     if e['k'] == 'fault' and e['kind'] == 'pause_holder')
        return (passes >= 1 and trials >= args.pause_trials
                and self.workers.acquisitions() >= args.acquisitions)

    def _inject(self, injector, kind, limit):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if getattr(injector, kind)():
                return True
            time.sleep(0.05)
        return False

    def execute(self):
        self.timings['begin'] = time.monotonic()
        self.cluster.start()
        self.timings['cluster_ready'] = time.monotonic()
        self.rec = history.History(os.path.join(self.workdir,
                                                'harness.jsonl'),
                                   w='harness', pid=os.getpid())
        self.workers = Workers(self.workdir, self.cluster.url,
                               self.args.lease, self.minority)
        for _n in range(self.args.workers):
            self.workers.spawn()
        # Workers import cinder and tooz first: slow on a busy machine.
        clusters.wait_until(lambda: self.workers.acquisitions() >= 5, 300,
                            'first acquisitions')
        self.timings['workers_ready'] = time.monotonic()
        injector = chaos_faults.Faults(self.cluster, self.workers, self.rec,
                                       self.pair)
        kinds = [k for k in ORDER if k in injector.available()]
        started, passes, skipped = time.monotonic(), 0, []
        while not self._enough(started, passes):
            for kind in kinds:
                if not self._inject(injector, kind, 20):
                    skipped.append(kind)
                time.sleep(1.0)
            passes += 1
        self.timings['faults_done'] = time.monotonic()
        return skipped

    def close(self):
        if self.workers is not None:
            self.workers.stop()
        self.timings['workers_stopped'] = time.monotonic()
        self.cluster.stop()
        self.timings['cluster_stopped'] = time.monotonic()

    def _stages(self):
        marks = sorted(self.timings.items(), key=lambda kv: kv[1])
        return {name: round(t - marks[0][1], 1) for name, t in marks}

    def summary(self, skipped):
        events = history.load(self.workdir)
        records = FencedFile(os.path.join(self.workdir, 'resource')).records()
        result = history.check(events, records, self.args.lease)
        result.update(backend=self.cluster.backend, lease_s=self.args.lease,
                      url=self.cluster.url, skipped_faults=skipped,
                      stages_s=self._stages(),
                      partition=('netns' if self.pair else
                                 'not run: ' + (chaos_netns.unavailable()
                                                or 'disabled')))
        return result


def run_inside(args):
    pair = (chaos_netns.Pair.from_description(args.inside)
            if args.inside else None)
    run = Run(args, pair)
    try:
        skipped = run.execute()
    finally:
        run.close()
    result = run.summary(skipped)
    if args.keep:
        result['workdir'] = run.workdir
    else:
        shutil.rmtree(run.workdir, ignore_errors=True)
    return result


def run_in_namespaces(argv, args):
    """Re-run this command inside a fresh namespace pair, then delete it."""
    pair = chaos_netns.Pair()
    pair.create()
    try:
        cmd = ['ip', 'netns', 'exec', pair.a, sys.executable, '-m',
               'cinder_resilience.tests.chaos.runner'] + argv + [
                   '--inside', pair.describe()]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True,
                             timeout=args.max_seconds + 600).stdout
        return json.loads(out)
    finally:
        pair.destroy()


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('backend', choices=sorted(clusters.CLUSTERS))
    parser.add_argument('--lease', type=int, default=3,
                        help='lock lease / session timeout, seconds')
    parser.add_argument('--workers', type=int, default=3)
    parser.add_argument('--long', action='store_true')
    parser.add_argument('--acquisitions', type=int, default=10000)
    parser.add_argument('--pause-trials', type=int, default=10)
    parser.add_argument('--max-seconds', type=float, default=1800)
    parser.add_argument('--netns', action='store_true')
    parser.add_argument('--inside', help=argparse.SUPPRESS)
    parser.add_argument('--keep', action='store_true',
                        help='keep the work dir (histories, logs)')
    return parser.parse_args(argv)


def _terminated(signum, frame):
    # SIGTERM unwinds like an exception, so every finally clause cleans up.
    sys.exit(128 + signum)


def main(argv=None):
    signal.signal(signal.SIGTERM, _terminated)
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.netns and not args.inside and not chaos_netns.unavailable():
        rest = [a for a in argv if a != '--netns']
        result = run_in_namespaces(rest, args)
    else:
        result = run_inside(args)
    print(json.dumps(result, indent=1, sort_keys=True))
    return 0


if __name__ == '__main__':
    sys.exit(main())
