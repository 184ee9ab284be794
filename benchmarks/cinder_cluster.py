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

"""Scale-out of an active-active cinder cluster, and lock failover.

A real deployment on 127.0.0.1 (RabbitMQ, MariaDB, redis, cinder-api,
cinder-scheduler; see ``cinder_resilience.tests.cluster.deployment``)
serves one clustered backend with 1, 2 and 3 cinder-volume members running
our manager. The test driver takes ``OP_SECONDS`` per create and runs at
most ``CAPACITY`` at once per member, so one member's throughput is bounded
the way a real backend connection is. For each size, ``PER_MEMBER`` x
members volumes are created through the REST API at once, and the figure is
volumes that reached ``available`` per second, from the first POST to the
last one available.

Lock failover after a holder's SIGKILL, per tooz backend, upstream's
coordinator against ours, comes from ``benchmarks.lock_failover`` in the
same run; ``cluster_failover_s`` adds the same measured inside this
cluster: a member that holds a clone's lock is killed, and the survivor's
delete of the clone's source waits for that lock.

Goals: 2 members >= 1.8 x one member, 3 members >= 2.5 x; failover with
ours within 3 x ``heartbeat``. Usage: ``python -m benchmarks.cinder_cluster
[--quick]``; prints a table, writes ``benchmarks/results/cinder_cluster.json``.
"""

import argparse
import concurrent.futures
import json
import os
import sys
import time

from cinder_resilience.tests.cluster import deployment

#: Long enough that the members' capacity, not the control plane
#: (cinder-api, cinder-scheduler, MariaDB on a shared 2-core machine), bounds
#: the throughput of three members.
OP_SECONDS = 10.0
CAPACITY = 1
SIZES = (1, 2, 3)
RESULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           'results', 'cinder_cluster.json')


def _start_members(cluster, count):
    names = ['m%d' % i for i in range(1, count + 1)]
    for name in names:
        cluster.add_member(name, wait=False)
    for name in names:
        cluster.wait_member(name)


def throughput(dep, members, per_member):
    """Volumes available per second with ``members`` members."""
    cluster = dep.add_cluster('tp%d' % members, op_seconds=OP_SECONDS,
                              capacity=CAPACITY)
    try:
        _start_members(cluster, members)
        count = per_member * members
        began = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(
                lambda _i: dep.client.create_volume(cluster.volume_type),
                range(count)))
        settled = dep.client.wait_settled(ids, 600, interval=0.25)
        took = time.monotonic() - began
        available = [v for v in settled.values()
                     if v and v['status'] == 'available']
        served_by = {v['os-vol-host-attr:host'].partition('#')[0]
                     for v in available}
        return {'volumes': count, 'available': len(available),
                'seconds': round(took, 2),
                'per_s': round(len(available) / took, 3),
                'members_serving': len(served_by)}
    finally:
        cluster.stop()


def cluster_failover(dep):
    """Seconds from a lock holder's SIGKILL to the survivor's locked call."""
    cluster = dep.add_cluster('failover', capacity=2)
    try:
        victim = cluster.add_member('a')
        [source] = cluster.create(1)
        cluster.create(1, wait=False, source=source,
                       metadata={'create_seconds': 600,
                                 'slow_host': victim.conf_host})
        deployment.wait_for(
            lambda: cluster.member_events('a', 'start', 'clone'), 120)
        cluster.add_member('b')
        victim.kill()
        killed = time.time()
        dep.client.delete_volume(source)
        started = deployment.wait_for(
            lambda: cluster.member_events('b', 'start', 'delete'), 120)
        return round(started[0]['time'] - killed, 2) if started else None
    finally:
        cluster.stop()


def backend_failover(quick, heartbeat):
    """Per-backend figures of ``benchmarks.lock_failover``.

    :returns: ``{backend: {"upstream": s, "ours": s}}``
    """
    from benchmarks import lock_failover
    return lock_failover.measure(heartbeat=heartbeat,
                                 samples=1 if quick else 3)


def print_table(result):
    base = result['throughput_per_s']['1']
    print('members | volumes/s | x one member')
    for size in SIZES:
        value = result['throughput_per_s'][str(size)]
        print('%7d | %9.3f | %5.2f' % (size, value, value / base))
    print('lock failover after SIGKILL (s), heartbeat %.1f s:'
          % result['heartbeat_s'])
    print('backend    | upstream | ours')
    for backend, row in sorted(result['failover_s'].items()):
        print('%-10s | %8s | %s' % (backend, row.get('upstream'),
                                    row.get('ours')))
    print('in this cluster (cinder\'s own clone/delete lock): %s s'
          % result['cluster_failover_s'])


def goals(result):
    tp = result['throughput_per_s']
    met = {'2_members_1.8x': tp['2'] >= 1.8 * tp['1'],
           '3_members_2.5x': tp['3'] >= 2.5 * tp['1']}
    bound = 3 * result['heartbeat_s']
    for backend, row in result['failover_s'].items():
        ours = row.get('ours')
        met['failover_%s_within_3_heartbeats' % backend] = (
            ours is not None and ours <= bound)
    return met


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='python -m benchmarks.cinder_cluster',
        description='Volumes/s with 1-3 cluster members; lock failover.')
    parser.add_argument('--quick', action='store_true',
                        help='2 volumes per member instead of 4')
    parser.add_argument('--output', default=RESULT_PATH,
                        help='where to write the JSON results')
    return parser.parse_args(argv)


def main(argv=None):
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    reason = deployment.missing()
    if reason:
        print('cannot run: %s' % reason)
        return 1
    per_member = 2 if args.quick else 4
    began = time.monotonic()
    dep = deployment.Deployment()
    try:
        dep.start()
        details = {str(n): throughput(dep, n, per_member) for n in SIZES}
        in_cluster = cluster_failover(dep)
    finally:
        dep.stop()
    result = {
        'throughput_per_s': {k: v['per_s'] for k, v in details.items()},
        'failover_s': backend_failover(args.quick, dep.timing['heartbeat']),
        'heartbeat_s': dep.timing['heartbeat'],
        'cluster_failover_s': in_cluster,
        'throughput_runs': details,
        'settings': {'op_seconds': OP_SECONDS, 'capacity': CAPACITY,
                     'volumes_per_member': per_member,
                     'timing': dep.timing},
        'wall_time_s': round(time.monotonic() - began, 1),
    }
    result['goals'] = goals(result)
    print_table(result)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, 'w') as out:
        json.dump(result, out, indent=2, sort_keys=True)
        out.write('\n')
    print('goals: %s' % ', '.join('%s %s' % (k, 'met' if v else 'NOT met')
                                  for k, v in sorted(result['goals'].items())))
    print('wrote %s' % args.output)
    return 0 if all(result['goals'].values()) else 1


if __name__ == '__main__':
    sys.exit(main())
