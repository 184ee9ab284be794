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

"""Contention on one node in a real ironic database, measured.

The harness behind ``benchmarks/ironic_locking.py`` and the demo scene. It
runs in its own process (``python -m benchmarks.ironic_contention``): it
parses ironic's global configuration, creates an ironic schema in a fresh
sqlite file and one node, then lets ``workers`` threads of this one process
(one conductor) ask for the node's exclusive lock in bursts (all at once,
as concurrent API requests arrive), each holding it for ``hold`` seconds.
The same bursts run against each task manager named.

Figures per task manager: share of requests that end in NodeLocked, p50
and p99 of the time spent acquiring (successful or not), successful
acquisitions per second of run time, and ``Node.reserve`` calls (each one a
database query) per successful acquisition.

With ``--ceiling``, the same number of acquisitions is also made by a single
worker, one after the other: the uncontended ceiling, hold time plus the
cost of taking and releasing the lock, measured in the same run.
"""

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time

# ironic.command selects oslo.service's threading backend; it must come
# before ironic's conductor modules are imported.
from ironic import command as _ironic_command  # noqa: F401
from ironic.common import context as ironic_context
from ironic.common import exception as ironic_exc
from ironic.conductor import task_manager as ironic_task_manager
from ironic import conf as ironic_conf
from ironic.db import migration
from ironic import objects

from ironic_locking import opts
from ironic_locking import task_manager

CONF = ironic_conf.CONF

TASK_MANAGERS = {
    'upstream': ironic_task_manager.TaskManager,
    'ours': task_manager.TaskManager,
}


class _ReserveCounter(object):
    """Counts calls to ``objects.Node.reserve`` while installed."""

    def __init__(self):
        self.calls = 0
        self._lock = threading.Lock()
        self._real = None

    def install(self):
        self._real = objects.Node.reserve
        real = self._real

        def reserve(*args, **kwargs):
            with self._lock:
                self.calls += 1
            return real(*args, **kwargs)
        objects.Node.reserve = reserve

    def uninstall(self):
        objects.Node.reserve = self._real


def prepare_database(workdir):
    """Parse ironic's configuration and create a schema and one node.

    :param workdir: directory for the sqlite file.
    :returns: the node's UUID.
    """
    CONF([], project='ironic', default_config_files=[])
    opts.register_opts(CONF)
    CONF.set_override('host', 'bench-conductor')
    # As ironic's own tests do: no fsync per commit, so that the figures
    # measure the locking rather than the disk of a shared machine.
    CONF.set_override('sqlite_synchronous', False, group='database')
    CONF.set_override('connection', 'sqlite:///%s' % os.path.join(
        workdir, 'ironic.sqlite'), group='database')
    objects.register_all()
    migration.create_schema()
    node = objects.Node(ironic_context.get_admin_context(),
                        driver='fake-hardware')
    node.create()
    return node.uuid


