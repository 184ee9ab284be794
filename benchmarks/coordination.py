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

"""Lock throughput: raw tooz (what cinder.coordination hands out) vs ours.

``python -m benchmarks.coordination [--quick] [--backends file,redis,...]``

Per backend, in one run and on one server:

* uncontended acquire+release per second on one lock object, through raw
  tooz (``get_coordinator(...).get_lock()``, as ``cinder.coordination``
  returns it) and through ``cinder_resilience.coordination.Coordinator``;
  the two alternate in many short slices and the best slice of each
  counts (the figures are for one machine shared with other work);
* contended throughput: 4 processes looping acquire+release on one lock
  name through our Coordinator, total successful acquisitions per second.

Servers are started on free ports in temp dirs (the functional test
fixtures); a backend whose server binary is missing is skipped, saying so.
Results go to ``benchmarks/results/coordination.json``.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

BACKENDS = ('file', 'redis', 'zookeeper', 'etcd')
CONTENDERS = 4
GOAL = 0.9
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       'results', 'coordination.json')
# Short leases so a crashed benchmark leaves nothing behind for long.
SERVER_OPTIONS = {'redis': {'lock_timeout': '10'},
                  'etcd': {'lock_timeout': '10'},
                  'zookeeper': {'timeout': '10'},
                  'memcached': {'lock_timeout': '10'}}


def _conf():
    from oslo_config import cfg

    from cinder_resilience import coordination
    conf = cfg.ConfigOpts()
    coordination.register_opts(conf)
    conf([])
    return conf


def _ours(url):
    from cinder_resilience import coordination
    coord = coordination.Coordinator(prefix='cinder-', conf=_conf(),
                                     backend_url=url)
    coord.start()
    return coord, coord.get_lock('bench-uncontended')


def _raw(url):
    from tooz import coordination as tooz_coordination
    member = ('cinder-' + str(uuid.uuid4())).encode('ascii')
    coord = tooz_coordination.get_coordinator(url, member)
    coord.start(start_heart=True)
    return coord, coord.get_lock(b'cinder-bench-uncontended')


def _loop(lock, seconds):
    """Acquire+release as often as possible; return operations/second."""
    count = 0
    started = time.perf_counter()
    end = started + seconds
    while True:
        for _ in range(20):
            lock.acquire()
            lock.release()
        count += 20
        now = time.perf_counter()
        if now >= end:
            return count / (now - started)


def uncontended(url, slices, seconds):
    """Best rate of each side over many short alternating time slices.

    Short slices in alternating order expose both sides to the same noise
    (the machine is shared); the best slice is each side's figure.
    """
    raw_coord, raw_lock = _raw(url)
    our_coord, our_lock = _ours(url)
    try:
        _loop(raw_lock, seconds)   # warm connections and caches
        _loop(our_lock, seconds)
        raw, ours = [], []
        for n in range(slices):
            pair = [(raw, raw_lock), (ours, our_lock)]
            for rates, lock in (pair if n % 2 == 0 else pair[::-1]):
                rates.append(_loop(lock, seconds))
    finally:
        our_coord.stop()
        raw_coord.stop()
    return max(raw), max(ours)


def contended(url, seconds):
    start_at = time.time() + 3.0
    procs = [subprocess.Popen(
        [sys.executable, '-m', 'benchmarks.coordination', '--worker', url,
         '--start-at', repr(start_at), '--seconds', repr(seconds)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        for _ in range(CONTENDERS)]
    total = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 60)
        total += int(out.split()[-1])
    return total / seconds


def worker(url, start_at, seconds):
    coord, _ = _ours(url)
    lock = coord.get_lock('bench-contended')
    time.sleep(max(0.0, start_at - time.time()))
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        if lock.acquire(timeout=1):
            lock.release()
            count += 1
    coord.stop()
    print(count, flush=True)
    return 0


def _server(name):
    from cinder_resilience.tests.functional import servers
    if name == 'file':
        return None, None
    server_cls = servers.SERVERS[name]
    missing = server_cls.available()
    if missing:
        return None, missing
    return server_cls(SERVER_OPTIONS[name], durable=True).start(), None


def measure(name, slices, seconds, contended_seconds):
    server, missing = _server(name)
    if missing:
        return None, missing
    tmp = tempfile.mkdtemp(prefix='bench-coord-') if server is None else None
    url = server.url if server else 'file://' + tmp
    try:
        raw, ours = uncontended(url, slices, seconds)
        busy = contended(url, contended_seconds)
    finally:
        if server:
            server.cleanup_all()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return {'raw_ops_per_s': round(raw, 1), 'ours_ops_per_s': round(ours, 1),
            'ratio': round(ours / raw, 3),
            'contended_ops_per_s': round(busy, 1),
            'contenders': CONTENDERS}, None


def _table(results, skipped):
    lines = ['%-10s %22s %14s %7s %24s' % (
        'backend', 'upstream (raw tooz)/s', 'ours/s', 'ratio',
        'ours contended (4 procs)/s')]
    for name, row in results.items():
        lines.append('%-10s %22.0f %14.0f %7.2f %24.0f' % (
            name, row['raw_ops_per_s'], row['ours_ops_per_s'], row['ratio'],
            row['contended_ops_per_s']))
    for name, why in skipped.items():
        lines.append('%-10s skipped: %s' % (name, why))
    return '\n'.join(lines)


def _parse(argv):
    parser = argparse.ArgumentParser(prog='python -m benchmarks.coordination',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='fewer and shorter runs (CI and demo)')
    parser.add_argument('--backends', default=','.join(BACKENDS),
                        help='comma-separated list among %s (and '
                             'memcached, not run by default)' % ', '.join(
                                 BACKENDS))
    parser.add_argument('--output', default=RESULTS)
    parser.add_argument('--worker', metavar='URL', help=argparse.SUPPRESS)
    parser.add_argument('--start-at', type=float, help=argparse.SUPPRESS)
    parser.add_argument('--seconds', type=float, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.worker:
        return worker(args.worker, args.start_at, args.seconds)
    slices, seconds, busy = (8, 0.25, 2.0) if args.quick else (30, 0.25, 6.0)
    results, skipped = {}, {}
    for name in args.backends.split(','):
        print('measuring %s ...' % name, flush=True)
        row, missing = measure(name, slices, seconds, busy)
        if missing:
            print('skipping %s: %s' % (name, missing), flush=True)
            skipped[name] = missing
        else:
            results[name] = row
    print(_table(results, skipped))
    below = [n for n, row in results.items() if row['ratio'] < GOAL]
    print('goal: ours >= %.1f x raw tooz on every backend: %s' % (
        GOAL, 'met' if not below else 'NOT met on ' + ', '.join(below)))
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, 'w') as f:
        json.dump({'backends': results, 'skipped': skipped, 'goal': GOAL,
                   'quick': args.quick, 'python': platform.python_version(),
                   'cpus': os.cpu_count()}, f, indent=2, sort_keys=True)
        f.write('\n')
    print('wrote %s' % args.output)
    return 0


if __name__ == '__main__':
    sys.exit(main())
