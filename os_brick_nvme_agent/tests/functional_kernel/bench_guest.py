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

``bench_guest measure --workdir DIR [--faults N] [--modes notify,poll]
[--upstream-wait S]`` measures, per mode, N faults (each on its own
volume): detection latency (fault injected -> the nvmet provisioner holds
the FAULTY report) and heal time (replacement replica created -> array in
sync with it, i.e. excluding the grace period). ``notify`` is the agent as
the os-brick hook starts it (waiting on md change notifications, periodic
fallback every ``poll_interval``); ``poll`` is the same daemon with
notifications turned off, so it only wakes every ``poll_interval``
(default 10 s). ``upstream`` is os-brick alone (agent disabled): the
array is watched for ``--upstream-wait`` seconds after the fault.
Results go to ``DIR/bench.json``.

``bench_guest agent --config-file F --no-notify`` is the poll-only daemon.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from os_brick_nvme_agent.tests.functional_kernel import guest_env
from os_brick_nvme_agent.tests.functional_kernel import scenarios

MODULE = 'os_brick_nvme_agent.tests.functional_kernel.bench_guest'


def polling_watcher(root, interval):
    """A watcher that never listens to the kernel: periodic wake-ups only."""
    import select

    from os_brick_nvme_agent.host import watcher

    class PollingWatcher(watcher.Watcher):
        def _arm(self):
            return {}, {}

        def _poll(self, fds, timeout):
            poll = select.poll()
            poll.register(self._read_fd, select.POLLIN)
            if poll.poll(max(0.0, timeout) * 1000.0):
                self._drain()
                return watcher.INTERRUPTED
            return watcher.TIMEOUT

    return PollingWatcher(root, interval)


def run_agent(argv):
    """The daemon of ``os-brick-nvme-agent run`` with a polling watcher."""
    from oslo_log import log as logging

    from os_brick_nvme_agent.cmd import agent
    conf = agent.load_conf(argv)
    logging.setup(conf, 'os-brick-nvme-agent')
    lock_fd = agent.acquire_pid_lock(conf.nvme_agent.state_dir)
    if lock_fd is None:
        return 1
    from os_brick_nvme_agent import service
    daemon = agent.build_service(conf)
    daemon.watcher = polling_watcher(conf.nvme_agent.root_dir,
                                     conf.nvme_agent.poll_interval)
    launcher = service.service.Launcher(conf)
    launcher.launch_service(daemon)
    launcher.wait()
    return 0


def inject(volume):
    """The ``fail`` scenario's fault: target gone, leg failed."""
    old = volume.initial.replicas[1]
    leg = volume.leg_of(old.nqn)
    volume.unexport(old.nqn)
    guest_env.wait_for(lambda: volume.controller_down(old.nqn), 30, 0.05)
    t_fault = time.monotonic()
    guest_env.run('mdadm', '--manage', '/dev/' + volume.md, '--fail',
                  '/dev/' + leg)
    return old, t_fault


def measure_mode(env, mode, faults):
    volumes = [env.create_and_connect('bench-%s-%d' % (mode, i))
               for i in range(faults)]
    env.wait_agent_ready()      # the agent the hook started
    if mode == 'poll':
        env.stop_agent()
        started = time.time()
        with open(os.path.join(env.workdir, 'poll-agent.out'), 'w') as out:
            subprocess.Popen(
                [sys.executable, '-m', MODULE, 'agent', '--config-file',
                 env.conf_file], start_new_session=True,
                stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        env.wait_agent_ready(since=started)
    records = []
    for volume in volumes:      # one at a time: timings do not overlap
        time.sleep(1.0)     # let the first passes settle
        old, t_fault = inject(volume)
        guest_env.wait_for(lambda: scenarios._reported_faulty(volume, old.id),
                           scenarios.HEAL_TIMEOUT, 0.02, 'the report')
        record = {'volume': volume.id, 'detect_s': time.monotonic() - t_fault,
                  'old': old, 'volume_obj': volume}
        _watch_heals([record])
        del record['old'], record['volume_obj']
        records.append(record)
    return records


def _watch_heals(records, timeout=scenarios.HEAL_TIMEOUT):
    """Time every volume's heal at once: replacement seen -> in sync."""
    deadline = time.monotonic() + timeout
    pending = list(records)
    while pending:
        if time.monotonic() > deadline:
            raise guest_env.Timeout('heals not done: %s'
                                    % [r['volume'] for r in pending])
        for record in list(pending):
            volume, old = record['volume_obj'], record['old']
            if 'new' not in record:
                new = scenarios._replaced(volume, old.id)
                if new:
                    record['new'], record['t_new'] = new, time.monotonic()
                continue
            if volume.healthy() and record['new']['nqn'] in \
                    volume.member_nqns():
                record['heal_s'] = time.monotonic() - record.pop('t_new')
                record['new_replica'] = record.pop('new')['id']
                pending.remove(record)
        time.sleep(0.05)


def measure_upstream(env, wait):
    """os-brick without the agent: does anything heal the array?"""
    env.stop_agent()
    env.disable_agent()
    volume = env.create_and_connect('bench-upstream')
    inject(volume)
    time.sleep(wait)
    return {'waited_s': wait, 'healthy_after_wait': volume.healthy(),
            'agent_running': env.agent_running(),
            'degraded': guest_env.read(guest_env.MD_SYSFS % (volume.md,
                                                             'degraded'))}


def measure(args):
    env = guest_env.Env(args.workdir, grace_period=args.grace_period)
    env.install_hook()
    env.make_connector()
    results = {'grace_period_s': args.grace_period,
               'poll_interval_s': env.poll_interval}
    path = os.path.join(args.workdir, 'bench.json')
    for mode in args.modes.split(','):
        try:
            results[mode] = measure_mode(env, mode, args.faults)
        except guest_env.Timeout as exc:
            results[mode + '_error'] = str(exc)
        with open(path, 'w') as stream:
            json.dump(results, stream, indent=1, sort_keys=True)
    if args.upstream_wait > 0:
        results['upstream'] = measure_upstream(env, args.upstream_wait)
    env.stop_agent()
    with open(path, 'w') as stream:
        json.dump(results, stream, indent=1, sort_keys=True)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == 'agent':
        return run_agent([a for a in argv[1:] if a != '--no-notify'])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('command', choices=['measure'])
    parser.add_argument('--workdir', required=True)
    parser.add_argument('--faults', type=int, default=2)
    parser.add_argument('--modes', default='notify,poll')
    parser.add_argument('--grace-period', type=float, default=3.0)
    parser.add_argument('--upstream-wait', type=float, default=20.0)
    return measure(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
