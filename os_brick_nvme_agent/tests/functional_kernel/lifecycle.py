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

"""Inside the guest: scenarios about the agent's life, not one fault.

``killed``: the agent dies with work left and the next replicated
connect restarts it. ``degraded_attach``: os-brick assembles an array
with a leg missing. ``starter_killed``: the process whose connect started
the agent is stopped the way systemd stops a unit (its whole cgroup).

``python -m os_brick_nvme_agent.tests.functional_kernel.lifecycle starter
--workdir DIR --grace-period S VOLUME`` is the starter of
``starter_killed``: it connects VOLUME through os-brick, writes
``DIR/starter.ready`` and sleeps until it is killed.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

from os_brick_nvme_agent.tests.functional_kernel import checks
from os_brick_nvme_agent.tests.functional_kernel import guest_env

MODULE = 'os_brick_nvme_agent.tests.functional_kernel.lifecycle'
CGROUP_ROOT = '/sys/fs/cgroup'
STARTER_CGROUP = 'rs-starter'
#: How long a dead agent is watched to prove nobody else does its work.
DEAD_WATCH_SLACK = 2.0


def use_grace_period(env, seconds):
    """Stop the agent and rewrite its grace period if it differs.

    The next replicated connect starts it again through the os-brick hook.
    """
    if env.grace_period != seconds or not env.agent_running():
        env.stop_agent()
        env.rewrite_conf(grace_period=seconds)


def _replica_ids(volume):
    return sorted(r['id'] for r in volume.replicas()['replicas'])


def _left_at_kill(env, volume, old, out):
    """What the killed agent left: its durable state, the kernel's view."""
    record = env.agent_state().volume(volume.id).replica(old.id)
    out['state_at_kill'] = {
        'faulty_since_set': record.faulty_since is not None,
        'reported_state': record.reported_state,
        'replacement_requested': record.requested_at is not None}
    out['replica_ids_at_kill'] = _replica_ids(volume)
    out['degraded_at_kill'] = guest_env.read(
        guest_env.MD_SYSFS % (volume.md, 'degraded'))
    out['sync_action_at_kill'] = guest_env.read(
        guest_env.MD_SYSFS % (volume.md, 'sync_action'))


def scenario_killed(env, out):
    """SIGKILL after the report, before the replacement; restart by connect.

    The agent reports the lost replica FAULTY and dies (SIGKILL) before
    its grace period ends, so the replacement, the new leg and the
    retirement of the old one are left to do. Nothing happens while it is
    dead; the next replicated connect_volume (another volume) starts it
    again through the os-brick hook, and the restarted agent does the
    work.
    """
    use_grace_period(env, env.grace_period)
    volume = env.create_and_connect('vol-kill')
    env.wait_agent_ready()
    digest = checks.write_before(volume)
    old = volume.initial.replicas[1]
    leg = volume.leg_of(old.nqn)
    volume.unexport(old.nqn)
    guest_env.wait_for(lambda: volume.controller_down(old.nqn), 30, 0.05,
                       'the controller to lose its target')
    guest_env.run('mdadm', '--manage', '/dev/' + volume.md, '--fail',
                  '/dev/' + leg)
    guest_env.wait_for(lambda: checks.reported_faulty(volume, old.id),
                       checks.HEAL_TIMEOUT, 0.02, 'the faulty report')
    out['killed_pid'] = env.kill_agent()
    _left_at_kill(env, volume, old, out)
    # longer than the grace period: nothing else heals the array
    time.sleep(env.grace_period + DEAD_WATCH_SLACK)
    out['running_after_kill'] = env.agent_running()
    out['replica_ids_while_dead'] = _replica_ids(volume)
    out['degraded_while_dead'] = guest_env.read(
        guest_env.MD_SYSFS % (volume.md, 'degraded'))
    env.create_and_connect('vol-kill-next')     # the hook restarts it
    out['restarted_pid'] = env.agent_pid()
    checks.heal_record(volume, old, digest, time.monotonic(), out)


def scenario_degraded_attach(env, out):
    """os-brick attaches a replicated volume with a leg missing.

    The volume is connected, written, disconnected; one replica's target
    is unexported and the volume connected again: os-brick assembles the
    array from the one leg it finds (LP 1938870). The target comes back;
    the agent connects the missing replica and adds it, and the data
    written before reads back from that leg alone.
    """
    use_grace_period(env, 60.0)
    volume = env.create_and_connect('vol-degraded')
    digest = checks.write_before(volume)
    env.disconnect(volume)
    missing = volume.initial.replicas[1]
    guest_env.wait_for(lambda: not any(
        guest_env.controllers_of(r.nqn) for r in volume.initial.replicas),
        60, 0.2, 'the legs to be disconnected')
    volume.unexport(missing.nqn)
    volume = env.connect(volume.id, volume.initial, tuned=False)
    out['members_at_attach'] = volume.member_nqns()
    out['degraded_at_attach'] = guest_env.read(
        guest_env.MD_SYSFS % (volume.md, 'degraded'))
    volume.reexport(missing.nqn)
    t_back = time.monotonic()
    guest_env.wait_for(lambda: (volume.healthy() and
                                missing.nqn in volume.in_sync_nqns()),
                       checks.HEAL_TIMEOUT, 0.1, 'the missing leg to join')
    out['heal_s'] = time.monotonic() - t_back
    out['members'] = volume.member_nqns()
    out['replica_nqns'] = sorted(r.nqn for r in volume.initial.replicas)
    out['replica_ids_after'] = _replica_ids(volume)
    out['replica_ids_before'] = sorted(r.id for r in volume.initial.replicas)
    out['digest_before'] = digest
    out['alone'] = checks.read_alone(env, volume, missing.nqn,
                                     {'before': checks.BEFORE})
    guest_env.wait_for(volume.healthy, checks.HEAL_TIMEOUT, 0.2,
                       'the removed leg to be re-added')


