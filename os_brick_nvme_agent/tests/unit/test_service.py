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

import functools
import os

import fixtures
from oslo_config import cfg
import testtools

from os_brick_nvme_agent import engine
from os_brick_nvme_agent import exception
from os_brick_nvme_agent.host import snapshot
from os_brick_nvme_agent import journal
from os_brick_nvme_agent import model
from os_brick_nvme_agent import opts
from os_brick_nvme_agent import service
from os_brick_nvme_agent import state as state_mod
from os_brick_nvme_agent.tests.unit import fixtures_util

LS = model.LegState
RS = model.ReplicaState
NQN = 'nqn.2016-06.io.spdk:%s-%s'
PORTALS = (model.Portal('tcp', '192.0.2.1', 4420),)


def array(volume, name, legs, md_name=None):
    return model.Array(name=name, md_name=md_name or volume, uuid=None,
                       level='raid1', raid_disks=2,
                       degraded=sum(leg.state is not LS.IN_SYNC
                                    for leg in legs),
                       array_state='clean', sync_action='idle',
                       legs=tuple(legs))


def leg(volume, replica, device, state, slot):
    return model.Leg(device=device, slot=slot, state=state,
                     subsysnqn=NQN % (volume, replica))


def controller(volume, replica, name, state='live'):
    return model.Controller(name=name, subsysnqn=NQN % (volume, replica),
                            transport='tcp',
                            address='traddr=192.0.2.1,trsvcid=4420',
                            state=state, namespaces=(name + 'n1',))


def replica_set(volume, generation=1, states=None):
    states = states or {}
    return model.ReplicaSet(volume, generation, tuple(
        model.Replica(id=r, nqn=NQN % (volume, r), portals=PORTALS,
                      state=states.get(r, RS.AVAILABLE))
        for r in ('r1', 'r2')))


def degraded_host(volume='vol', md='md127', first=1):
    """r1 in sync, r2 faulty and its controller reconnecting."""
    return (
        array(volume, md, [
            leg(volume, 'r1', 'nvme%dn1' % first, LS.IN_SYNC, 0),
            leg(volume, 'r2', 'nvme%dn1' % (first + 1), LS.FAULTY, None),
            model.Leg(device=None, slot=1, state=LS.MISSING)]),
        (controller(volume, 'r1', 'nvme%d' % first),
         controller(volume, 'r2', 'nvme%d' % (first + 1), 'connecting')))


class Recorder(object):
    """Provisioner, executor and store fakes sharing one call log."""

    def __init__(self):
        self.log = []
        self.sets = {}
        self.fail_get = None
        self.fail_apply = {}
        self.saved = []
        self.tuned = []
        self.fail_tune = None
        self.events = []
        self.fail_probe = None

    # provisioner
    def probe(self):
        if self.fail_probe:
            raise self.fail_probe

    def send_event(self, event):
        self.events.append((event['event'], event['volume'],
                            event.get('replica')))
        return True

    def get_replica_set(self, volume_id):
        if self.fail_get:
            raise self.fail_get
        answer = self.sets.get(volume_id)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def report_replica_state(self, volume_id, replica_id, state):
        self.log.append(('report', volume_id, replica_id, state))
        if 'report' in self.fail_apply:
            raise self.fail_apply['report']

    def request_replacement(self, volume_id, replica_id):
        self.log.append(('request', volume_id, replica_id))

    # executor
    def apply(self, action):
        self.log.append(('host', action))
        error = self.fail_apply.get(type(action))
        if error:
            raise error

    def tune_controllers(self, host, md_names):
        self.tuned.append(tuple(md_names))
        if self.fail_tune:
            raise self.fail_tune
        return ()

    # store
    def load(self):
        return state_mod.AgentState()

    def save(self, agent_state):
        self.log.append(('save',))
        self.saved.append(agent_state)


class FakeWatcher(object):
    def __init__(self):
        self.waits = 0
        self.interrupts = 0
        self.timeouts = []

    def wait(self, timeout=None):
        self.waits += 1
        self.timeouts.append(timeout)
        return 'timeout'

    def interrupt(self):
        self.interrupts += 1


class ServiceTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.FakeLogger())
        self.conf = cfg.ConfigOpts()
        opts.register_opts(self.conf)
        self.conf([])
        for name, value in (('grace_period', 60.0),
                            ('provisioner_backoff_initial', 2.0),
                            ('provisioner_backoff_max', 10.0)):
            self.conf.set_override(name, value, group='nvme_agent')
        self.rec = Recorder()
        self.host = model.HostState()
        self.now = 1000.0
        self.watcher = FakeWatcher()
        self.svc = service.AgentService(
            self.conf, provisioner=self.rec, executor=self.rec,
            store=self.rec, snapshot=lambda: self.host,
            watcher=self.watcher, clock=lambda: self.now)
        self.svc.backoff._rng = lambda: 1.0     # no jitter in tests

    def set_host(self, *volumes):
        arrays, controllers = [], []
        for arr, ctrls in volumes:
            arrays.append(arr)
            controllers.extend(ctrls)
        self.host = model.HostState(tuple(arrays), tuple(controllers))

    def test_volume_ids(self):
        self.set_host(degraded_host('a'), degraded_host('b', 'md126', 3))
        self.assertEqual(['a', 'b'], service.volume_ids(self.host))
        self.host = model.HostState((
            array('x', 'md1', [], 'host:x'),
            model.Array('md0', None, None, 'raid1', 2, 0, 'clean', 'idle')))
        self.assertEqual(['x'], service.volume_ids(self.host))

    def test_faulty_leg_is_reported_after_write_ahead(self):
        self.set_host(degraded_host())
        self.rec.sets['vol'] = replica_set('vol')
        self.assertIsNone(self.svc.run_once())
        self.assertEqual([('save',), ('report', 'vol', 'r2', RS.FAULTY)],
                         self.rec.log)
        pending = self.rec.saved[-1].volume('vol').pending
        self.assertEqual([model.ReportReplicaState('vol', 'r2', RS.FAULTY)],
                         list(pending))     # objects until serialised
        self.assertIs(self.svc.state, self.rec.saved[-1])

    def test_provisioner_outage_backs_off_and_touches_nothing(self):
        self.set_host(degraded_host())
        self.rec.fail_get = exception.ProvisionerUnavailable('down')
        delays = [self.svc.run_once() for _ in range(5)]
        self.assertEqual([2.0, 4.0, 8.0, 10.0, 10.0], delays)
        self.assertEqual([], self.rec.log)      # no save, no action
        self.rec.fail_get = None
        self.rec.sets['vol'] = replica_set('vol')
        self.assertIsNone(self.svc.run_once())
        self.assertEqual(0, self.svc.backoff.failures)

    def test_malformed_answer_leaves_that_volume_alone(self):
        self.set_host(degraded_host('bad'), degraded_host('good', 'md126', 3))
        self.rec.sets['bad'] = exception.MalformedReply('garbage')
        self.rec.sets['good'] = replica_set('good')
        self.svc.run_once()
        touched = {entry[1] for entry in self.rec.log if entry[0] != 'save'}
        self.assertEqual({'good'}, touched)

    def test_plugin_bug_leaves_that_volume_alone(self):
        self.set_host(degraded_host('bad'), degraded_host('good', 'md126', 3))
        self.rec.sets['bad'] = KeyError('bug')
        self.rec.sets['good'] = replica_set('good')
        self.assertIsNone(self.svc.run_once())
        touched = {entry[1] for entry in self.rec.log if entry[0] != 'save'}
        self.assertEqual({'good'}, touched)

    def test_unknown_volume_is_not_touched(self):
        self.set_host(degraded_host('foreign'))
        self.svc.run_once()
        self.assertEqual([('save',)], self.rec.log)

    def test_failed_host_action_skips_rest_of_its_volume(self):
        actions = [model.RemoveLeg('a', 'md127', 'nvme2n1'),
                   model.AddLeg('a', 'md127', 'nvme3n1'),
                   model.AddLeg('b', 'md126', 'nvme5n1')]
        self.rec.fail_apply[model.RemoveLeg] = exception.HostCommandFailed(
            ['mdadm'], 1)
        self.assertIsNone(self.svc.execute(actions))
        self.assertEqual([('host', actions[0]), ('host', actions[2])],
                         self.rec.log)

    def test_failed_reconnect_does_not_hold_back_the_report(self):
        # a degraded attach whose target is still down: the reconnect
        # fails on every pass, the report must still be sent
        replica = replica_set('a').replicas[1]
        actions = [model.ConnectReplica('a', replica),
                   model.ReportReplicaState('a', 'r2', RS.FAULTY),
                   model.AddLeg('a', 'md127', 'nvme3n1')]
        self.rec.fail_apply[model.ConnectReplica] = (
            exception.HostCommandFailed(['nvme', 'connect'], 1))
        self.svc.execute(actions)
        self.assertEqual([('host', actions[0]),
                          ('report', 'a', 'r2', RS.FAULTY)], self.rec.log)

    def test_target_connect_and_disconnect_are_forwarded(self):
        replica = replica_set('a').replicas[1]
        self.svc.execute([model.ConnectReplica('a', replica),
                          model.AddLeg('a', 'md127', 'nvme3n1'),
                          model.DisconnectController('a', 'nqn.old')])
        self.assertEqual([('replica_connected', 'a', 'r2'),
                          ('controller_disconnected', 'a', None)],
                         self.rec.events)

    def test_failed_forward_is_logged_and_the_pass_goes_on(self):
        logger = self.useFixture(fixtures.FakeLogger(
            name='os_brick_nvme_agent.service'))

        def refuse(event):
            raise exception.ProvisionerError('no forward_log')
        self.rec.send_event = refuse
        replica = replica_set('a').replicas[1]
        actions = [model.ConnectReplica('a', replica),
                   model.AddLeg('a', 'md127', 'nvme3n1')]
        self.svc.execute(actions)
        self.assertEqual([('host', actions[0]), ('host', actions[1])],
                         self.rec.log)
        self.assertEqual(1, logger.output.count(
            'Could not forward event replica_connected of a'))

    def test_provisioner_outage_while_reporting(self):
        self.rec.fail_apply['report'] = exception.ProvisionerUnavailable('x')
        actions = [model.ReportReplicaState('a', 'r2', RS.FAULTY),
                   model.AddLeg('b', 'md126', 'nvme5n1')]
        self.assertEqual(2.0, self.svc.execute(actions))
        self.assertEqual(1, len(self.rec.log))

    def test_provisioner_actions_go_to_the_provisioner(self):
        self.svc.execute([model.RequestReplacement('a', 'r2')])
        self.assertEqual([('request', 'a', 'r2')], self.rec.log)

    def test_tick_waits_on_the_watcher(self):
        self.rec.sets['vol'] = replica_set('vol')
        self.assertEqual(0, self.svc._tick())
        self.assertEqual(1, self.watcher.waits)

    def test_tick_looks_again_soon_after_acting(self):
        self.rec.sets['vol'] = replica_set('vol')
        self.set_host(degraded_host())
        self.assertEqual(0, self.svc._tick())
        self.assertTrue(self.svc.acted)
        self.assertEqual([service.AFTER_ACTION_WAIT], self.watcher.timeouts)
        # nothing new to do: back to the poll interval (watcher default)
        self.host = model.HostState()
        self.assertEqual(0, self.svc._tick())
        self.assertFalse(self.svc.acted)
        self.assertEqual([service.AFTER_ACTION_WAIT, None],
                         self.watcher.timeouts)

    def test_failed_action_waits_the_normal_interval(self):
        # A step that fails (e.g. connecting to a target still down) is
        # retried at poll_interval, not within a second.
        self.rec.fail_apply['report'] = exception.ProvisionerError('no')
        self.rec.sets['vol'] = replica_set('vol')
        self.set_host(degraded_host())
        self.assertEqual(0, self.svc._tick())
        self.assertIn(('report', 'vol', 'r2', RS.FAULTY), self.rec.log)
        self.assertFalse(self.svc.acted)
        self.assertEqual([None], self.watcher.timeouts)

    def test_never_sleeps_past_a_grace_period(self):
        self.conf.set_override('grace_period', 3.0, group='nvme_agent')
        svc = service.AgentService(
            self.conf, provisioner=self.rec, executor=self.rec,
            store=self.rec, snapshot=lambda: self.host,
            watcher=self.watcher, clock=lambda: self.now)
        self.rec.sets['vol'] = replica_set('vol')
        self.set_host(degraded_host())
        svc._tick()                 # reports the faulty replica
        self.now += 1.0
        svc._tick()                 # nothing to do: grace runs for 2 s more
        self.assertFalse(svc.acted)
        self.assertAlmostEqual(2.0 + service.GRACE_SLACK,
                               self.watcher.timeouts[-1])
        self.now += 2.5
        svc._tick()                 # grace over: replacement requested
        self.assertIn(('request', 'vol', 'r2'), self.rec.log)
        self.now += 1.0
        svc._tick()
        self.assertIsNone(self.watcher.timeouts[-1])

    def test_grace_wait(self):
        rec = state_mod.ReplicaRecord(replica_id='r1', nqn=NQN % ('v', 'r1'),
                                      first_seen=0.0, faulty_since=100.0)
        agent_state = state_mod.AgentState(volumes=(
            state_mod.VolumeRecord(volume_id='v', replicas=(rec,)),))
        config = engine.EngineConfig(grace_period=30.0)
        self.assertEqual(20.0, engine.grace_wait(agent_state, 110.0, config))
        self.assertIsNone(engine.grace_wait(agent_state, 130.0, config))
        self.assertIsNone(engine.grace_wait(state_mod.AgentState(), 110.0,
                                            config))
        # the volume's own grace period, when its provisioner gave one
        agent_state = state_mod.AgentState(volumes=(state_mod.VolumeRecord(
            volume_id='v', replicas=(rec,), grace_period=600.0),))
        self.assertEqual(590.0, engine.grace_wait(agent_state, 110.0, config))

    def test_short_poll_interval_is_not_lengthened(self):
        self.conf.set_override('poll_interval', 0.2, group='nvme_agent')
        self.rec.sets['vol'] = replica_set('vol')
        self.set_host(degraded_host())
        self.svc._tick()
        # None: the watcher's own interval, which is poll_interval
        self.assertEqual([None], self.watcher.timeouts)
        self.assertIsNone(self.svc.next_wait())

    def test_controllers_of_known_volumes_are_tuned(self):
        self.rec.sets['a'] = replica_set('a')
        self.set_host(degraded_host('a'), degraded_host('b', 'md126', 3))
        self.svc.run_once()
        self.assertEqual([('a',)], self.rec.tuned)

    def test_no_known_volume_nothing_tuned(self):
        self.set_host(degraded_host('b'))
        self.svc.run_once()
        self.assertEqual([], self.rec.tuned)

    def test_tuning_failure_does_not_stop_the_pass(self):
        self.rec.sets['vol'] = replica_set('vol')
        self.set_host(degraded_host())
        self.rec.fail_tune = OSError('sysfs went read-only')
        logger = self.useFixture(fixtures.FakeLogger(
            name='os_brick_nvme_agent.service'))
        self.svc.run_once()
        self.assertIn('sysfs went read-only', logger.output)
        self.assertIn(('save',), self.rec.log)
        self.assertTrue(self.svc.acted)

    def test_tick_backs_off_without_waiting(self):
        self.rec.fail_get = exception.ProvisionerUnavailable('down')
        self.set_host(degraded_host())
        self.assertEqual(2.0, self.svc._tick())
        self.assertEqual(0, self.watcher.waits)

    def test_tick_survives_a_failing_pass(self):
        def broken():
            raise OSError('sysfs vanished')
        self.svc.snapshot = broken
        logger = self.useFixture(fixtures.FakeLogger(
            name='os_brick_nvme_agent.service'))
        self.assertEqual(2.0, self.svc._tick())
        self.assertIn('sysfs vanished', logger.output)

    def test_stop_interrupts_the_watcher(self):
        self.svc.stop()
        self.assertEqual(1, self.watcher.interrupts)

    def test_engine_config_from_options(self):
        config = service.engine_config(self.conf.nvme_agent)
        self.assertEqual((60.0, 60.0, 300.0, 30.0),
                         (config.grace_period, config.report_interval,
                          config.request_interval, config.connect_interval))


