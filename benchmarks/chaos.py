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

"""Lock safety on real clusters under faults: the long chaos run.

For each cluster (3-node etcd, 3-node ZooKeeper, redis primary + replica +
3 sentinels) ``cinder_resilience.tests.chaos.runner --long`` runs workers
that take one lock and append to a fenced file with their token while the
harness pauses and kills holders, kills and restarts the leader and a
follower, pauses the leader and partitions a member (network namespaces),
until there are 10,000 acquisitions and 10 pause trials.

Side by side from the same histories:

* upstream (tooz alone gives no token): ``unfenced_overlaps``, the writes a
  holder made after the lock had been granted to someone else, which a
  resource without fencing would have applied;
* ours: ``stale_writes_accepted`` by the fenced resource, and paused holders
  told they lost the lock within one lease after they resumed.

The three clusters run at the same time, each in its own namespaces.
``--quick`` runs one pass over the faults instead (CI size).  Results go to
``benchmarks/results/chaos.json``.
"""

import argparse
import json
import os
import subprocess
import sys

RESULT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      'results', 'chaos.json')
CLUSTERS = ('etcd', 'zookeeper', 'redis-sentinel')
LEASE = 3


def start(cluster, quick, max_seconds):
    argv = [sys.executable, '-m', 'cinder_resilience.tests.chaos.runner',
            cluster, '--netns', '--lease', str(LEASE),
            '--max-seconds', str(max_seconds)]
    if not quick:
        argv.append('--long')
    return subprocess.Popen(argv, stdout=subprocess.PIPE)


def finish(proc, max_seconds):
    out, _err = proc.communicate(timeout=max_seconds + 900)
    if proc.returncode:
        raise RuntimeError('chaos runner failed: %s' % proc.args)
    return json.loads(out)


def _row(summary):
    pauses = [t for t in summary['pause_details'] if t['held']]
    latencies = [t['reported_after_resume'] for t in pauses
                 if 'reported_after_resume' in t]
    return {
        'acquisitions': summary['acquisitions'],
        'stale_writes_accepted': summary['stale_writes_accepted'],
        'unfenced_overlaps': summary['unfenced_overlaps'],
        'lost_lock_reports': summary['lost_lock_reports'],
        'pause_trials': summary['pause_trials'],
        'lost_lock_detected_within_lease':
            summary['lost_lock_detected_within_lease'],
        'faults': sorted(set(summary['faults'])),
        'fault_count': len(summary['faults']),
        'double_grants': summary['double_grants'],
        'double_grant_worst_overlap_s':
            summary['double_grant_worst_overlap_s'],
        'overlapping_accepted_writes':
            summary['overlapping_accepted_writes'],
        'writes_rejected_by_fence': summary['writes_rejected'],
        'lost_report_after_resume_max_s': max(latencies)
        if latencies else None,
        'killed_holders_held_lock': sum(
            1 for t in summary['kill_trials'] if t['held']),
        'kill_trials': len(summary['kill_trials']),
        'freed_after_kill_max_s': max(
            [t['next_grant_after'] or 0 for t in summary['kill_trials']]
            or [0]),
        'partition': summary['partition'],
        'lease_s': summary['lease_s'],
        'url': summary['url'],
    }


def _table(results):
    head = ('backend', 'acquisitions', 'unfenced (tooz)', 'stale (ours)',
            'told<=lease', 'double grants', 'faults')
    lines = ['%-15s %12s %15s %12s %11s %13s %6s' % head]
    for name, row in results.items():
        lines.append('%-15s %12d %15d %12d %5d/%-5d %13d %6d' % (
            name, row['acquisitions'], row['unfenced_overlaps'],
            row['stale_writes_accepted'],
            row['lost_lock_detected_within_lease'], row['pause_trials'],
            row['double_grants'], row['fault_count']))
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--max-seconds', type=float, default=3000,
                        help='stop each long run after this long even if '
                             'it has not reached its goals yet')
    parser.add_argument('clusters', nargs='*', default=list(CLUSTERS))
    args = parser.parse_args(argv)
    # The clusters run side by side, each in its own namespaces.
    procs = {c: start(c, args.quick, args.max_seconds)
             for c in args.clusters}
    results = {c: _row(finish(p, args.max_seconds))
               for c, p in procs.items()}
    print(_table(results))
    with open(RESULT, 'w') as f:
        json.dump(results, f, indent=1, sort_keys=True)
        f.write('\n')
    unsafe = [n for n, r in results.items() if r['stale_writes_accepted']
              or r['overlapping_accepted_writes']]
    return 1 if unsafe else 0


if __name__ == '__main__':
    sys.exit(main())
