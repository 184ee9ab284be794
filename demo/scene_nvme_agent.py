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

"""Scene: a replica of an NVMe-oF RAID1 volume fails and the agent heals it.

Everything runs on a simulated host (a temp directory holding
``/proc/mdstat``, md and nvme-fabrics sysfs files, and fake ``mdadm`` and
``nvme`` executables that change them the way the kernel would), with the
agent's real host layer, engine, state file, executor and the ``static``
provisioner. The scene drives the agent's reconcile passes one by one
with a clock that advances one second per pass, so the grace period goes
by without waiting.
"""

import json
import os
import shutil
import tempfile

from oslo_config import cfg

NQN = 'nqn.2014-08.org.example:volume-demo-%s'
VOLUME = 'volume-demo'
GRACE = 5
MAX_PASSES = 20


def _replica(name):
    return {'id': name, 'nqn': NQN % name, 'state': 'available',
            'portals': [{'transport': 'tcp', 'address': '192.0.2.10',
                         'port': 4420}]}


def _build_host(root):
    from os_brick_nvme_agent.tests.functional import simhost
    sim = simhost.SimHost(root, resync_seconds=0)
    for name in ('r1', 'r2', 'r3'):
        sim.add_target(NQN % name)
    md = sim.create_array(VOLUME, [sim.connect(NQN % 'r1'),
                                   sim.connect(NQN % 'r2')])
    with open(os.path.join(root, 'replicas.json'), 'w') as handle:
        json.dump({'volumes': {VOLUME: {
            'generation': 1, 'replicas': [_replica('r1'), _replica('r2')],
            'spares': [_replica('r3')]}}}, handle)
    return sim, md


def _configure(root, sim):
    from os_brick_nvme_agent import opts
    # The privileged commands read the global CONF, as in a privsep daemon.
    conf = cfg.CONF
    opts.register_opts(conf)
    # The fake mdadm and nvme are found on PATH, as root's are.
    os.environ['PATH'] = (os.path.dirname(sim.mdadm) + os.pathsep
                          + os.environ.get('PATH', ''))
    values = {'root_dir': root, 'state_dir': os.path.join(root, 'state'),
              'grace_period': float(GRACE), 'report_interval': 60.0,
              'connect_interval': 1.0, 'privsep_in_process': True}
    for name, value in values.items():
        conf.set_override(name, value, group='nvme_agent')
    from os_brick_nvme_agent.provisioners import static
    conf.register_opts(static.CONFIG_OPTS, group=static.CONFIG_GROUP)
    conf.set_override('path', os.path.join(root, 'replicas.json'),
                      group=static.CONFIG_GROUP)
    return conf, list(values)


def _unconfigure(conf, names):
    from os_brick_nvme_agent.provisioners import static
    for name in names:
        conf.clear_override(name, group='nvme_agent')
    conf.clear_override('path', group=static.CONFIG_GROUP)


class _Clock(object):
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _service(conf, clock):
    from os_brick_nvme_agent import daemon
    from os_brick_nvme_agent import service

    class NarratingService(service.AgentService):
        def _apply(self, action):
            print('    agent -> %s' % _describe(action))
            super()._apply(action)

    built = daemon.build_service(conf)
    return NarratingService(conf, built.provisioner, built.executor,
                            built.store, built.snapshot, built.watcher,
                            clock=clock)


def _describe(action):
    name = type(action).__name__
    if name == 'ReportReplicaState':
        return 'provisioner: replica %s is %s' % (
            action.replica_id, action.state.value)
    if name == 'RequestReplacement':
        return 'provisioner: please replace replica %s' % action.replica_id
    if name == 'ConnectReplica':
        return 'nvme connect -n %s' % action.replica.nqn
    if name == 'DisconnectController':
        return 'nvme disconnect -n %s' % action.nqn
    verb = {'AddLeg': '--add', 'ReAddLeg': '--re-add', 'FailLeg': '--fail',
            'RemoveLeg': '--remove'}[name]
    return 'mdadm --manage /dev/%s %s /dev/%s' % (action.array, verb,
                                                  action.device)


def _show(sim, md):
    members = sim.member_nqns(md)
    return ', '.join('%s:%s' % (nqn.rsplit('-', 1)[-1], flags[0])
                     for nqn, flags in sorted(members.items()))


def _healed(sim, md):
    members = sim.member_nqns(md)
    return (set(members) == {NQN % 'r1', NQN % 'r3'}
            and all(flags[0] == 'in_sync' for flags in members.values()))


def _run(root):
    from os_brick_nvme_agent import privileged
    sim, md = _build_host(root)
    print('A volume %r is an MD RAID1 array (%s) over two NVMe-oF '
          'replicas,\nr1 and r2; the provisioner (a static file) also '
          'holds a spare, r3.' % (VOLUME, md))
    print('  legs: %s' % _show(sim, md))
    conf, names = _configure(root, sim)
    clock = _Clock()
    try:
        agent = _service(conf, clock)
        print('\nThe target serving r2 stops answering; md marks its leg '
              'faulty.')
        sim.kill_target(NQN % 'r2')
        print('  legs: %s' % _show(sim, md))
        print('\nThe agent runs one reconcile pass per (simulated) second; '
              'grace period %ds:' % GRACE)
        for number in range(1, MAX_PASSES + 1):
            print('  pass %d (t=+%ds)' % (number, clock.now - 1000))
            agent.run_once()
            sim.render()
            clock.now += 1
            if _healed(sim, md):
                break
        print('  legs: %s' % _show(sim, md))
        return _healed(sim, md), sim
    finally:
        _unconfigure(conf, names)
        privileged.default.set_client_mode(True)


def main(argv=None):
    root = tempfile.mkdtemp(prefix='nvme-agent-demo-')
    try:
        healed, sim = _run(root)
        controllers = {c['nqn'] for c in sim.state()['controllers'].values()}
        done = healed and NQN % 'r2' not in controllers
        if done:
            print('\nThe agent reported r2, waited out the grace period, '
                  'asked for a\nreplacement, connected r3, added it (md '
                  'rebuilt it), removed the dead\nleg and disconnected r2: '
                  'the array is whole again.')
        else:
            print('\nThe array did not heal as expected.')
        return 0 if done else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    raise SystemExit(main())
