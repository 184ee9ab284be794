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
--workdir DIR [names...]`` runs the named scenarios (:data:`DEFAULT` if
none) in the order of :data:`SCENARIOS`, each on its own volume; the agent
is only ever started by the os-brick hook, on a connect. Every scenario
records what it saw (times, replica ids, member NQNs, data digests) under
its name in ``DIR/results.json``; the host-side tests assert on those
records. A scenario that fails records ``error`` and the next one still
runs.
"""

import argparse
import json
import os
import sys
import time
import traceback

from os_brick_nvme_agent.tests.functional_kernel import checks
from os_brick_nvme_agent.tests.functional_kernel import guest_env
from os_brick_nvme_agent.tests.functional_kernel import lifecycle


def scenario_fail(env, out):
    """mdadm --fail on a leg whose target is gone: report, then replace."""
    volume = env.create_and_connect('vol-fail')
    out['agent_running'] = env.wait_agent_ready()
    digest = checks.write_before(volume)
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
    checks.heal_record(volume, old, digest, t_fault, out)


def scenario_port_lost(env, out):
    """The target's port link removed: the leg fails, is replaced.

    Data written before the fault reads back, from the new leg alone.
    """
    volume = env.create_and_connect('vol-port')
    env.wait_agent_ready()
    digest = checks.write_before(volume)
    old = volume.initial.replicas[0]
    volume.unexport(old.nqn)
    t_fault = time.monotonic()
    out['digest_during'] = checks.write_during(volume)  # md notices on I/O
    out['leg_failed_s'] = time.monotonic() - t_fault
    new = checks.heal_record(volume, old, digest, t_fault, out)
    out['new_leg_nqn'] = new['nqn']
    out['alone'] = checks.read_alone(env, volume, new['nqn'], {
        'before': checks.BEFORE, 'during': checks.DURING})
    guest_env.wait_for(volume.healthy, checks.HEAL_TIMEOUT, 0.2,
                       'the removed survivor to be re-added')


def scenario_comes_back(env, out):
    """A leg failed while its device stays live is re-added, not replaced."""
    volume = env.create_and_connect('vol-back')
    env.wait_agent_ready()
    digest = checks.write_before(volume)
    target = volume.initial.replicas[1]
    leg = volume.leg_of(target.nqn)
    generation = volume.replicas()['generation']
    t_fault = time.monotonic()
    guest_env.run('mdadm', '--manage', '/dev/' + volume.md, '--fail',
                  '/dev/' + leg)
    guest_env.wait_for(lambda: 'faulty' not in guest_env.md_members(
        volume.md).get(leg, ('faulty',))[0], checks.HEAL_TIMEOUT, 0.05,
        'the leg to leave the faulty state')
    guest_env.wait_for(volume.healthy, checks.HEAL_TIMEOUT, 0.1, 'resync')
    out['back_in_sync_s'] = time.monotonic() - t_fault
    out['leg'] = leg
    out['leg_after'] = volume.leg_of(target.nqn)
    out['replica_ids_before'] = sorted(r.id for r in volume.initial.replicas)
    out['replica_ids_after'] = sorted(r['id'] for r in
                                      volume.replicas()['replicas'])
    out['replica_state_after'] = volume.replica(target.id)['state']
    # the nvmet provisioner counts every report in the generation
    out['generation_before'] = generation
    out['generation_after'] = volume.replicas()['generation']
    record = env.agent_state().volume(volume.id).replica(target.id)
    out['agent_reported'] = record.reported_state
    out['agent_requested'] = record.requested_at is not None
    out['digest_before'] = digest
    out['digest_after'] = volume.read_digest(**checks.BEFORE)


def scenario_port_flap(env, out):
    """The target's port drops and comes back inside the grace period.

    The agent restarts with a 60 s grace period; the port link is removed,
    a write makes md fail the leg, the agent reports it; then the link is
    restored and the controller reconnects by itself (os-brick's 10 s
    reconnect delay): the same device is re-added (bitmap resync), not
    replaced. The data written before the fault and the write made during
    it read back from that leg alone.
    """
    lifecycle.use_grace_period(env, 60.0)
    volume = env.create_and_connect('vol-flap')     # the hook restarts it
    env.wait_agent_ready(since=time.time())
    digest = checks.write_before(volume)
    target = volume.initial.replicas[0]
    leg = volume.leg_of(target.nqn)
    volume.unexport(target.nqn)
    t_fault = time.monotonic()
    out['digest_during'] = checks.write_during(volume)  # md notices on I/O
    out['leg_failed_s'] = time.monotonic() - t_fault
    guest_env.wait_for(lambda: checks.reported_faulty(volume, target.id),
                       checks.HEAL_TIMEOUT, 0.05, 'the faulty report')
    out['detect_s'] = time.monotonic() - t_fault
    volume.reexport(target.nqn)
    guest_env.wait_for(lambda: (volume.healthy() and
                                volume.leg_of(target.nqn) == leg),
                       checks.HEAL_TIMEOUT, 0.1, 'the leg to be re-added')
    out['back_in_sync_s'] = time.monotonic() - t_fault
    out['leg'], out['leg_after'] = leg, volume.leg_of(target.nqn)
    out['replica_ids_before'] = sorted(r.id for r in volume.initial.replicas)
    out['replica_ids_after'] = sorted(r['id'] for r in
                                      volume.replicas()['replicas'])
    out['grace_period_s'] = env.grace_period
    out['digest_before'] = digest
    out['digest_after'] = volume.read_digest(**checks.BEFORE)
    out['alone'] = checks.read_alone(env, volume, target.nqn, {
        'before': checks.BEFORE, 'during': checks.DURING})
    guest_env.wait_for(volume.healthy, checks.HEAL_TIMEOUT, 0.2,
                       'the removed leg to be re-added')


#: In the order they run: the ones after port_flap use its 60 s grace.
SCENARIOS = {'fail': scenario_fail, 'port_lost': scenario_port_lost,
             'comes_back': scenario_comes_back,
             'killed': lifecycle.scenario_killed,
             'port_flap': scenario_port_flap,
             'degraded_attach': lifecycle.scenario_degraded_attach,
             'starter_killed': lifecycle.scenario_starter_killed}
#: Run when no names are given.
DEFAULT = list(SCENARIOS)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--workdir', required=True)
    parser.add_argument('--grace-period', type=float, default=3.0)
    parser.add_argument('names', nargs='*', default=list(DEFAULT))
    args = parser.parse_args(argv)
    results_path = os.path.join(args.workdir, 'results.json')
    results = {}
    env = guest_env.Env(args.workdir, grace_period=args.grace_period)
    env.install_hook()
    env.make_connector()
    for name in [n for n in SCENARIOS if n in args.names]:
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