class HistoryTest(ServiceTest):
    """The journal, the probe, the metrics and what the operator sees."""

    def setUp(self):
        super().setUp()
        self.svc.journal = journal.MemoryJournal(lambda: self.now)
        self.logger = self.useFixture(fixtures.FakeLogger(
            name='os_brick_nvme_agent.service'))

    def events(self):
        return [(e['event'], e['volume']) for e in self.svc.journal.events]

    def test_fault_report_and_heal_are_journaled_and_forwarded(self):
        self.set_host(degraded_host())
        self.rec.sets['vol'] = replica_set('vol')
        self.svc.run_once()
        self.assertEqual([('provisioner_reachable', None),
                          ('fault_seen', 'vol'), ('report_sent', 'vol')],
                         self.events())
        report = self.svc.journal.events[-1]
        self.assertEqual(('r2', 'faulty'), (report['replica'],
                                            report['state']))
        self.assertIn('Replica r2 of vol is out of sync', self.logger.output)
        # the leg comes back in sync
        self.host = model.HostState((array('vol', 'md127', [
            leg('vol', 'r1', 'nvme1n1', LS.IN_SYNC, 0),
            leg('vol', 'r2', 'nvme2n1', LS.IN_SYNC, 1)]),), (
            controller('vol', 'r1', 'nvme1'),
            controller('vol', 'r2', 'nvme2')))
        self.svc.run_once()
        self.assertIn(('resync_done', 'vol'), self.events())
        self.assertEqual([('fault_seen', 'vol', 'r2'),
                          ('resync_done', 'vol', 'r2')], self.rec.events)
        self.assertEqual(1, self.svc.heals)

    def test_failed_action_is_journaled_as_an_error(self):
        self.rec.fail_apply[model.AddLeg] = exception.HostCommandFailed(
            ['mdadm', '--add'], 1, stderr='mdadm: busy')
        self.svc.execute([model.AddLeg('a', 'md127', 'nvme3n1')])
        entry = self.svc.journal.events[-1]
        self.assertEqual(('error', 'a', 'AddLeg', 'nvme3n1'),
                         (entry['event'], entry['volume'], entry['action'],
                          entry['device']))
        self.assertIn('mdadm: busy', entry['error'])

    def test_malformed_answer_is_logged_once_per_change(self):
        self.set_host(degraded_host('bad'))
        self.rec.sets['bad'] = exception.MalformedReply('no portals')
        for _ in range(3):
            self.svc.run_once()
        warnings = [line for line in self.logger.output.splitlines()
                    if 'Ignoring the provisioner answer' in line]
        self.assertEqual(['Ignoring the provisioner answer for bad: no '
                          'portals; the volume is left untouched until the '
                          'answer is usable'], warnings)
        self.assertEqual(1, self.events().count(('malformed_answer', 'bad')))
        self.rec.sets['bad'] = exception.MalformedReply('no nqn')
        self.svc.run_once()
        self.assertEqual(2, self.events().count(('malformed_answer', 'bad')))
        self.rec.sets['bad'] = replica_set('bad')
        self.svc.run_once()
        self.assertIn('answer for bad is usable again', self.logger.output)
        self.rec.sets['bad'] = exception.MalformedReply('no nqn')
        self.svc.run_once()     # bad again after good: new news
        self.assertEqual(3, self.events().count(('malformed_answer', 'bad')))

    def test_probe_at_start_and_reachability_changes(self):
        self.rec.fail_probe = exception.ProvisionerUnavailable(
            'KumoScale unreachable: connection refused')
        self.useFixture(fixtures.MockPatch(
            'oslo_service.loopingcall.DynamicLoopingCall'))
        self.svc.start()
        self.assertEqual([('agent_started', None),
                          ('provisioner_unreachable', None)], self.events())
        self.assertIn('Provisioner static is unreachable: KumoScale '
                      'unreachable: connection refused', self.logger.output)
        self.rec.fail_get = exception.ProvisionerUnavailable('still down')
        self.set_host(degraded_host())
        self.svc.run_once()     # no change: not journaled again
        self.assertEqual(1, self.events().count(
            ('provisioner_unreachable', None)))
        self.rec.fail_get = None
        self.svc.run_once()
        self.assertEqual(('provisioner_reachable', None), self.events()[2])
        self.assertIn('Provisioner static is reachable', self.logger.output)

    def test_pass_without_arrays_does_not_claim_the_provisioner_is_up(self):
        # Nothing to ask about: the failed probe at start still stands.
        self.rec.fail_probe = exception.ProvisionerUnavailable('refused')
        self.useFixture(fixtures.MockPatch(
            'oslo_service.loopingcall.DynamicLoopingCall'))
        self.svc.start()
        self.svc.run_once()
        self.assertFalse(self.svc.reachable)
        self.assertNotIn(('provisioner_reachable', None), self.events())

    def test_metrics_file(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'agent.prom')
        self.conf.set_override('metrics_file', path, group='nvme_agent')
        monotonic = iter([10.25, 11.0, 12.0])
        self.svc.monotonic = lambda: next(monotonic)
        self.svc.woke_at = 10.0
        self.set_host(degraded_host('a'), degraded_host('b', 'md126', 3))
        self.rec.sets['a'] = replica_set('a')
        self.svc.run_once()
        with open(path) as handle:
            text = handle.read()
        self.assertIn('# TYPE os_brick_nvme_agent_arrays gauge\n'
                      'os_brick_nvme_agent_arrays 1\n', text)
        self.assertIn('os_brick_nvme_agent_degraded_arrays 1\n', text)
        self.assertIn('os_brick_nvme_agent_heals_total 0\n', text)
        self.assertIn('os_brick_nvme_agent_last_detection_latency_seconds '
                      '0.25\n', text)
        self.assertIn('os_brick_nvme_agent_provisioner_up 1\n', text)

    def test_unwritable_metrics_file_is_logged_once(self):
        self.conf.set_override('metrics_file', '/nonexistent/dir/a.prom',
                               group='nvme_agent')
        for _ in range(3):
            self.svc.run_once()
        self.assertEqual(1, self.logger.output.count(
            'Cannot write the metrics file /nonexistent/dir/a.prom'))

    def test_volume_grace_period_from_the_provisioner(self):
        self.set_host(degraded_host())
        self.rec.sets['vol'] = model.ReplicaSet(
            'vol', 1, replica_set('vol').replicas, grace_period=5.0)
        self.svc.run_once()         # option says 60 s, the volume 5 s
        self.now += 5.0
        self.svc.run_once()
        self.assertIn(('request', 'vol', 'r2'), self.rec.log)


