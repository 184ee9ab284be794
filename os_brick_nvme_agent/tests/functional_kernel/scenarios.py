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

"""Fault scenarios, run inside the guest; observations go to a JSON file.

``python -m os_brick_nvme_agent.tests.functional_kernel.scenarios
--workdir DIR [names...]`` runs the named scenarios (all by default) in
order, each on its own volume, with one agent started by the os-brick hook
on the first connect. Every scenario records what it saw (times, replica
ids, member NQNs, data digests) under its name in ``DIR/results.json``;
the host-side tests assert on those records. A scenario that fails records
``error`` and the next one still runs.
"""

import argparse
import json
import os
import sys
import time
import traceback

from os_brick_nvme_agent.tests.functional_kernel import guest_env

HEAL_TIMEOUT = 120


def _replaced(volume, old_id):
    """The new replica's record once ``old_id`` left the set, else None."""
    record = volume.replicas()
    if record is None or volume.replica(old_id) is not None:
        return None
    known = {r.id for r in volume.initial.replicas}
    new = [r for r in record['replicas'] if r['id'] not in known]
    return new[0] if new else None


def _reported_faulty(volume, replica_id):
    replica = volume.replica(replica_id)
    return replica is None or replica['state'] == 'faulty'


def _heal_record(volume, old, digest, t_fault, out):
    """Wait for report, replacement and resync; fill ``out``."""
    guest_env.wait_for(lambda: _reported_faulty(volume, old.id),
                       HEAL_TIMEOUT, 0.05, 'the faulty report')
    out['detect_s'] = time.monotonic() - t_fault
    new = guest_env.wait_for(lambda: _replaced(volume, old.id),
                             HEAL_TIMEOUT, 0.1, 'a replacement replica')
    t_replaced = time.monotonic()
    out['replaced_after_s'] = t_replaced - t_fault
    guest_env.wait_for(lambda: (volume.healthy() and
                                new['nqn'] in volume.member_nqns() and
                                old.nqn not in volume.member_nqns()),
                       HEAL_TIMEOUT, 0.1, 'the array to be in sync')
    out['heal_s'] = time.monotonic() - t_replaced
    out['new_replica'] = new['id']
    out['members'] = volume.member_nqns()
    out['replica_nqns'] = sorted(r['nqn']
                                 for r in volume.replicas()['replicas'])
    out['digest_before'] = digest
    out['digest_after'] = volume.read_digest()
    guest_env.wait_for(lambda: not guest_env.controllers_of(old.nqn),
                       60, 0.2, 'the old controller to be disconnected')
    out['old_controller_gone'] = True
    return new


def scenario_fail(env, out):
    """mdadm --fail on a leg whose target is gone: report, then replace."""
    volume = env.create_and_connect('vol-fail')
    out['agent_running'] = env.wait_agent_ready()
    digest = volume.write_pattern()
    old = volume.initial.replicas[1]
    leg = volume.leg_of(old.nqn)
    # the target forgets the subsystem, so the leg cannot simply come
    # back before the grace period ends
    volume.unexport(old.nqn)
    t_fault = time.monotonic()
    guest_env.wait_for(lambda: volume.controller_down(old.nqn), 30, 0.05,
                       'the controller to lose its target')
    guest_env.run('mdadm', '--manage', '/dev/' + volume.md, '--fail',
                  '/dev/' + leg)
    out['failed_leg'] = leg
    _heal_record(volume, old, digest, t_fault, out)


def scenario_port_lost(env, out):
    """The target's port link removed: the leg fails, is replaced.

    Data written before the fault reads back, from the new leg alone.
    """
    volume = env.create_and_connect('vol-port')
    env.wait_agent_ready()
    digest = volume.write_pattern()
    old = volume.initial.replicas[0]
    keep = volume.initial.replicas[1]
    volume.unexport(old.nqn)
    t_fault = time.monotonic()
    volume.write_pattern(4096, b'after-the-fault')  # md notices on I/O
    out['leg_failed_s'] = time.monotonic() - t_fault
    digest = volume.write_pattern()     # the whole pattern again
    new = _heal_record(volume, old, digest, t_fault, out)
    # prove the new leg holds the data: fail the other one, read again
    guest_env.run('mdadm', '--manage', '/dev/' + volume.md, '--fail',
                  '/dev/' + volume.leg_of(keep.nqn))
    out['digest_from_new_leg'] = volume.read_digest()
    out['new_leg_nqn'] = new['nqn']
    guest_env.wait_for(volume.healthy, HEAL_TIMEOUT, 0.2,
                       'the failed survivor to be re-added')


def scenario_comes_back(env, out):
    """A leg failed while its device stays live is re-added, not replaced."""
    volume = env.create_and_connect('vol-back')
    env.wait_agent_ready()
    digest = volume.write_pattern()
    target = volume.initial.replicas[1]
    leg = volume.leg_of(target.nqn)
    generation = volume.replicas()['generation']
    t_fault = time.monotonic()
    guest_env.run('mdadm', '--manage', '/dev/' + volume.md, '--fail',
                  '/dev/' + leg)
    guest_env.wait_for(lambda: 'faulty' not in guest_env.md_members(
        volume.md).get(leg, ('faulty',))[0], HEAL_TIMEOUT, 0.05,
        'the leg to leave the faulty state')
    guest_env.wait_for(volume.healthy, HEAL_TIMEOUT, 0.1, 'resync')
    out['back_in_sync_s'] = time.monotonic() - t_fault
    out['leg'] = leg
    out['leg_after'] = volume.leg_of(target.nqn)
    out['replica_ids_before'] = sorted(r.id for r in volume.initial.replicas)
    out['replica_ids_after'] = sorted(r['id'] for r in
                                      volume.replicas()['replicas'])
    out['replica_state_after'] = volume.replica(target.id)['state']
    out['generation_before'] = generation
    out['generation_after'] = volume.replicas()['generation']
    out['digest_before'] = digest
    out['digest_after'] = volume.read_digest()


