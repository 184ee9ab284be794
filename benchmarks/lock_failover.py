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

"""Lock failover: seconds from a holder's SIGKILL until another process holds.

``python -m benchmarks.lock_failover [--quick] [--backends redis,etcd,...]``

Per backend (redis, etcd, zookeeper), on one real server started on a free
port, for upstream's coordinator (``cinder.coordination.Coordinator``, tooz
defaults) and ours (``cinder_resilience.coordination.Coordinator``, lease of
``heartbeat`` x ``lease_heartbeats``):

1. a holder process starts the coordinator, takes ``cinder-failover-N``
   and says so;
2. it is SIGKILLed (no release, no disconnect: a crash);
3. this process, using the same kind of coordinator, tries a non-blocking
   acquire every 50 ms; the figure is the time from the kill to success.

``measure(backends, heartbeat, samples)`` returns
``{"redis": {"upstream": s, "ours": s}, ...}`` (the median of the samples)
for ``benchmarks/cinder_cluster.py``.  The goal is ours within
3 x ``heartbeat``.  ZooKeeper's server bounds session timeouts to 2-20
``tickTime``: the test server runs with 250 ms ticks (production servers
often use 2 s, so sessions of at least 4 s).
"""

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid

BACKENDS = ('redis', 'etcd', 'zookeeper')
MODES = ('upstream', 'ours')
POLL = 0.05
GIVE_UP = 120.0
HEARTBEAT = 1.0
GOAL_HEARTBEATS = 3
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       'results', 'lock_failover.json')


def _coordinator(mode, url, heartbeat):
    """A started coordinator of ``mode`` on ``url``."""
    from oslo_config import cfg
    if mode == 'upstream':
        from cinder import coordination as cinder_coordination
        cfg.CONF.set_override('backend_url', url, 'coordination')
        coord = cinder_coordination.Coordinator(prefix='cinder-')
    else:
        from cinder_resilience import coordination
        conf = cfg.ConfigOpts()
        coordination.register_opts(conf)
        conf.set_override('heartbeat', heartbeat, 'coordination')
        coord = coordination.Coordinator(prefix='cinder-', conf=conf,
                                         backend_url=url)
    coord.start()
    return coord


def hold(mode, url, name, heartbeat):
    """Holder process: take ``name``, say so, wait to be killed."""
    coord = _coordinator(mode, url, heartbeat)
    lock = coord.get_lock(name)
    if not lock.acquire(blocking=True):
        return 1
    print('held', flush=True)
    while True:
        time.sleep(3600)


def _start_holder(mode, url, name, heartbeat):
    proc = subprocess.Popen(
        [sys.executable, '-m', 'benchmarks.lock_failover', '--hold', mode,
         '--url', url, '--name', name, '--heartbeat', str(heartbeat)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().strip()
    if line != 'held':
        proc.kill()
        proc.wait()
        raise RuntimeError('%s holder did not take the lock (exit %s)'
                           % (mode, proc.poll()))
    return proc


def failover_once(mode, url, heartbeat):
    """Seconds from SIGKILL of a holder to our non-blocking success."""
    name = 'failover-%s' % uuid.uuid4().hex[:8]
    holder = _start_holder(mode, url, name, heartbeat)
    coord = _coordinator(mode, url, heartbeat)
    try:
        lock = coord.get_lock(name)
        if lock.acquire(blocking=False):
            raise RuntimeError('lock %s was not held' % name)
        holder.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        holder.wait()
        while not lock.acquire(blocking=False):
            if time.monotonic() - killed > GIVE_UP:
                raise RuntimeError('%s: lock not free after %ss'
                                   % (mode, GIVE_UP))
            time.sleep(POLL)
        elapsed = time.monotonic() - killed
        lock.release()
        return elapsed
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        coord.stop()


def _server(name):
    from cinder_resilience.tests.functional import servers
    server_cls = servers.SERVERS[name]
    missing = server_cls.available()
    if missing:
        return None, missing
    server = server_cls(durable=True)
    server.start()
    return server, None


def measure(backends=BACKENDS, heartbeat=HEARTBEAT, samples=1):
    """Failover seconds per backend and coordinator (medians).

    :returns: ``{backend: {"upstream": s, "ours": s}}``; a backend whose
              server cannot run here is left out (and named on stdout)
    """
    results = {}
    for name in backends:
        server, missing = _server(name)
        if missing:
            print('skipping %s: %s' % (name, missing), flush=True)
            continue
        try:
            results[name] = {
                mode: round(statistics.median(
                    failover_once(mode, server.url, heartbeat)
                    for _ in range(samples)), 2)
                for mode in MODES}
        finally:
            server.cleanup_all()
    return results


def _table(results, heartbeat):
    lines = ['%-10s %14s %10s %14s' % ('backend', 'upstream s', 'ours s',
                                       'goal (ours) s')]
    for name, row in results.items():
        lines.append('%-10s %14.2f %10.2f %14.1f' % (
            name, row['upstream'], row['ours'],
            GOAL_HEARTBEATS * heartbeat))
    return '\n'.join(lines)


def _parse(argv):
    parser = argparse.ArgumentParser(prog='python -m benchmarks.lock_failover',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='one sample per backend and coordinator')
    parser.add_argument('--backends', default=','.join(BACKENDS))
    parser.add_argument('--heartbeat', type=float, default=HEARTBEAT)
    parser.add_argument('--output', default=RESULTS)
    parser.add_argument('--hold', choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument('--url', help=argparse.SUPPRESS)
    parser.add_argument('--name', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.hold:
        return hold(args.hold, args.url, args.name, args.heartbeat)
    samples = 1 if args.quick else 3
    results = measure(args.backends.split(','), args.heartbeat, samples)
    print(_table(results, args.heartbeat))
    goal = GOAL_HEARTBEATS * args.heartbeat
    missed = [n for n, row in results.items() if row['ours'] > goal]
    print('goal: ours within %d x heartbeat (%.1f s): %s' % (
        GOAL_HEARTBEATS, goal, 'met' if not missed else
        'NOT met on ' + ', '.join(missed)))
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, 'w') as f:
        json.dump({'failover_s': results, 'heartbeat_s': args.heartbeat,
                   'samples': samples, 'poll_s': POLL,
                   'python': platform.python_version(),
                   'cpus': os.cpu_count()}, f, indent=2, sort_keys=True)
        f.write('\n')
    print('wrote %s' % args.output)
    return 0


if __name__ == '__main__':
    sys.exit(main())
