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

"""Time-to-ready of a volume service whose backend comes up late.

For backends that become ready 0.5, 3, 10, 30 and 120 s after the service
starts, the same run starts cinder's own ``VolumeManager`` and ours (both the
real classes, on an in-process sqlite database) with a driver that fails
until the backend is ready, and records when each gets its driver
initialized. Each failed attempt takes T seconds, T in {0, 5, 30}: a driver
whose connection to a dead backend times out after T s. cinder's counted
attempts then cover ``7 + 4T`` s (waits 1 + 2 + 4 s and four attempts), so
a backend later than the start of its last attempt (``7 + 3T`` s) is never
picked up. Time is virtual: cinder's ``time.sleep`` in ``init_host``, our
waiter and background looping call, and the failing attempts advance one
simulated clock, so a 120 s backend costs milliseconds. Our waits are
jittered, so ours runs several trials per delay (seeded).

Goal: ours recovers for every delay and every T, within the delay plus T
plus one capped probe interval. Usage: ``python -m benchmarks.cinder_reinit
[--quick]``; prints a table and writes ``benchmarks/results/
cinder_reinit.json`` (other sections of that file, such as the
``cluster`` one written by ``benchmarks.cinder_cluster``, are kept).
"""

import argparse
import json
import logging
import os
import random
import statistics
import sys
import time
from unittest import mock

from cinder import exception as cinder_exception
from oslo_config import cfg

from cinder_resilience import manager
from cinder_resilience.tests.functional import late_backend

DELAYS = (0.5, 3.0, 10.0, 30.0, 120.0)
#: Seconds a failing driver attempt takes (a connection timeout).
ATTEMPT_TIMEOUTS = (0.0, 5.0, 30.0)
HORIZON_S = 3600.0
HOST = 'bench@late'
DRIVER = 'cinder_resilience.tests.functional.late_backend.GatedDriver'
RESULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           'results', 'cinder_reinit.json')
CONF = cfg.CONF


class ReinitVolumeManager(manager.DriverReinitMixin,
                          manager.cinder_manager.VolumeManager):
    """Only the re-initialization plugin over cinder's manager."""


class _VirtualTime:
    """The ``time`` module as cinder's manager sees it, sleeping virtually."""

    def __init__(self, clock):
        self._clock = clock

    def sleep(self, seconds):
        self._clock.advance(seconds)

    def __getattr__(self, name):
        return getattr(time, name)


def _gate(clock, delay, ready_at, timeout):
    def gate():
        if clock() < delay:
            # The backend does not answer: the attempt times out.
            clock.advance(timeout)
            raise cinder_exception.VolumeBackendAPIException(
                data='backend not ready before %.1f s' % delay)
        ready_at.append(clock())
    return gate


def _start(manager_cls, env, clock, delay, timeout):
    vm = manager_cls(volume_driver=DRIVER, host=HOST, service_name='late')
    ready_at = []
    vm.driver.gate = _gate(clock, delay, ready_at, timeout)
    service = env.create_service(HOST)
    return vm, service, ready_at


def run_upstream(delay, timeout=0.0):
    """cinder's own manager: seconds until the driver is up, or None."""
    clock = late_backend.VirtualClock()
    with late_backend.CinderFixture() as env:
        vm, service, ready_at = _start(
            manager.cinder_manager.VolumeManager, env, clock, delay, timeout)
        with mock.patch.object(manager.cinder_manager, 'time',
                               _VirtualTime(clock)):
            vm.init_host(added_to_cluster=None, service_id=service.id)
        # Nothing in cinder ever calls _init_host again: this is final.
        return ready_at[0] if vm.driver.initialized else None


def run_ours(delay, seed, timeout=0.0):
    """Our manager: seconds until the driver is up, or None."""
    clock = late_backend.VirtualClock()
    rng = random.Random(seed)
    with late_backend.CinderFixture() as env:
        vm, service, ready_at = _start(ReinitVolumeManager, env, clock, delay,
                                       timeout)
        runner = late_backend.VirtualRunner(clock)
        vm.reinit_wait = lambda seconds: clock.advance(seconds) or False
        vm.reinit_clock = clock
        vm.reinit_random = rng.random
        vm.reinit_runner = runner
        vm.init_host(added_to_cluster=None, service_id=service.id)
        vm.init_host_with_rpc()
        if runner.step is not None:
            runner.run(until=HORIZON_S)
        vm.stop_reinit()
        return ready_at[0] if vm.driver.initialized else None


def upstream_window(count, timeout):
    """Seconds cinder's counted attempts last: waits plus every attempt."""
    return float(2 ** count - 1) + (count + 1) * timeout


