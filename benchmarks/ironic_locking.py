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
objects). Bursts of 8 lock requests arrive at once, as concurrent API calls
do; whoever gets the exclusive lock holds it for about 50 ms. The same bursts
run against ironic's stock TaskManager and against
``ironic_locking.task_manager.TaskManager`` with its default settings, in
one process, one after the other.

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

# Other settings of ours, run only in the full benchmark: they are the
# evidence behind the default strategy and initial wait.
VARIANTS = [
    ('ours, fixed strategy',
     {'node_locked_retry_strategy': 'fixed'}),
    ('ours, max wait 1 s',
     {'node_locked_retry_max_wait': 1.0}),
    ('ours, initial wait 0.02 s',
     {'node_locked_retry_initial_wait': 0.02}),
    ('ours, initial wait 0.2 s',
     {'node_locked_retry_initial_wait': 0.2}),
]


def measure(runs, workers, hold, rounds):
    """Run ``ironic_locking.contention`` in a child process.

    ironic's global configuration is parsed there, away from whatever else
    runs in this process (``python -m benchmarks`` runs every benchmark in
    one process, and cinder shares the same global CONF object).
    """
    command = [sys.executable, '-m', 'ironic_locking.contention',
               '--workers', str(workers), '--hold', str(hold),
               '--rounds', str(rounds), '--runs', json.dumps(runs)]
    done = subprocess.run(command, capture_output=True, text=True,
                          timeout=900)
    if done.returncode:
        raise RuntimeError('contention run failed (%s):\n%s' %
                           (done.returncode, done.stderr[-3000:]))
    results = json.loads(done.stdout)
    return {label: results[label] for label, _, _ in runs}


def goals(upstream, ours):
    """The issue's goals, each as (text, met) (pure)."""
    return [
        ('fails at most 1/10 as often as upstream',
         ours['failed_ratio'] <= upstream['failed_ratio'] / 10),
        ('p50 wait at most 1/3 of upstream',
         ours['p50_wait_s'] <= upstream['p50_wait_s'] / 3),
        ('at most 10 reserve queries per acquisition',
         (ours['reserve_calls_per_acquire'] or 0) <= 10),
    ]


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
                        help='3 bursts, no variants (about 15 s)')
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
          'apart)' %
          (rounds, args.workers, args.hold * 1000))
    began = time.monotonic()
    results = measure(runs, args.workers, args.hold, rounds)
    print(table(results))
    met = goals(results['upstream'], results['ours'])
    for text, ok in met:
        print('goal: ours %s: %s' % (text, 'met' if ok else 'NOT met'))
    document = {
        'upstream': results['upstream'],
        'ours': results['ours'],
        'variants': {label: results[label] for label, _ in VARIANTS
                     if label in results},
        'scenario': {'workers': args.workers, 'hold_s': args.hold,
                     'bursts': rounds,
                     'database': 'sqlite file, ironic schema, '
                                 'synchronous writes off',
                     'duration_s': round(time.monotonic() - began, 1)},
        'goals_met': {text: ok for text, ok in met},
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, 'w') as out:
        json.dump(document, out, indent=2, sort_keys=True)
        out.write('\n')
    print('written to %s' % args.output)
    return 0


if __name__ == '__main__':
    sys.exit(main())
