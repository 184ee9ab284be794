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

"""The agent daemon, run as a process, heals a simulated host.

The host is :mod:`simhost` (sysfs/proc files plus fake ``mdadm`` and
``nvme`` executables that keep state); the provisioner is the real
``static`` plugin, whose file this test edits the way a storage backend
would. Privileged commands run in the daemon's process
(``privsep_in_process``): the fake executables need no privileges.
"""

import json
import os
import signal
import subprocess
import sys
import time

import fixtures
import testtools

from os_brick_nvme_agent import daemonize
from os_brick_nvme_agent import hook
from os_brick_nvme_agent.tests.functional import simhost

NQN = 'nqn.2014-08.org.example:vol-1-%s'
VOLUME = 'vol-1'
TIMEOUT = 20


def replica(name, state='available'):
    return {'id': name, 'nqn': NQN % name, 'state': state,
            'portals': [{'transport': 'tcp', 'address': '192.0.2.10',
                         'port': 4420}]}


def _alive(pid):
    """True while ``pid`` runs (a zombie no longer does)."""
    try:
        with open('/proc/%d/stat' % pid) as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (OSError, IndexError):
        return False


def agent_command():
    script = os.path.join(os.path.dirname(sys.executable),
                          'os-brick-nvme-agent')
    if os.path.exists(script):
        return [script]
    return [sys.executable, '-m', 'os_brick_nvme_agent.cmd.agent']


class DaemonFixture(fixtures.Fixture):
    """A simulated host, a static provisioner file and an agent config."""

    def _setUp(self):
        self.root = self.useFixture(fixtures.TempDir()).path
        self.sim = simhost.SimHost(self.root, resync_seconds=0.3)
        for name in ('r1', 'r2', 'r3', 'r4'):
            self.sim.add_target(NQN % name)
        self.md = self.sim.create_array(VOLUME, [
            self.sim.connect(NQN % 'r1'), self.sim.connect(NQN % 'r2')])
        # an array os-brick did not create (unknown to the provisioner)
        for name in ('f1', 'f2'):
            self.sim.add_target(NQN % name)
        self.foreign = self.sim.create_array('foreign', [
            self.sim.connect(NQN % 'f1'), self.sim.connect(NQN % 'f2')])
        self.replicas = os.path.join(self.root, 'replicas.json')
        self.write_volume({'generation': 1,
                           'replicas': [replica('r1'), replica('r2')]})
        self.state_dir = os.path.join(self.root, 'state')
        self.config = os.path.join(self.root, 'agent.conf')
        with open(self.config, 'w') as handle:
            handle.write(CONFIG % {'root': self.root,
                                   'state': self.state_dir,
                                   'replicas': self.replicas})

    def read_volume(self, volume_id=VOLUME):
        with open(self.replicas) as handle:
            return json.load(handle)['volumes'][volume_id]

    def write_volume(self, volume):
        self.write_volumes({VOLUME: volume})

    def write_volumes(self, volumes):
        tmp = self.replicas + '.tmp'
        with open(tmp, 'w') as handle:
            json.dump({'volumes': volumes}, handle)
        os.replace(tmp, self.replicas)

    def replace(self, old, new):
        """Play the storage backend: swap replica ``old`` for ``new``."""
        volume = self.read_volume()
        volume['replicas'] = [r for r in volume['replicas']
                              if r['id'] != old] + [replica(new)]
        volume['generation'] += 1
        volume['requests'] = []
        self.write_volume(volume)

    def state(self):
        with open(os.path.join(self.state_dir, 'state.json')) as handle:
            return json.load(handle)


CONFIG = '''[DEFAULT]
log_file = %(root)s/agent.log
[nvme_agent]
enabled = true
provisioner = static
poll_interval = 0.2
grace_period = 1.0
report_interval = 1.0
request_interval = 2.0
connect_interval = 0.5
provisioner_backoff_initial = 0.2
provisioner_backoff_max = 1.0
state_dir = %(state)s
root_dir = %(root)s
privsep_in_process = true
[provisioner_static]
path = %(replicas)s
'''


class DaemonTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.env = self.useFixture(DaemonFixture())
        self.sim = self.env.sim
        # the agent runs the fake mdadm and nvme found first on its PATH,
        # as the privileged helper runs root's
        self.useFixture(fixtures.EnvironmentVariable(
            'PATH', os.path.dirname(self.sim.mdadm) + os.pathsep
            + os.environ.get('PATH', '')))

    def start_daemon(self):
        log = open(os.path.join(self.env.root, 'daemon.out'), 'a')
        self.addCleanup(log.close)
        proc = subprocess.Popen(
            agent_command() + ['--config-file', self.env.config],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True)
        self.addCleanup(self._kill_group, proc)
        return proc

    @staticmethod
    def _kill_group(proc):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def wait_for(self, predicate, what, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sim.render()           # completes resyncs like the kernel
            if predicate():
                return
            time.sleep(0.05)
        with open(os.path.join(self.env.root, 'agent.log')) as handle:
            log = handle.read()[-4000:]
        self.fail('timed out waiting for %s\nmembers: %s\ncommands: %s\n%s'
                  % (what, self.sim.member_nqns(self.env.md),
                     self.sim.commands(), log))

    def converged(self, replicas, gone):
        members = self.sim.member_nqns(self.env.md)
        controllers = {c['nqn'] for c in
                       self.sim.state()['controllers'].values()}
        return (set(members) == {NQN % r for r in replicas}
                and all(flags[0] == 'in_sync' for flags in members.values())
                and NQN % gone not in controllers)

    def fast_io_fail_tmo(self, nqn):
        """{controller: fast_io_fail_tmo text} of the controllers of nqn."""
        base = os.path.join(self.env.root, 'sys/class/nvme-fabrics/ctl')
        result = {}
        for name, ctrl in self.sim.state()['controllers'].items():
            if ctrl['nqn'] == nqn:
                with open(os.path.join(base, name,
                                       'fast_io_fail_tmo')) as handle:
                    result[name] = handle.read().strip()
        return result

    def seen_in_sync(self):
        """The agent has recorded both replicas as members once."""
        try:
            volumes = self.env.state()['volumes']
        except (OSError, ValueError):
            return False
        return any(len([r for r in v['replicas'] if r['was_member']]) == 2
                   for v in volumes)

    def requested(self, name):
        requests = self.env.read_volume().get('requests', [])
        return {'replace': name} in requests

    def test_heal_then_crash_mid_heal_and_converge(self):
        proc = self.start_daemon()
        self.wait_for(self.seen_in_sync, 'a first pass')
        # 0. the legs of the managed array fail I/O 5 s after a loss (the
        # default); the foreign array's controllers keep the kernel's value
        self.wait_for(lambda: all(
            set(self.fast_io_fail_tmo(NQN % r).values()) == {'5'}
            for r in ('r1', 'r2')), 'fast_io_fail_tmo set on the legs')
        for name in ('f1', 'f2'):
            self.assertEqual({'off'}, set(
                self.fast_io_fail_tmo(NQN % name).values()))

        # 1. a leg fails: reported, replacement requested, replaced, healed;
        # a leg of the foreign array fails too and must be left alone
        self.sim.kill_target(NQN % 'f2')
        self.sim.kill_target(NQN % 'r2')
        self.wait_for(lambda: any(r['id'] == 'r2' and r['state'] == 'faulty'
                                  for r in self.env.read_volume()['replicas']),
                      'r2 reported faulty')
        self.wait_for(lambda: self.requested('r2'), 'replacement of r2')
        self.env.replace('r2', 'r3')
        self.wait_for(lambda: self.converged(('r1', 'r3'), 'r2'),
                      'array healed with r3')

        # 2. another failure; the daemon is SIGKILLed in the middle of each
        # host step of the repair, and a new daemon takes over every time
        md = '/dev/' + self.env.md
        steps = {'nvme connect': 'ConnectReplica',
                 'mdadm --manage %s --remove' % md: 'RemoveLeg',
                 'mdadm --manage %s --add' % md: 'AddLeg',
                 'nvme disconnect': 'DisconnectController'}
        self.sim.hold(*steps)
        self.sim.kill_target(NQN % 'r3')
        self.wait_for(lambda: self.requested('r3'), 'replacement of r3')
        self.env.replace('r3', 'r4')
        # restarts take seconds: from now on the new replica must not be
        # declared failed for being slow to join
        self._long_grace()
        while steps:
            self.wait_for(lambda: self.sim.held() is not None,
                          'one of %s to start' % list(steps))
            command = next(p for p in steps if p in self.sim.held())
            pending = [a['type'] for v in self.env.state()['volumes']
                       for a in v['pending']]
            self.assertIn(steps.pop(command), pending)  # written ahead
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            self.assertFalse(self.converged(('r1', 'r4'), 'r3'))
            self.sim.release()
            if steps:
                self.sim.hold(*steps)
            proc = self.start_daemon()

        # 3. the last daemon finishes the repair
        self.wait_for(lambda: self.converged(('r1', 'r4'), 'r3'),
                      'array healed with r4 after the crashes')
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(0, proc.wait(timeout=10))
        self.assertFalse(hook.is_running(self.env.state_dir))
        touched = [c for c in self.sim.commands()
                   if '/dev/' + self.env.foreign in c
                   or any(NQN % 'f' in arg for arg in c)]
        self.assertEqual([], touched)
        self.assertEqual(['failfast', 'faulty'], sorted(
            self.sim.member_nqns(self.env.foreign)[NQN % 'f2']))

    def test_returning_leg_re_added_then_healthy_leg_migrated(self):
        self._long_grace()
        proc = self.start_daemon()
        self.wait_for(self.seen_in_sync, 'a first pass')
        self.sim.kill_target(NQN % 'r2')
        self.wait_for(lambda: any(r['state'] == 'faulty' for r in
                                  self.env.read_volume()['replicas']),
                      'r2 reported faulty')
        self.sim.restore_target(NQN % 'r2')
        self.wait_for(lambda: self.converged(('r1', 'r2'), 'r3'),
                      'r2 back in sync')
        commands = [' '.join(c) for c in self.sim.commands()]
        self.assertTrue(any('--re-add' in c and c.endswith('=> 0')
                            for c in commands), commands)
        self.assertFalse(self.requested('r2'))

        # the backend moves the healthy r2 elsewhere: the new replica joins
        # and catches up before the old leg is failed and removed
        self.env.replace('r2', 'r3')
        self.wait_for(lambda: self.converged(('r1', 'r3'), 'r2'),
                      'r2 migrated to r3')
        commands = [' '.join(c) for c in self.sim.commands()]
        add = next(i for i, c in enumerate(commands) if '--add' in c)
        fail = next(i for i, c in enumerate(commands) if '--fail' in c)
        self.assertLess(add, fail, commands)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(0, proc.wait(timeout=10))

    def test_lost_controller_is_reconnected_and_re_added(self):
        self._long_grace()
        proc = self.start_daemon()
        self.wait_for(self.seen_in_sync, 'a first pass')
        self.sim.kill_target(NQN % 'r2')
        self.sim.drop_controllers(NQN % 'r2')   # ctrl-loss-tmo expired
        self.wait_for(lambda: any(r['state'] == 'faulty' for r in
                                  self.env.read_volume()['replicas']),
                      'r2 reported faulty')
        self.sim.restore_target(NQN % 'r2')
        self.wait_for(lambda: self.converged(('r1', 'r2'), 'r3'),
                      'r2 reconnected and back in sync')
        commands = [' '.join(c) for c in self.sim.commands()]
        connects = [c for c in commands
                    if c.startswith('nvme connect') and NQN % 'r2' in c]
        self.assertTrue(connects, commands)
        self.assertTrue(any('--re-add' in c and c.endswith('=> 0')
                            for c in commands), commands)
        self.assertFalse(self.requested('r2'))
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(0, proc.wait(timeout=10))

    def test_degraded_attach_is_healed(self):
        """os-brick assembled an array with a leg missing (LP 1938870).

        vol-2's second replica was unreachable at attach time, so os-brick
        assembled its array from the first leg alone. Once the target
        answers, the agent connects it and adds it: no replacement.
        """
        self._long_grace()
        for name in ('d1', 'd2'):
            self.sim.add_target(NQN % name)
        self.sim.kill_target(NQN % 'd2')
        degraded = self.sim.create_array(
            'vol-2', [self.sim.connect(NQN % 'd1')], missing=[NQN % 'd2'])
        volumes = {VOLUME: self.env.read_volume(),
                   'vol-2': {'generation': 1,
                             'replicas': [replica('d1'), replica('d2')]}}
        self.env.write_volumes(volumes)
        proc = self.start_daemon()
        self.wait_for(lambda: any(
            r['id'] == 'd2' and r['state'] == 'faulty'
            for r in self.env.read_volume('vol-2')['replicas']),
            'the missing leg d2 reported faulty')
        self.sim.restore_target(NQN % 'd2')
        self.wait_for(lambda: set(self.sim.member_nqns(degraded)) == {
            NQN % 'd1', NQN % 'd2'} and all(
            flags[0] == 'in_sync'
            for flags in self.sim.member_nqns(degraded).values()),
            'vol-2 whole again with d2')
        commands = [' '.join(c) for c in self.sim.commands()]
        self.assertTrue(any(c.startswith('nvme connect') and NQN % 'd2' in c
                            for c in commands), commands)
        self.assertTrue(any('--add' in c and c.endswith('=> 0')
                            for c in commands), commands)
        self.assertNotIn({'replace': 'd2'},
                         self.env.read_volume('vol-2').get('requests', []))
        # the provisioner was told: degraded, target back, healed
        self.wait_for(lambda: [(e['event'], e['replica']) for e in
                               self.env.read_volume('vol-2').get('events',
                                                                 [])]
                      == [('fault_seen', 'd2'), ('replica_connected', 'd2'),
                          ('resync_done', 'd2')],
                      'the degraded, reconnected and healed events of vol-2')
        out = subprocess.run(
            agent_command() + ['events', '--volume', 'vol-2',
                               '--config-file', self.env.config],
            capture_output=True, text=True, check=True).stdout
        for event in ('fault_seen', 'report_sent', 'replica_connected',
                      'leg_added', 'resync_done'):
            self.assertIn(event, out)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(0, proc.wait(timeout=10))

    def _long_grace(self):
        with open(self.env.config) as handle:
            text = handle.read()
        with open(self.env.config, 'w') as handle:
            handle.write(text.replace('grace_period = 1.0',
                                      'grace_period = 30.0'))

    def test_hook_starts_one_detached_daemon(self):
        self.useFixture(fixtures.EnvironmentVariable(hook.CONFIG_FILE_ENV,
                                                     self.env.config))
        self.addCleanup(hook._settings_cache.clear)
        self._use_own_cgroup()
        self.assertTrue(hook.NVMeOFAgent.ensure_running(object()))
        self.addCleanup(self._stop_by_pid_file)
        # the launcher took the lock before it forked and has exited (the
        # hook waited for it): the lock is held, by the daemon
        self.assertTrue(hook.is_running(self.env.state_dir))
        self.wait_for(lambda: _alive(self._pid()),
                      'the daemon to record its pid')
        self.assertFalse(hook.NVMeOFAgent.ensure_running(object()))
        pid = self._pid()
        with open('/proc/%d/stat' % pid) as handle:
            fields = handle.read().rsplit(')', 1)[1].split()
        self.assertNotEqual(os.getpid(), int(fields[1]))   # not our child
        self.assertNotEqual(os.getsid(0), os.getsid(pid))  # own session
        # and out of our cgroup, where the cgroup v2 hierarchy lets it
        mount = daemonize.cgroup2_mount()
        if mount and os.access(mount, os.W_OK):
            self.assertEqual('/' + self.group, daemonize.current_cgroup(
                '/proc/%d/cgroup' % pid))

    def _use_own_cgroup(self):
        """A cgroup name of this test's own, removed once it is empty."""
        self.group = 'os-brick-nvme-agent-test-%d' % os.getpid()
        with open(self.env.config, 'a') as handle:
            handle.write('[nvme_agent]\ncgroup = %s\n' % self.group)
        mount = daemonize.cgroup2_mount()
        if mount:
            self.addCleanup(self._remove_group, os.path.join(mount,
                                                             self.group))

    @staticmethod
    def _remove_group(path):
        # the daemon released its lock; it may take a moment to exit
        deadline = time.monotonic() + 10
        while True:
            try:
                os.rmdir(path)
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _pid(self):
        with open(hook.pid_file(self.env.state_dir)) as handle:
            return int(handle.read())

    def _stop_by_pid_file(self):
        """SIGTERM the daemon and wait for its process to go.

        Not only for the lock: the process outlives it for a moment.
        SIGKILL it if it takes too long on a loaded machine.
        """
        if not hook.is_running(self.env.state_dir):
            return
        pid = self._pid()
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 30
            time.sleep(0.05)