def percentile(values, fraction):
    """Nearest-rank percentile of a non-empty list (pure)."""
    ordered = sorted(values)
    rank = max(int(round(fraction * len(ordered) + 0.5)) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


def summarize(samples, reserve_calls, duration):
    """Figures of one run (pure).

    :param samples: ``(waited_seconds, acquired)`` per lock request.
    :param reserve_calls: ``Node.reserve`` calls made during the run.
    :param duration: wall-clock seconds of the run.
    :returns: dict of the published figures.
    """
    waits = [waited for waited, _ in samples]
    acquired = sum(1 for _, ok in samples if ok)
    return {
        'requests': len(samples),
        'acquired': acquired,
        'failed_ratio': round(1 - acquired / len(samples), 4),
        'p50_wait_s': round(percentile(waits, 0.50), 4),
        'p99_wait_s': round(percentile(waits, 0.99), 4),
        'throughput_per_s': round(acquired / duration, 3),
        'reserve_calls_per_acquire': round(
            reserve_calls / acquired, 2) if acquired else None,
    }


def _request(tm_class, context, node_uuid, hold, start, samples, lock):
    start.wait()
    began = time.monotonic()
    try:
        with tm_class(context, node_uuid, purpose='contention',
                      load_driver=False):
            waited = time.monotonic() - began
            time.sleep(hold)
        sample = (waited, True)
    except ironic_exc.NodeLocked:
        sample = (time.monotonic() - began, False)
    except Exception as error:
        # Anything but NodeLocked invalidates the run: keep it for the
        # caller to raise, a thread cannot.
        sample = error
    with lock:
        samples.append(sample)


def run_bursts(tm_class, node_uuid, workers=8, hold=0.05, rounds=10):
    """Bursts of ``workers`` simultaneous lock requests on one node.

    :returns: the :func:`summarize` figures.
    """
    context = ironic_context.get_admin_context()
    samples, lock = [], threading.Lock()
    counter = _ReserveCounter()
    counter.install()
    began = time.monotonic()
    try:
        for _ in range(rounds):
            start = threading.Barrier(workers)
            threads = [threading.Thread(
                target=_request,
                args=(tm_class, context, node_uuid, hold, start, samples,
                      lock)) for _ in range(workers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        counter.uninstall()
    duration = time.monotonic() - began
    errors = [sample for sample in samples if isinstance(sample, Exception)]
    if errors:
        raise RuntimeError('%d lock request(s) failed unexpectedly, first: '
                           '%r' % (len(errors), errors[0]))
    return summarize(samples, counter.calls, duration)


def run_sequential(tm_class, node_uuid, count, hold=0.05):
    """``count`` lock requests by one worker, one after the other.

    :returns: the :func:`summarize` figures.
    """
    context = ironic_context.get_admin_context()
    samples = []
    counter = _ReserveCounter()
    counter.install()
    began = time.monotonic()
    try:
        for _ in range(count):
            started = time.monotonic()
            with tm_class(context, node_uuid, purpose='ceiling',
                          load_driver=False):
                samples.append((time.monotonic() - started, True))
                time.sleep(hold)
    finally:
        counter.uninstall()
    return summarize(samples, counter.calls, time.monotonic() - began)


def _apply(overrides):
    for name, value in overrides.items():
        CONF.set_override(name, value, group='conductor')


def measure(runs, workers=8, hold=0.05, rounds=10, ceiling=False):
    """Run the same bursts once per run, on one fresh database.

    :param runs: ``(label, task_manager, overrides)`` triples, where
        ``task_manager`` is a key of :data:`TASK_MANAGERS` and
        ``overrides`` maps ``[conductor]`` options to values for that run.
    :param ceiling: also measure one worker alone (label ``ceiling``).
    :returns: ``{label: figures}``.
    """
    workdir = tempfile.mkdtemp(prefix='ironic-locking-')
    results = {}
    try:
        node_uuid = prepare_database(workdir)
        if ceiling:
            results['ceiling'] = run_sequential(
                TASK_MANAGERS['upstream'], node_uuid, workers * rounds, hold)
        for label, name, overrides in runs:
            _apply(overrides)
            try:
                results[label] = run_bursts(TASK_MANAGERS[name], node_uuid,
                                            workers, hold, rounds)
            finally:
                for option in overrides:
                    CONF.clear_override(option, group='conductor')
        return results
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Contention on one node in a real ironic database; '
                    'prints JSON figures per task manager.')
    parser.add_argument('--workers', type=int, default=8)
    parser.add_argument('--hold', type=float, default=0.05)
    parser.add_argument('--rounds', type=int, default=10)
    parser.add_argument('--runs', type=json.loads,
                        default=[[name, name, {}] for name in TASK_MANAGERS],
                        help='JSON list of [label, task manager, '
                             '{conductor option: value}] (default: '
                             'upstream and ours, default settings)')
    parser.add_argument('--ceiling', action='store_true',
                        help='also measure one worker alone')
    args = parser.parse_args(argv)
    # Retries log a line each; the figures are what this tool reports.
    logging.getLogger('ironic').setLevel(logging.ERROR)
    logging.getLogger('ironic_locking').setLevel(logging.ERROR)
    result = measure(args.runs, args.workers, args.hold, args.rounds,
                     args.ceiling)
    # Keep the runs in the order asked for: callers print them so.
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
