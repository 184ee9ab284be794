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

"""A late member and a killed member in a real cluster: cinder vs ours.

The cluster case of ``benchmarks.cinder_reinit``, in the real deployment of
``cinder_resilience.tests.cluster.deployment``. The same scenario runs with
every member on cinder's own ``VolumeManager`` and with every member on
ours, side by side in one deployment (two clusters):

1. Two healthy members serve the cluster; a third starts with its backend
   down. Once its counted attempts are over, ``REQUESTS`` creates go
   through the API: ``failed`` counts those not ``available`` two minutes
   later (in ``error``, or still ``creating`` on the member without a
   driver). Then
   the backend comes up; ``recovered_after_s`` is how long ours took to
   set its driver up (cinder's never does).
2. A member alone takes a long create and a long clone, a second member
   joins, the first is SIGKILLed. ``stuck_after_member_kill`` counts the
   volumes still ``creating`` ``service_down_time`` +
   ``dead_member_cleanup_interval`` + ``SLACK_S`` after the kill.

Goal: ours 0 failed and 0 stuck. Usage: ``python -m
benchmarks.cinder_reinit_cluster [--quick]``; prints a table and merges the
``cluster`` key into ``benchmarks/results/cinder_reinit.json``, keeping the
other keys.
"""

import argparse
import json
import os
import sys
import time

from cinder_resilience.tests.cluster import deployment

REQUESTS = 6
#: Room for a loaded machine on top of service_down_time plus one
#: dead_member_cleanup_interval.
SLACK_S = 30.0
PROBING_AFTER_FAILURES = {'upstream': 4, 'ours': 5}
MANAGERS = {'upstream': deployment.UPSTREAM, 'ours': deployment.OURS}
RESULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           'results', 'cinder_reinit.json')


def _late_member_start(dep, label):
    cluster = dep.add_cluster('late' + label, capacity=2)
    for name in ('m1', 'm2'):
        cluster.add_member(name, manager=MANAGERS[label], wait=False)
    return cluster


def late_member(dep, clusters, requests):
    """Phase 1 for every cluster at once; returns per-label figures."""
    for cluster in clusters.values():
        cluster.wait_member('m1')
        cluster.wait_member('m2')
    for label, cluster in clusters.items():
        cluster.add_member('m3', manager=MANAGERS[label], backend_up=False,
                           wait=False)
    for label, cluster in clusters.items():
        deployment.wait_for(lambda: cluster.setup_failures('m3') >=
                            PROBING_AFTER_FAILURES[label], 180)
    # Cinder starts its RPC servers right after init_host gave up.
    time.sleep(3.0)
    sent = {label: cluster.create(requests, wait=False)
            for label, cluster in clusters.items()}
    result = {'failed': {}, 'recovered_after_s': {}}
    for label, cluster in clusters.items():
        settled = dep.client.wait_settled(sent[label], 120)
        result['failed'][label] = sum(
            1 for v in settled.values() if v is None or
            v['status'] != 'available')
    opened = time.time()
    for cluster in clusters.values():
        cluster.backend_up('m3')
    for label, cluster in clusters.items():
        setups = deployment.wait_for(
            lambda: cluster.member_events('m3', 'setup'), 60)
        result['recovered_after_s'][label] = (
            round(setups[0]['time'] - opened, 1) if setups else None)
    for cluster in clusters.values():
        cluster.stop()
    return result


def member_kill(dep, timing):
    """Phase 2 for both managers at once: volumes stuck after a kill."""
    clusters = {label: dep.add_cluster('dead' + label, capacity=4)
                for label in MANAGERS}
    for label, cluster in clusters.items():
        cluster.add_member('a', manager=MANAGERS[label], wait=False)
    mine = {}
    for label, cluster in clusters.items():
        cluster.wait_member('a')
        [source] = cluster.create(1)
        slow = {'create_seconds': 600,
                'slow_host': cluster.members['a'].conf_host}
        mine[label] = [
            dep.client.create_volume(cluster.volume_type, metadata=slow),
            dep.client.create_volume(cluster.volume_type, source=source,
                                     metadata=slow)]
        cluster.add_member('b', manager=MANAGERS[label], wait=False)
    for cluster in clusters.values():
        deployment.wait_for(
            lambda: len(cluster.member_events('a', 'start')) >= 3, 120)
        cluster.wait_member('b')
    for cluster in clusters.values():
        cluster.members['a'].kill()
    time.sleep(timing['service_down_time'] +
               timing['dead_member_cleanup_interval'] + SLACK_S)
    stuck = {}
    for label, cluster in clusters.items():
        seen = dep.client.volumes(mine[label])
        stuck[label] = sum(1 for v in seen.values()
                           if v and v['status'] in ('creating', 'deleting'))
        cluster.stop()
    return stuck


def measure(quick):
    dep = deployment.Deployment()
    try:
        dep.start()
        clusters = {label: _late_member_start(dep, label)
                    for label in MANAGERS}
        late = late_member(dep, clusters, REQUESTS)
        stuck = member_kill(dep, dep.timing)
    finally:
        dep.stop()
    return {'requests_during_probing': REQUESTS,
            'failed': late['failed'],
            'stuck_after_member_kill': stuck,
            'recovered_after_s': late['recovered_after_s']['ours'],
            'upstream_recovered_after_s': late['recovered_after_s'][
                'upstream'],
            'settings': {'timing': dep.timing,
                         'slack_s': SLACK_S}}


def merge(path, cluster):
    """Put ``cluster`` under the "cluster" key, keeping the other keys."""
    try:
        with open(path) as f:
            document = json.load(f)
    except FileNotFoundError:
        document = {'benchmark': 'cinder_reinit'}
    document['cluster'] = cluster
    with open(path, 'w') as out:
        json.dump(document, out, indent=2, sort_keys=True)
        out.write('\n')


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='python -m benchmarks.cinder_reinit_cluster',
        description='Late and killed members in a real cluster: cinder '
                    'vs ours.')
    parser.add_argument('--quick', action='store_true',
                        help='accepted for the runner; the scenario is '
                             'already as short as it can be')
    parser.add_argument('--output', default=RESULT_PATH,
                        help='JSON file to merge the "cluster" key into')
    return parser.parse_args(argv)


def main(argv=None):
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    reason = deployment.missing()
    if reason:
        print('cannot run: %s' % reason)
        return 1
    began = time.monotonic()
    cluster = measure(args.quick)
    cluster['wall_time_s'] = round(time.monotonic() - began, 1)
    print('cluster case            | upstream | ours')
    print('failed of %d during probing | %8s | %s' % (
        REQUESTS, cluster['failed']['upstream'], cluster['failed']['ours']))
    print('stuck after member kill | %8s | %s' % (
        cluster['stuck_after_member_kill']['upstream'],
        cluster['stuck_after_member_kill']['ours']))
    print('late member recovered after | %8s | %s s' % (
        cluster['upstream_recovered_after_s'], cluster['recovered_after_s']))
    goal = (cluster['failed']['ours'] == 0 and
            cluster['stuck_after_member_kill']['ours'] == 0)
    cluster['goal_met'] = goal
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    merge(args.output, cluster)
    print('goal (ours 0 failed, 0 stuck): %s' % ('met' if goal else
                                                 'NOT met'))
    print('wrote the "cluster" key of %s' % args.output)
    return 0 if goal else 1


if __name__ == '__main__':
    sys.exit(main())
