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

"""Scene: API calls that meet a locked node, stock ironic against ours.

Runs ``benchmarks.ironic_contention`` in a child process: a real ironic
database (sqlite file, ironic's schema and objects), one node, and bursts of
eight simultaneous requests for the node's exclusive lock, each holder
keeping it for 50 ms. The same bursts meet ironic's stock TaskManager first,
then the retrying one (hand-off), both with ironic's default retry options.
"""

import json
import subprocess
import sys

ROUNDS = 2
WORKERS = 8
HOLD = 0.05


def _measure():
    command = [sys.executable, '-m', 'benchmarks.ironic_contention',
               '--rounds', str(ROUNDS), '--workers', str(WORKERS),
               '--hold', str(HOLD)]
    done = subprocess.run(command, capture_output=True, text=True,
                          timeout=120)
    if done.returncode:
        print('the contention run failed:\n%s' % done.stderr[-2000:])
        return None
    return json.loads(done.stdout)


def _row(text, key, template, results):
    cells = ['n/a' if results[name][key] is None
             else template.format(results[name][key])
             for name in ('upstream', 'ours')]
    print('  %-34s %12s %12s' % (text, cells[0], cells[1]))


def main(argv=None):
    print('Ironic serialises work on a node with a lock kept in its '
          'database.\nWhen an API call needs the lock while another task '
          'holds it, the\nconductor retries a few times and then answers '
          'HTTP 409 NodeLocked.')
    print('Stock ironic makes 3 attempts, 1 s apart: callers that collide '
          'once\ncollide again, in step. The retrying task manager keeps '
          'ironic\'s 3 attempts\nand 2 s of patience, but hands a released '
          'node to the next waiter of\nthe same conductor at once.\n')
    print('Now: %d bursts of %d simultaneous lock requests on one node in '
          'a real\nironic sqlite database, each holder keeping the lock '
          '%d ms ...' % (ROUNDS, WORKERS, HOLD * 1000))
    results = _measure()
    if results is None:
        return 1
    print('\n  %-34s %12s %12s' % ('', 'stock ironic', 'retrying'))
    _row('requests', 'requests', '{}', results)
    _row('failed with NodeLocked', 'failed_ratio', '{:.0%}', results)
    _row('median wait (s)', 'p50_wait_s', '{:.2f}', results)
    _row('slowest wait, p99 (s)', 'p99_wait_s', '{:.2f}', results)
    _row('acquisitions per second', 'throughput_per_s', '{:.1f}', results)
    _row('reserve queries per acquisition', 'reserve_calls_per_acquire',
         '{:.1f}', results)
    stock, ours = results['upstream'], results['ours']
    shown = (stock['failed_ratio'] > 0 and ours['failed_ratio'] == 0
             and ours['p50_wait_s'] < stock['p50_wait_s'])
    if shown:
        print('\nStock ironic turned %.0f%% of the requests away with '
              'NodeLocked; the\nretrying task manager served every one of '
              'them, with a shorter\nmedian wait.' %
              (stock['failed_ratio'] * 100))
    else:
        print('\nThe expected difference did not show in this run.')
    return 0 if shown else 1


if __name__ == '__main__':
    sys.exit(main())
