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

"""Inside the guest: timings for ``benchmarks/nvme_agent.py``.

``bench_guest measure --workdir DIR [--faults N] [--modes notify,poll,lost]
[--upstream-wait S]`` injects N faults per mode, one after the other on
one volume per mode, each at a random phase of the agent's poll cycle
(a uniform delay after the agent's last pass, which saves its state
file). Per fault it records the phase, the detection latency and the
heal time (replacement replica created -> array in sync with it, the
grace period excluded).

* ``notify``: the agent as the os-brick hook starts it (md change
  notifications, ``poll_interval`` as fallback). Fault: the target
  forgets the subsystem, then ``mdadm --fail`` of the leg once its
  controller is down; detection is ``mdadm --fail`` -> the nvmet
  provisioner holds the FAULTY report.
* ``poll``: the same fault, with notifications off, so the agent only
  wakes every ``poll_interval``: the real daemon, started by the hook
  with ``[nvme_agent] watch_md_events = false`` (:data:`NOTIFY_OPTION`).
* ``lost``: target lost -> provisioner told. The target's port forgets
  the subsystem while a write is in flight; the clock starts at the port
  removal, so it includes the kernel's time to fail the leg
  (``fast_io_fail_tmo``), recorded apart as ``leg_failed_s``.

``upstream`` is os-brick alone (agent disabled): the array is watched
for ``--upstream-wait`` seconds after the fault. Results go to
``DIR/bench.json``.
"""

import argparse
import json
import os
import random
import sys
import threading
import time

from os_brick_nvme_agent.tests.functional_kernel import checks
from os_brick_nvme_agent.tests.functional_kernel import guest_env

#: The agent's option that turns md notifications off.
NOTIFY_OPTION = 'watch_md_events'
VOLUME_SIZE = 4 << 20


def start_poll_agent(env):
    """The agent with notifications off; returns how it was set up."""
    env.stop_agent()
    started = time.time()
    env.extra_options = {NOTIFY_OPTION: 'false'}
    env.rewrite_conf(env.grace_period)
    env.create_and_connect('bench-poll-start', VOLUME_SIZE)  # the hook
    env.wait_agent_ready(since=started)
    return 'option %s = false' % NOTIFY_OPTION


def last_pass(env):
    """Wall-clock end of the agent's last pass (it saves its state)."""
    return os.stat(os.path.join(env.state_dir, 'state.json')).st_mtime


def wait_random_phase(env, rng):
    """Sleep until a uniform random point of the poll cycle; the phase.

    The phase is the time since the agent's last pass, drawn from
    [0, poll_interval). If that point is past, the next cycle's is used.
    """
    interval = env.poll_interval
    phase = rng.uniform(0.0, interval)
    last = last_pass(env)
    when = last + phase
    while when < time.time():
        when += interval
    time.sleep(max(0.0, when - time.time()))
    return time.time() - last_pass(env)


def _current(volume):
    return {r['id']: r for r in volume.replicas()['replicas']}


def _victim(volume, rng):
    return rng.choice(sorted(_current(volume).values(),
                             key=lambda r: r['id']))


def inject_fail(volume, victim):
    """Target gone, then ``mdadm --fail``; the clock starts at the fail."""
    leg = volume.leg_of(victim['nqn'])
    volume.unexport(victim['nqn'])
    guest_env.wait_for(lambda: volume.controller_down(victim['nqn']), 30,
                       0.05, 'the controller to lose its target')
    t_fault = time.monotonic()
    guest_env.run('mdadm', '--manage', '/dev/' + volume.md, '--fail',
                  '/dev/' + leg)
    return t_fault, {}


def inject_lost(volume, victim):
    """The port forgets the subsystem with a write in flight."""
    leg = volume.leg_of(victim['nqn'])
    extra = {}
    writer = threading.Thread(target=checks.write_during, args=(volume,))
    t_fault = time.monotonic()
    volume.unexport(victim['nqn'])
    writer.start()
    guest_env.wait_for(lambda: 'faulty' in guest_env.md_members(
        volume.md).get(leg, ('faulty',))[0], 120, 0.01, 'md to fail the leg')
    extra['leg_failed_s'] = time.monotonic() - t_fault
    extra['writer'] = writer
    return t_fault, extra