class BackoffTest(testtools.TestCase):

    def test_jitter_stays_within_half_and_full_step(self):
        backoff = service.Backoff(1.0, 5.0, rng=lambda: 0.0)
        self.assertEqual([0.5, 1.0, 2.0, 2.5], [backoff.next_delay()
                                                for _ in range(4)])
        backoff.reset()
        self.assertEqual(0.5, backoff.next_delay())


# One pass of the real host layer and engine over states recorded on a real
# kernel (fixtures/real), from an empty agent state: scenario name suffix ->
# the host actions decided, as (allowed action names, device).
_READD = {'AddLeg', 'ReAddLeg'}
REAL_DECISIONS = {
    'clean': [],
    # failed by mdadm --fail while its namespace stays live: take it back
    'leg-failed': [({'RemoveLeg'}, 'nvme1n1'), (_READD, 'nvme1n1')],
    'leg-removed': [(_READD, 'nvme1n1')],
    'recovering': [],
    'ctrl-connecting': [],          # the kernel is still reconnecting
    'reconnected': [(_READD, 'nvme1n2')],
    'ctrl-back': [({'RemoveLeg'}, 'nvme0n1'), (_READD, 'nvme0n1')],
}


class RealRecordingPassTest(testtools.TestCase):

    def _replica_set(self, roots):
        clean = [r for r in roots if r.endswith('-clean')][0]
        nqns = sorted(c.subsysnqn for c in
                      snapshot.read_host_state(clean).controllers)
        return lambda volume: model.ReplicaSet(volume, 1, tuple(
            model.Replica(id='r%d' % n, nqn=nqn, portals=PORTALS)
            for n, nqn in enumerate(nqns, 1)))

    def _decide(self, conf, root, answer):
        rec = Recorder()
        rec.get_replica_set = answer
        svc = service.AgentService(
            conf, provisioner=rec, executor=rec, store=rec,
            snapshot=functools.partial(snapshot.read_host_state, root),
            watcher=FakeWatcher(), clock=lambda: 1000.0)
        svc.run_once()
        return [entry[1] for entry in rec.log if entry[0] == 'host']

    def test_decisions_on_recorded_states(self):
        roots = fixtures_util.real_roots()
        if not any(r.endswith('-clean') for r in roots):
            self.skipTest('no real recordings')
        self.useFixture(fixtures.FakeLogger())
        conf = cfg.ConfigOpts()
        opts.register_opts(conf)
        conf([])
        answer = self._replica_set(roots)
        checked = 0
        for root in roots:
            name = os.path.basename(root).split('-', 1)[-1]
            if name not in REAL_DECISIONS:
                continue
            actions = self._decide(conf, root, answer)
            expected = REAL_DECISIONS[name]
            self.assertEqual(len(expected), len(actions), (root, actions))
            for (names, device), action in zip(expected, actions):
                self.assertIn(type(action).__name__, names, root)
                self.assertEqual(device, action.device, root)
            checked += 1
        self.assertGreaterEqual(checked, 5)