def _cgroup(name, entry=''):
    return os.path.join(CGROUP_ROOT, name, entry)


def _mount_cgroup2():
    if not os.path.exists(os.path.join(CGROUP_ROOT, 'cgroup.procs')):
        guest_env.run('mount', '-t', 'cgroup2', 'cgroup2', CGROUP_ROOT)


def cgroup_of(pid):
    """The cgroup2 path of ``pid`` ('/rs-starter'), or None if it is gone."""
    text = guest_env.read('/proc/%d/cgroup' % pid)
    return text.split('::', 1)[-1] if text else None


def _stop_unit(name):
    """What systemd does to a unit with KillMode=control-group.

    SIGTERM to every process of the cgroup, then SIGKILL to whatever is
    left through ``cgroup.kill``.
    """
    for pid in guest_env.read(_cgroup(name, 'cgroup.procs'), '').split():
        try:
            os.kill(int(pid), signal.SIGTERM)
        except ProcessLookupError:
            pass
    time.sleep(1.0)
    guest_env.write(_cgroup(name, 'cgroup.kill'), 1)
    guest_env.wait_for(lambda: not guest_env.read(
        _cgroup(name, 'cgroup.procs'), ''), 20, 0.1, 'the cgroup to empty')
    os.rmdir(_cgroup(name))


def _start_starter(env, volume_id):
    """The starter process, inside its own cgroup (a unit's)."""
    os.makedirs(_cgroup(STARTER_CGROUP), exist_ok=True)
    log = open(os.path.join(env.workdir, 'starter.out'), 'w')
    proc = subprocess.Popen(
        [sys.executable, '-m', MODULE, 'starter', '--workdir', env.workdir,
         '--grace-period', str(env.grace_period), volume_id],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    log.close()
    guest_env.write(_cgroup(STARTER_CGROUP, 'cgroup.procs'), proc.pid)
    return proc


def scenario_starter_killed(env, out):
    """The agent outlives the unit whose connect started it.

    A starter process in its own cgroup (what systemd gives nova-compute)
    connects a replicated volume; the hook starts the agent. The starter's
    cgroup is stopped the way systemd stops a unit. The agent must still
    run, and it heals a leg failed afterwards (re-adds it).
    """
    _mount_cgroup2()
    use_grace_period(env, env.grace_period)
    env.stop_agent()
    replica_set = env.provisioner.create_volume('vol-starter', 8 << 20, 2)
    starter = _start_starter(env, 'vol-starter')
    ready = os.path.join(env.workdir, 'starter.ready')
    guest_env.wait_for(lambda: os.path.exists(ready) or
                       starter.poll() is not None, 180, 0.2,
                       'the starter to connect')
    out['starter_connected'] = os.path.exists(ready)
    pid = out['agent_pid'] = env.agent_pid()
    out['starter_cgroup'] = cgroup_of(starter.pid)
    out['agent_cgroup_before'] = cgroup_of(pid) if pid else None
    _stop_unit(STARTER_CGROUP)
    starter.wait(10)
    time.sleep(1.0)
    out['agent_running_after'] = env.agent_running()
    out['agent_pid_after'] = env.agent_pid()
    out['agent_cgroup_after'] = cgroup_of(pid) if pid else None
    out['healed'] = False
    if out['agent_running_after']:
        volume = guest_env.Volume(env, 'vol-starter', replica_set,
                                  '/dev/md/vol-starter')
        _fail_and_wait_back(volume, replica_set.replicas[1], out)


def _fail_and_wait_back(volume, replica, out):
    leg = volume.leg_of(replica.nqn)
    guest_env.run('mdadm', '--manage', '/dev/' + volume.md, '--fail',
                  '/dev/' + leg)
    guest_env.wait_for(lambda: (volume.healthy() and
                                replica.nqn in volume.in_sync_nqns()),
                       checks.HEAL_TIMEOUT, 0.1, 'the leg to be re-added')
    out['healed'] = True


def starter_main(args):
    """The starter: connect the volume through os-brick, then wait."""
    guest_env.wait_for(lambda: cgroup_of(os.getpid()) ==
                       '/' + STARTER_CGROUP, 30, 0.05, 'our cgroup')
    env = guest_env.Env(args.workdir, grace_period=args.grace_period)
    env.install_hook()
    env.make_connector()
    replica_set = env.provisioner.get_replica_set(args.volume)
    env.connect(args.volume, replica_set)
    with open(os.path.join(args.workdir, 'starter.ready'), 'w') as stream:
        stream.write('%d\n' % os.getpid())
    while True:
        time.sleep(60)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('command', choices=['starter'])
    parser.add_argument('--workdir', required=True)
    parser.add_argument('--grace-period', type=float, required=True)
    parser.add_argument('volume')
    return starter_main(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