def one_fault(env, volume, inject, rng):
    """Inject one fault at a random phase; time detection and heal."""
    victim = _victim(volume, rng)
    before = set(_current(volume))
    phase = wait_random_phase(env, rng)
    t_fault, extra = inject(volume, victim)
    guest_env.wait_for(lambda: checks.reported_faulty(volume, victim['id']),
                       checks.HEAL_TIMEOUT, 0.01, 'the report')
    record = {'phase_s': phase, 'detect_s': time.monotonic() - t_fault}
    writer = extra.pop('writer', None)
    record.update(extra)
    new = guest_env.wait_for(lambda: set(_current(volume)) - before,
                             checks.HEAL_TIMEOUT, 0.05, 'a replacement')
    t_new = time.monotonic()
    new_nqn = _current(volume)[new.pop()]['nqn']
    guest_env.wait_for(lambda: (volume.healthy() and
                                new_nqn in volume.in_sync_nqns()),
                       checks.HEAL_TIMEOUT, 0.05, 'the heal')
    record['heal_s'] = time.monotonic() - t_new
    if writer is not None:
        writer.join(60)
    guest_env.wait_for(lambda: not guest_env.controllers_of(victim['nqn']),
                       60, 0.1, 'the old controller to go')
    return record


def measure_mode(env, mode, faults, rng):
    if mode == 'poll':
        setup = start_poll_agent(env)
    else:
        setup = 'hook-started agent, notifications on'
    volume = env.create_and_connect('bench-%s' % mode, VOLUME_SIZE)
    env.wait_agent_ready()
    inject = inject_lost if mode == 'lost' else inject_fail
    records = [one_fault(env, volume, inject, rng) for _ in range(faults)]
    return {'setup': setup, 'samples': records}


def measure_upstream(env, wait):
    """os-brick without the agent: does anything heal the array?"""
    env.stop_agent()
    env.disable_agent()
    volume = env.create_and_connect('bench-upstream', VOLUME_SIZE)
    inject_fail(volume, volume.replicas()['replicas'][1])
    time.sleep(wait)
    return {'waited_s': wait, 'healthy_after_wait': volume.healthy(),
            'agent_running': env.agent_running(),
            'degraded': guest_env.read(guest_env.MD_SYSFS % (volume.md,
                                                             'degraded'))}


def _journal_events(env):
    """Lines in the agents' event journal (0 when there is none)."""
    from os_brick_nvme_agent import journal
    try:
        with open(journal.path(env.state_dir)) as stream:
            return sum(1 for _line in stream)
    except OSError:
        return 0


def measure(args):
    env = guest_env.Env(args.workdir, grace_period=args.grace_period)
    env.install_hook()
    env.make_connector()
    rng = random.Random(args.seed)
    results = {'grace_period_s': args.grace_period,
               'poll_interval_s': env.poll_interval,
               'fast_io_fail_tmo_s': guest_env.FAST_IO_FAIL_TMO,
               'faults_per_mode': args.faults, 'seed': args.seed}
    path = os.path.join(args.workdir, 'bench.json')
    # poll last: it replaces the hook-started agent
    for mode in sorted(args.modes.split(','), key=lambda m: m == 'poll'):
        try:
            results[mode] = measure_mode(env, mode, args.faults, rng)
        except guest_env.Timeout as exc:
            results[mode + '_error'] = str(exc)
        with open(path, 'w') as stream:
            json.dump(results, stream, indent=1, sort_keys=True)
    results['journal_events'] = _journal_events(env)
    if args.upstream_wait > 0:
        results['upstream'] = measure_upstream(env, args.upstream_wait)
    env.stop_agent()
    with open(path, 'w') as stream:
        json.dump(results, stream, indent=1, sort_keys=True)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('command', choices=['measure'])
    parser.add_argument('--workdir', required=True)
    parser.add_argument('--faults', type=int, default=10)
    parser.add_argument('--modes', default='notify,lost,poll')
    parser.add_argument('--grace-period', type=float, default=3.0)
    parser.add_argument('--upstream-wait', type=float, default=20.0)
    parser.add_argument('--seed', type=int, default=None)
    return measure(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