def measure_timeout(trials, seed, timeout):
    """Every delay with attempts that fail after ``timeout`` s."""
    probe_cap = float(CONF.reinit_driver_probe_interval)
    results = {}
    for delay in DELAYS:
        ours = [run_ours(delay, seed + n, timeout) for n in range(trials)]
        recovered = [t for t in ours if t is not None]
        bound = delay + timeout + probe_cap
        results[_key(delay)] = {
            'upstream_ready_s': _round(run_upstream(delay, timeout)),
            'ours_ready_s': _round(statistics.median(recovered)
                                   if len(recovered) == trials else None),
            'ours_ready_max_s': _round(max(recovered) if recovered else None),
            'ours_recovered_trials': len(recovered),
            'bound_s': bound,
            'within_bound': (len(recovered) == trials and
                             max(recovered) <= bound),
        }
    return results


def measure(trials, seed, timeouts=ATTEMPT_TIMEOUTS):
    """Every attempt timeout; returns ``{timeout key: per-delay results}``."""
    return {_key(timeout): measure_timeout(trials, seed, timeout)
            for timeout in timeouts}


def _key(delay):
    return ('%g' % delay)


def _round(value):
    return None if value is None else round(value, 2)


def _show(value):
    return 'never' if value is None else '%.1f' % value


def print_table(results, trials):
    count = CONF.reinit_driver_count
    print('attempt T | backend ready after | upstream ready | ours ready '
          '(median of %d) | ours worst | bound (delay+T+cap) | ok' % trials)
    for timeout, rows in results.items():
        for key, row in rows.items():
            print('%9s | %19s | %14s | %25s | %10s | %19.1f | %s' % (
                timeout + ' s', key + ' s', _show(row['upstream_ready_s']),
                _show(row['ours_ready_s']), _show(row['ours_ready_max_s']),
                row['bound_s'], 'yes' if row['within_bound'] else 'NO'))
        print('%9s   cinder\'s counted attempts cover %.0f s' % (
            '', upstream_window(count, float(timeout))))


def _previous(path):
    """Sections other benchmarks wrote into the same JSON file."""
    try:
        with open(path) as old:
            return json.load(old)
    except (OSError, ValueError):
        return {}


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='python -m benchmarks.cinder_reinit',
        description='Time-to-ready after a late backend: cinder vs ours.')
    parser.add_argument('--quick', action='store_true',
                        help='3 trials per delay instead of 20')
    parser.add_argument('--trials', type=int, default=None,
                        help='trials of ours per delay (jittered waits)')
    parser.add_argument('--seed', type=int, default=2024,
                        help='seed of the first trial')
    parser.add_argument('--verbose', action='store_true',
                        help='show the services\' log output')
    parser.add_argument('--output', default=RESULT_PATH,
                        help='where to write the JSON results')
    return parser.parse_args(argv)


def main(argv=None):
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    trials = args.trials or (3 if args.quick else 20)
    root = logging.getLogger()
    level = root.level
    if not args.verbose:
        # Every failed attempt logs a traceback; the table is the output.
        root.setLevel(logging.CRITICAL)
    manager.opts.register_opts(CONF)
    began = time.monotonic()
    try:
        results = measure(trials, args.seed)
    finally:
        root.setLevel(level)
    print_table(results, trials)
    settings = {name: getattr(CONF, name) for name in (
        'reinit_driver_count', 'reinit_driver_max_interval',
        'reinit_driver_jitter', 'reinit_driver_probe_interval')}
    document = _previous(args.output)
    document.update({
        'benchmark': 'cinder_reinit',
        'clock': 'virtual; a failed driver attempt takes T simulated '
                 'seconds (attempt_timeouts)',
        'settings': settings,
        'trials_per_delay': trials,
        'seed': args.seed,
        'wall_time_s': round(time.monotonic() - began, 1),
        'goal_met': all(row['within_bound'] for rows in results.values()
                        for row in rows.values()),
        # T = 0, the figures of earlier runs.
        'delays': results[_key(0.0)],
        'attempt_timeouts': {
            timeout: {'upstream_window_s': upstream_window(
                settings['reinit_driver_count'], float(timeout)),
                'delays': rows}
            for timeout, rows in results.items()},
    })
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, 'w') as out:
        json.dump(document, out, indent=2, sort_keys=True)
        out.write('\n')
    print('goal (ours recovers within delay + T + one capped interval): %s'
          % ('met' if document['goal_met'] else 'NOT met'))
    print('wrote %s' % args.output)
    return 0 if document['goal_met'] else 1


if __name__ == '__main__':
    sys.exit(main())
