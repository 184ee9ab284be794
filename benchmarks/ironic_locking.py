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

"""NodeLocked under contention: ironic's TaskManager against ours.

One node in a real ironic database (sqlite file, ironic's own schema and
objects). Bursts of 8 lock requests arrive at once in one conductor
process, as concurrent API calls do; whoever gets the exclusive lock holds
it for about 50 ms. The same bursts run against ironic's stock TaskManager
and against ``ironic_locking.task_manager.TaskManager`` with its default
settings, in one process, one after the other; before them, one worker
alone makes as many acquisitions in a row: the uncontended ceiling.

The full run also drives the deployment scenario of the functional test
(ironic-api and the conductor as separate processes, 8 clients, two
nodes, fake-hardware delays) against stock ``ironic-conductor`` and
``ironic-conductor-resilient``, and counts the 409s.

    python -m benchmarks.ironic_locking [--quick]

Prints a table and writes ``benchmarks/results/ironic_locking.json``.
"""

import argparse
import json
import os
import subprocess
import sys
import time

RESULT_PATH = os.path.join(os.path.dirname(__file__), 'results',
                           'ironic_locking.json')

METRICS = [
    ('failed_ratio', 'share of requests failing with NodeLocked', '{:.1%}'),
    ('p50_wait_s', 'p50 wait (s)', '{:.3f}'),
    ('p99_wait_s', 'p99 wait (s)', '{:.3f}'),
    ('throughput_per_s', 'acquisitions per second', '{:.2f}'),
    ('reserve_calls_per_acquire', 'reserve queries per acquisition',
     '{:.2f}'),
]

# Other settings of ours, run only in the full benchmark.
VARIANTS = [
    ('ours, fixed strategy',
     {'node_locked_retry_strategy': 'fixed'}),
]


def measure(runs, workers, hold, rounds):
    """Run ``benchmarks.ironic_contention`` in a child process.

    ironic's global configuration is parsed there, away from whatever else
    runs in this process (``python -m benchmarks`` runs every benchmark in
    one process, and cinder shares the same global CONF object).
    """
    command = [sys.executable, '-m', 'benchmarks.ironic_contention',
               '--workers', str(workers), '--hold', str(hold),
               '--rounds', str(rounds), '--runs', json.dumps(runs),
               '--ceiling']
    done = subprocess.run(command, capture_output=True, text=True,
                          timeout=900)
    if done.returncode:
        raise RuntimeError('contention run failed (%s):\n%s' %
                           (done.returncode, done.stderr[-3000:]))
    results = json.loads(done.stdout)
    return {label: results[label]
            for label in ['ceiling'] + [run[0] for run in runs]}


def ideal_fifo_p99(ceiling, workers):
    """p99 wait of a perfect first-come-first-served queue (pure).

    A burst of ``workers`` requests served one after the other: the last
    waits ``workers - 1`` times the hold plus the cost of the lock, which
    is what one acquisition takes uncontended.
    """
    return (workers - 1) / ceiling['throughput_per_s']


def goals(upstream, ours, ceiling, workers):
    """The issue's goals, each as (text, met) (pure)."""
    ideal = ideal_fifo_p99(ceiling, workers)
    return [
        ('at least 0.9 x the uncontended ceiling in acquisitions/s',
         ours['throughput_per_s'] >= 0.9 * ceiling['throughput_per_s']),
        ('p99 wait at most 1.5 x the ideal FIFO p99 (%.3f s)' % ideal,
         ours['p99_wait_s'] <= 1.5 * ideal),
        ('at most 1.5 reserve queries per acquisition',
         (ours['reserve_calls_per_acquire'] or 0) <= 1.5),
        ('no failed requests', ours['failed_ratio'] == 0),
        ('fails at most 1/10 as often as upstream',
         ours['failed_ratio'] <= upstream['failed_ratio'] / 10),
    ]