def scenario_killed(env, out):
    """SIGKILL while a replacement rebuilds; the hook restarts the agent.

    The array converges on the replica set.
    """
    volume = env.create_and_connect('vol-kill')
    env.wait_agent_ready()
    digest = volume.write_pattern()
    old = volume.initial.replicas[1]
    leg = volume.leg_of(old.nqn)
    # a slow rebuild keeps the heal in progress while the agent dies
    guest_env.write('/proc/sys/dev/raid/speed_limit_max', 1000)
    try:
        volume.unexport(old.nqn)
        guest_env.wait_for(lambda: volume.controller_down(old.nqn), 30,
                           0.05, 'the controller to lose its target')
        guest_env.run('mdadm', '--manage', '/dev/' + volume.md,
                      '--fail', '/dev/' + leg)
        new = guest_env.wait_for(lambda: _replaced(volume, old.id),
                                 HEAL_TIMEOUT, 0.1, 'a replacement')
        guest_env.wait_for(lambda: new['nqn'] in volume.member_nqns(),
                           HEAL_TIMEOUT, 0.1, 'the new leg to join')
        out['sync_action_at_kill'] = guest_env.read(
            guest_env.MD_SYSFS % (volume.md, 'sync_action'))
        out['killed_pid'] = env.kill_agent()
    finally:
        guest_env.write('/proc/sys/dev/raid/speed_limit_max', 200000)
    out['running_after_kill'] = env.agent_running()
    from os_brick.initiator.connectors import nvmeof_agent
    out['hook_started'] = nvmeof_agent.NVMeOFAgent.ensure_running(
        env.connector)
    guest_env.wait_for(env.agent_running, 60, 0.2, 'the agent to restart')
    out['restarted_pid'] = env.agent_pid()
    guest_env.wait_for(lambda: (volume.healthy() and
                                old.nqn not in volume.member_nqns() and
                                not guest_env.controllers_of(old.nqn)),
                       HEAL_TIMEOUT, 0.2, 'convergence after the restart')
    out['members'] = volume.member_nqns()
    out['replica_nqns'] = sorted(r['nqn']
                                 for r in volume.replicas()['replicas'])
    out['digest_before'] = digest
    out['digest_after'] = volume.read_digest()


def scenario_port_flap(env, out):
    """The target's port drops and comes back inside the grace period.

    The agent restarts with a 60 s grace period; the port link is removed,
    md fails the leg, the agent reports it; then the link is restored and
    the controller reconnects by itself (os-brick's 10 s reconnect delay):
    the leg is re-added, not replaced.
    """
    env.stop_agent()
    env.rewrite_conf(grace_period=60.0)
    volume = env.create_and_connect('vol-flap')     # the hook restarts it
    env.wait_agent_ready(since=time.time())
    digest = volume.write_pattern()
    target = volume.initial.replicas[0]
    leg = volume.leg_of(target.nqn)
    volume.unexport(target.nqn)
    t_fault = time.monotonic()
    volume.write_pattern(4096, b'after-the-fault')  # md notices on I/O
    digest = volume.write_pattern()
    out['leg_failed_s'] = time.monotonic() - t_fault
    guest_env.wait_for(lambda: _reported_faulty(volume, target.id),
                       HEAL_TIMEOUT, 0.05, 'the faulty report')
    out['detect_s'] = time.monotonic() - t_fault
    volume.reexport(target.nqn)
    guest_env.wait_for(lambda: (volume.healthy() and
                                volume.leg_of(target.nqn) == leg),
                       HEAL_TIMEOUT, 0.1, 'the leg to be re-added')
    out['back_in_sync_s'] = time.monotonic() - t_fault
    out['leg'], out['leg_after'] = leg, volume.leg_of(target.nqn)
    out['replica_ids_before'] = sorted(r.id for r in volume.initial.replicas)
    out['replica_ids_after'] = sorted(r['id'] for r in
                                      volume.replicas()['replicas'])
    out['grace_period_s'] = 60.0
    out['digest_before'] = digest
    out['digest_after'] = volume.read_digest()


SCENARIOS = {'fail': scenario_fail, 'port_lost': scenario_port_lost,
             'comes_back': scenario_comes_back, 'killed': scenario_killed,
             'port_flap': scenario_port_flap}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--workdir', required=True)
    parser.add_argument('--grace-period', type=float, default=3.0)
    parser.add_argument('names', nargs='*', default=list(SCENARIOS))
    args = parser.parse_args(argv)
    results_path = os.path.join(args.workdir, 'results.json')
    results = {}
    env = guest_env.Env(args.workdir, grace_period=args.grace_period)
    env.install_hook()
    env.make_connector()
    for name in args.names:
        out = results[name] = {}
        start = time.monotonic()
        print('RS-SCENARIO %s start' % name, flush=True)
        try:
            SCENARIOS[name](env, out)
        except Exception as exc:
            out['error'] = '%s: %s' % (type(exc).__name__, exc)
            traceback.print_exc()
        out['elapsed_s'] = time.monotonic() - start
        print('RS-SCENARIO %s %s' % (name, out.get('error', 'done')),
              flush=True)
        with open(results_path, 'w') as stream:
            json.dump(results, stream, indent=1, sort_keys=True)
    env.stop_agent()
    return 0 if not any('error' in r for r in results.values()) else 1


if __name__ == '__main__':
    sys.exit(main())