def deployment_scenario():
    """Stock and our conductor behind one ironic-api; 409 counts."""
    # Imported here: only the full run needs the functional harness.
    from ironic_locking.tests.functional import deployment

    results = {}
    with deployment.Deployment() as env:
        uuids = None
        for label, command in (('stock', deployment.STOCK_CONDUCTOR),
                               ('ours', deployment.OUR_CONDUCTOR)):
            env.start_conductor(command)
            uuids = uuids or env.create_nodes(2)
            results[label] = deployment.run_load(env, uuids, clients=8,
                                                 rounds=12)
            env.stop_conductor()
    return {'stock_409': results['stock']['conductor_409'],
            'ours_409': results['ours']['conductor_409'],
            'api_409': results['ours']['api_409'],
            'stock_api_409': results['stock']['api_409'],
            'requests': results['ours']['requests'],
            'runs': results}


def fmt(template, value):
    return 'n/a' if value is None else template.format(value)


def table(results):
    """Render ``{label: figures}`` as a plain-text table (pure)."""
    labels = list(results)
    width = max(len(text) for _, text, _ in METRICS) + 2
    cols = [max(len(label), 9) + 2 for label in labels]
    lines = ['metric'.ljust(width) + ''.join(
        label.rjust(col) for label, col in zip(labels, cols))]
    lines.append('-' * len(lines[0]))
    for key, text, template in METRICS:
        lines.append(text.ljust(width) + ''.join(
            fmt(template, results[label][key]).rjust(col)
            for label, col in zip(labels, cols)))
    return '\n'.join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='3 bursts, no variants, no deployment scenario')
    parser.add_argument('--rounds', type=int,
                        help='bursts per task manager (default 10; 3 '
                             'with --quick)')
    parser.add_argument('--workers', type=int, default=8)
    parser.add_argument('--hold', type=float, default=0.05,
                        help='seconds each holder keeps the lock')
    parser.add_argument('--output', default=RESULT_PATH)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 10)
    runs = [['upstream', 'upstream', {}], ['ours', 'ours', {}]]
    if not args.quick:
        runs += [[label, 'ours', overrides] for label, overrides in VARIANTS]
    print('%d bursts of %d simultaneous lock requests on one node, each '
          'holder keeping the lock %.0f ms; ironic sqlite database; '
          'ironic\'s retry options at their defaults (3 attempts, 1 s '
          'apart); ceiling: one worker, as many acquisitions in a row' %
          (rounds, args.workers, args.hold * 1000))
    began = time.monotonic()
    results = measure(runs, args.workers, args.hold, rounds)
    print(table(results))
    met = goals(results['upstream'], results['ours'], results['ceiling'],
                args.workers)
    for text, ok in met:
        print('goal: ours %s: %s' % (text, 'met' if ok else 'NOT met'))
    document = {
        'upstream': results['upstream'],
        'ours': results['ours'],
        'ceiling': results['ceiling'],
        'ideal_fifo_p99_s': round(ideal_fifo_p99(results['ceiling'],
                                                 args.workers), 4),
        'variants': {label: results[label] for label, _ in VARIANTS
                     if label in results},
        'scenario': {'workers': args.workers, 'hold_s': args.hold,
                     'bursts': rounds,
                     'database': 'sqlite file, ironic schema, '
                                 'synchronous writes off'},
        'goals_met': {text.split(' (')[0]: ok for text, ok in met},
    }
    if not args.quick:
        print('deployment scenario: ironic-api and the conductor as '
              'separate processes, 8 clients, 2 nodes ...', flush=True)
        document['deployment'] = deployment_scenario()
        dep = document['deployment']
        print('conductor 409s: stock %(stock_409)d, ours %(ours_409)d; '
              'ironic-api\'s own 409s (ours): %(api_409)d; requests per '
              'run: %(requests)d' % dep)
    document['scenario']['duration_s'] = round(time.monotonic() - began, 1)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, 'w') as out:
        json.dump(document, out, indent=2, sort_keys=True)
        out.write('\n')
    print('written to %s' % args.output)
    return 0


if __name__ == '__main__':
    sys.exit(main())
