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

import dataclasses

import testtools

from os_brick_nvme_agent import engine
from os_brick_nvme_agent import model
from os_brick_nvme_agent import state as state_mod
from os_brick_nvme_agent.tests.unit import simworld

LS = model.LegState
RS = model.ReplicaState
NQN = 'nqn.2014-08.org.example:vol1-r%d'
PORTALS = (model.Portal('tcp', '192.0.2.7', 4420),)
CONFIG = engine.EngineConfig(grace_period=100.0, report_interval=20.0,
                             request_interval=60.0, connect_interval=10.0,
                             max_rejoins=2)
T0 = 1000.0


def replica(n, state=RS.AVAILABLE):
    return model.Replica('r%d' % n, NQN % n, PORTALS, state)


def rset(*replicas, gen=1, volume='vol1'):
    return model.ReplicaSet(volume, gen, tuple(replicas))


def leg(n, state=LS.IN_SYNC, device=None):
    slot = n if state in (LS.IN_SYNC, LS.REBUILDING) else None
    return model.Leg(device or 'nvme%dn1' % n, slot, state, NQN % n)


def ctrl(n, state='live', namespaces=None):
    if namespaces is None:
        namespaces = ('nvme%dn1' % n,) if state == 'live' else ()
    return model.Controller('nvme%d' % n, NQN % n, 'tcp',
                            'traddr=192.0.2.7,trsvcid=4420', state,
                            namespaces)


def array(*legs, md_name='vol1', name='md127', level='raid1'):
    return model.Array(name, md_name, 'uuid-' + name, level, 2, 0, 'clean',
                       'idle', tuple(legs))


def host(arrays, controllers):
    return model.HostState(tuple(arrays), tuple(controllers))


def kinds(actions):
    return [type(a).__name__ for a in actions]


class EngineTestCase(testtools.TestCase):

    def run_engine(self, host_state, sets, state=None, now=T0, config=CONFIG):
        return engine.reconcile(host_state, sets,
                                state or state_mod.AgentState(), now, config)


class TestHealthy(EngineTestCase):

    def test_whole_array_needs_nothing(self):
        h = host([array(leg(1), leg(2))], [ctrl(1), ctrl(2)])
        actions, state = self.run_engine(
            h, {'vol1': rset(replica(1), replica(2))})
        self.assertEqual([], actions)
        record = state.volume('vol1')
        self.assertEqual(1, record.generation)
        self.assertTrue(all(r.was_member for r in record.replicas))

    def test_reconcile_is_deterministic(self):
        h = host([array(leg(1), leg(2, LS.FAULTY))], [ctrl(1)])
        sets = {'vol1': rset(replica(1), replica(2))}
        self.assertEqual(self.run_engine(h, sets), self.run_engine(h, sets))


class TestFaultyLeg(EngineTestCase):

    def test_faulty_leg_with_live_device_is_re_added(self):
        h = host([array(leg(1), leg(2, LS.FAULTY))], [ctrl(1), ctrl(2)])
        actions, _ = self.run_engine(h, {'vol1': rset(replica(1),
                                                      replica(2))})
        self.assertEqual(
            [model.RemoveLeg('vol1', 'md127', 'nvme2n1'),
             model.ReAddLeg('vol1', 'md127', 'nvme2n1')], actions)

    def test_missing_leg_is_reported_and_reconnected(self):
        missing = model.Leg(None, None, LS.MISSING)
        h = host([array(leg(1), missing)], [ctrl(1)])
        actions, state = self.run_engine(
            h, {'vol1': rset(replica(1), replica(2))})
        self.assertEqual(
            [model.ConnectReplica('vol1', replica(2)),
             model.ReportReplicaState('vol1', 'r2', RS.FAULTY)], actions)
        self.assertEqual(T0, state.volume('vol1').replica('r2').faulty_since)

    def test_degraded_attach_adds_the_connected_leg(self):
        # os-brick assembled the array before the second leg's namespace
        # showed up (LP 1938870): its controller is live, its slot empty.
        missing = model.Leg(None, None, LS.MISSING)
        h = host([array(leg(1), missing)], [ctrl(1), ctrl(2)])
        actions, state = self.run_engine(
            h, {'vol1': rset(replica(1), replica(2))})
        self.assertEqual([model.AddLeg('vol1', 'md127', 'nvme2n1')], actions)
        self.assertEqual(T0, state.volume('vol1').replica('r2').faulty_since)

    def test_degraded_attach_is_replaced_after_the_grace_period(self):
        missing = model.Leg(None, None, LS.MISSING)
        h = host([array(leg(1), missing)], [ctrl(1)])
        sets = {'vol1': rset(replica(1), replica(2))}
        _, state = self.run_engine(h, sets)
        actions, _ = self.run_engine(h, sets, state,
                                     T0 + CONFIG.grace_period)
        self.assertIn(model.RequestReplacement('vol1', 'r2'), actions)

    def test_controller_reconnecting_is_left_to_the_kernel(self):
        h = host([array(leg(1), leg(2, LS.FAULTY))],
                 [ctrl(1), ctrl(2, 'connecting')])
        actions, _ = self.run_engine(h, {'vol1': rset(replica(1),
                                                      replica(2))})
        self.assertEqual(['ReportReplicaState'], kinds(actions))

    def _faulty_history(self, until, sets=None, h=None):
        """Run passes every 10 s from T0 to ``until`` with leg 2 lost."""
        h = h or host([array(leg(1), leg(2, LS.FAULTY))], [ctrl(1)])
        sets = sets or {'vol1': rset(replica(1), replica(2, RS.FAULTY))}
        state, seen, now = None, [], T0
        while now <= until:
            actions, state = self.run_engine(h, sets, state, now)
            seen.append((now, actions))
            now += 10.0
        return seen, state

    def test_reconnect_attempts_are_spaced(self):
        seen, _ = self._faulty_history(T0 + 30)
        connects = [now for now, acts in seen
                    for a in acts if isinstance(a, model.ConnectReplica)]
        self.assertEqual([T0, T0 + 10, T0 + 20, T0 + 30], connects)
        config = dataclasses.replace(CONFIG, connect_interval=25.0)
        state, connects, now = None, [], T0
        h = host([array(leg(1), leg(2, LS.FAULTY))], [ctrl(1)])
        while now <= T0 + 60:
            acts, state = self.run_engine(
                h, {'vol1': rset(replica(1), replica(2, RS.FAULTY))},
                state, now, config)
            connects += [now for a in acts
                         if isinstance(a, model.ConnectReplica)]
            now += 10.0
        self.assertEqual([T0, T0 + 30, T0 + 60], connects)

    def test_marked_replica_is_not_reported_again(self):
        seen, _ = self._faulty_history(T0 + 90)
        reports = [a for _, acts in seen for a in acts
                   if isinstance(a, model.ReportReplicaState)]
        self.assertEqual([], reports)

    def test_unmarked_replica_is_reported_again_after_interval(self):
        sets = {'vol1': rset(replica(1), replica(2))}
        seen, _ = self._faulty_history(T0 + 50, sets)
        reports = [now for now, acts in seen for a in acts
                   if isinstance(a, model.ReportReplicaState)]
        self.assertEqual([T0, T0 + 20, T0 + 40], reports)

    def test_replacement_requested_only_after_grace_period(self):
        seen, state = self._faulty_history(T0 + 200)
        requests = [now for now, acts in seen for a in acts
                    if isinstance(a, model.RequestReplacement)]
        self.assertEqual([T0 + 100, T0 + 160], requests)
        self.assertEqual(T0 + 160,
                         state.volume('vol1').replica('r2').requested_at)

    def test_no_reconnect_once_replacement_requested(self):
        seen, _ = self._faulty_history(T0 + 150)
        after = [a for now, acts in seen if now > T0 + 100 for a in acts]
        self.assertNotIn('ConnectReplica', kinds(after))

    def test_leg_back_within_grace_is_re_added_not_replaced(self):
        lost = host([array(leg(1), leg(2, LS.FAULTY))], [ctrl(1)])
        back = host([array(leg(1), leg(2, LS.FAULTY))], [ctrl(1), ctrl(2)])
        actions, state = self.run_engine(
            lost, {'vol1': rset(replica(1), replica(2))}, None, T0)
        self.assertEqual(['ConnectReplica', 'ReportReplicaState'],
                         kinds(actions))
        sets = {'vol1': rset(replica(1), replica(2, RS.FAULTY), gen=2)}
        actions, state = self.run_engine(back, sets, state, T0 + 99)
        self.assertEqual(['RemoveLeg', 'ReAddLeg'], kinds(actions))
        resyncing = host([array(leg(1), leg(2, LS.REBUILDING))],
                         [ctrl(1), ctrl(2)])
        actions, state = self.run_engine(resyncing, sets, state, T0 + 150)
        self.assertEqual([], actions)
        whole = host([array(leg(1), leg(2))], [ctrl(1), ctrl(2)])
        actions, state = self.run_engine(whole, sets, state, T0 + 160)
        self.assertEqual(
            [model.ReportReplicaState('vol1', 'r2', RS.AVAILABLE)], actions)
        self.assertIsNone(state.volume('vol1').replica('r2').faulty_since)

    def test_leg_back_after_replacement_request_is_not_re_added(self):
        _, state = self._faulty_history(T0 + 100)
        back = host([array(leg(1), leg(2, LS.FAULTY))], [ctrl(1), ctrl(2)])
        actions, _ = self.run_engine(
            back, {'vol1': rset(replica(1), replica(2, RS.FAULTY))}, state,
            T0 + 110)
        self.assertNotIn('ReAddLeg', kinds(actions))

    def test_flapping_leg_is_left_to_the_grace_period(self):
        h = host([array(leg(1), leg(2, LS.FAULTY))], [ctrl(1), ctrl(2)])
        sets = {'vol1': rset(replica(1), replica(2, RS.FAULTY))}
        state, readds = None, 0
        for now in (T0, T0 + 10, T0 + 20, T0 + 30, T0 + 100):
            actions, state = self.run_engine(h, sets, state, now)
            readds += kinds(actions).count('ReAddLeg')
        self.assertEqual(CONFIG.max_rejoins, readds)
        self.assertIn('RequestReplacement', kinds(actions))

    def test_in_sync_report_is_cleared_once_provisioner_answers(self):
        whole = host([array(leg(1), leg(2))], [ctrl(1), ctrl(2)])
        rec = state_mod.ReplicaRecord('r2', NQN % 2, T0, was_member=True,
                                      reported_at=T0,
                                      reported_state='faulty',
                                      reported_gen=1)
        state = state_mod.AgentState((state_mod.VolumeRecord(
            'vol1', 1, (rec,)),))
        actions, state = self.run_engine(
            whole, {'vol1': rset(replica(1), replica(2, RS.FAULTY))},
            state, T0 + 5)
        self.assertEqual(['ReportReplicaState'], kinds(actions))
        # Same generation: the answer may predate the report; keep it.
        actions, state = self.run_engine(
            whole, {'vol1': rset(replica(1), replica(2))}, state, T0 + 6)
        self.assertEqual('available',
                         state.volume('vol1').replica('r2').reported_state)
        actions, state = self.run_engine(
            whole, {'vol1': rset(replica(1), replica(2), gen=2)}, state,
            T0 + 7)
        self.assertEqual([], actions)
        self.assertIsNone(state.volume('vol1').replica('r2').reported_state)


class TestReplacement(EngineTestCase):

    def test_new_replica_is_connected_added_and_old_leg_retired(self):
        h = host([array(leg(1), leg(2, LS.FAULTY))], [ctrl(1)])
        _, state = self.run_engine(
            h, {'vol1': rset(replica(1), replica(2, RS.FAULTY), gen=2)})
        # The provisioner replaced r2 by r3: connect r3, retire leg 2.
        sets = {'vol1': rset(replica(1), replica(3), gen=3)}
        actions, state = self.run_engine(h, sets, state)
        self.assertEqual(
            [model.RemoveLeg('vol1', 'md127', 'nvme2n1'),
             model.ConnectReplica('vol1', replica(3))], actions)
        # r3 connected, leg 2 removed (its controller went with ctrl-loss).
        h = host([array(leg(1))], [ctrl(1), ctrl(3)])
        actions, state = self.run_engine(h, sets, state, T0 + 1)
        self.assertEqual([model.AddLeg('vol1', 'md127', 'nvme3n1')], actions)
        self.assertEqual((), state.volume('vol1').retiring)

    def test_retired_controller_is_disconnected_after_removal(self):
        sets = {'vol1': rset(replica(1), replica(3), gen=3)}
        h = host([array(leg(1), leg(2, LS.FAULTY), leg(3, LS.REBUILDING))],
                 [ctrl(1), ctrl(2), ctrl(3)])
        actions, state = self.run_engine(h, sets)
        self.assertEqual([model.RemoveLeg('vol1', 'md127', 'nvme2n1')],
                         actions)
        self.assertEqual((NQN % 2,), state.volume('vol1').retiring)
        h = host([array(leg(1), leg(3, LS.REBUILDING))],
                 [ctrl(1), ctrl(2), ctrl(3)])
        actions, state = self.run_engine(h, sets, state, T0 + 1)
        self.assertEqual([model.DisconnectController('vol1', NQN % 2)],
                         actions)
        h = host([array(leg(1), leg(3, LS.REBUILDING))], [ctrl(1), ctrl(3)])
        actions, state = self.run_engine(h, sets, state, T0 + 2)
        self.assertEqual([], actions)
        self.assertEqual((), state.volume('vol1').retiring)

    def test_in_sync_retired_leg_waits_for_newcomer(self):
        sets = {'vol1': rset(replica(1), replica(3), gen=3)}
        h = host([array(leg(1), leg(2), leg(3, LS.REBUILDING))],
                 [ctrl(1), ctrl(2), ctrl(3)])
        actions, _ = self.run_engine(h, sets)
        self.assertEqual([], actions)
        h = host([array(leg(1), leg(2), leg(3))],
                 [ctrl(1), ctrl(2), ctrl(3)])
        actions, _ = self.run_engine(h, sets)
        self.assertEqual([model.FailLeg('vol1', 'md127', 'nvme2n1'),
                          model.RemoveLeg('vol1', 'md127', 'nvme2n1')],
                         actions)

    def test_in_sync_retired_leg_makes_room_for_a_blocked_spare(self):
        sets = {'vol1': rset(replica(1), replica(3), gen=3)}
        h = host([array(leg(1), leg(2), leg(3, LS.SPARE))],
                 [ctrl(1), ctrl(2), ctrl(3)])
        actions, _ = self.run_engine(h, sets)
        self.assertEqual(['FailLeg', 'RemoveLeg'], kinds(actions))

    def test_last_in_sync_leg_is_never_failed(self):
        # The provisioner lists only new replicas: the one leg in sync is
        # outside the set, but it holds the only good copy.
        sets = {'vol1': rset(replica(3), replica(4), gen=5)}
        h = host([array(leg(1), leg(2, LS.FAULTY))],
                 [ctrl(1), ctrl(3), ctrl(4)])
        actions, _ = self.run_engine(h, sets)
        self.assertEqual([model.RemoveLeg('vol1', 'md127', 'nvme2n1'),
                          model.AddLeg('vol1', 'md127', 'nvme3n1'),
                          model.AddLeg('vol1', 'md127', 'nvme4n1')], actions)
        self.assertNotIn('FailLeg', kinds(actions))

    def test_in_sync_legs_outside_the_set_make_room_one_at_a_time(self):
        # The provisioner moved both replicas; the new ones wait as spares.
        sets = {'vol1': rset(replica(3), replica(4), gen=5)}
        h = host([array(leg(1), leg(2), leg(3, LS.SPARE), leg(4, LS.SPARE))],
                 [ctrl(n) for n in (1, 2, 3, 4)])
        actions, state = self.run_engine(h, sets)
        self.assertEqual([model.FailLeg('vol1', 'md127', 'nvme1n1'),
                          model.RemoveLeg('vol1', 'md127', 'nvme1n1')],
                         actions)
        h = host([array(leg(2), leg(3), leg(4, LS.SPARE))],
                 [ctrl(n) for n in (1, 2, 3, 4)])
        actions, _ = self.run_engine(h, sets, state)
        self.assertEqual([model.FailLeg('vol1', 'md127', 'nvme2n1'),
                          model.RemoveLeg('vol1', 'md127', 'nvme2n1'),
                          model.DisconnectController('vol1', NQN % 1)],
                         actions)

    def test_faulty_leg_not_removed_when_no_leg_is_in_sync(self):
        sets = {'vol1': rset(replica(1), replica(3), gen=3)}
        h = host([array(leg(1, LS.FAULTY), leg(2, LS.FAULTY))], [])
        actions, _ = self.run_engine(h, sets)
        self.assertNotIn('RemoveLeg', kinds(actions))
        self.assertNotIn('FailLeg', kinds(actions))

    def test_faulty_leg_of_vanished_device_goes_before_re_add(self):
        # ctrl-loss deleted the controller: the faulty member's subsystem
        # is unknown now; the reconnected namespace has a new name.
        gone = model.Leg('nvme2n1', None, LS.FAULTY, None)
        h = host([array(leg(1), gone)],
                 [ctrl(1), ctrl(2, namespaces=('nvme5n1',))])
        _, state = self.run_engine(
            host([array(leg(1), leg(2))], [ctrl(1), ctrl(2)]),
            {'vol1': rset(replica(1), replica(2))})
        actions, _ = self.run_engine(h, {'vol1': rset(replica(1),
                                                      replica(2))}, state)
        self.assertEqual([model.RemoveLeg('vol1', 'md127', 'detached'),
                          model.ReAddLeg('vol1', 'md127', 'nvme5n1')],
                         actions)

    def test_nothing_is_added_to_an_array_without_a_good_copy(self):
        h = host([array(leg(1, LS.FAULTY), leg(2, LS.FAULTY))],
                 [ctrl(1), ctrl(2)])
        actions, _ = self.run_engine(h, {'vol1': rset(replica(1),
                                                      replica(2))})
        self.assertEqual(['ReportReplicaState', 'ReportReplicaState'],
                         kinds(actions))

    def test_stale_duplicate_leg_is_removed(self):
        sets = {'vol1': rset(replica(1), replica(2))}
        h = host([array(leg(1), leg(2, LS.FAULTY, device='nvme9n1'),
                        leg(2, LS.REBUILDING))], [ctrl(1), ctrl(2)])
        actions, _ = self.run_engine(h, sets)
        self.assertEqual([model.RemoveLeg('vol1', 'md127', 'nvme9n1')],
                         actions)


class TestUntouched(EngineTestCase):

    def _broken(self, md_name='vol1', level='raid1'):
        return host([array(leg(1), leg(2, LS.FAULTY), md_name=md_name,
                           level=level)], [ctrl(1), ctrl(2)])

    def test_array_not_in_mapping(self):
        actions, state = self.run_engine(self._broken('other'),
                                         {'vol1': rset(replica(1))})
        self.assertEqual([], actions)
        self.assertEqual(state_mod.AgentState(), state)

    def test_unknown_volume(self):
        before = state_mod.AgentState((state_mod.VolumeRecord('vol1', 4),))
        actions, state = self.run_engine(self._broken(), {'vol1': None},
                                         before)
        self.assertEqual([], actions)
        self.assertEqual(before, state)

    def test_not_raid1(self):
        actions, _ = self.run_engine(self._broken(level='raid0'),
                                     {'vol1': rset(replica(1), replica(2))})
        self.assertEqual([], actions)

    def test_two_arrays_with_the_same_name(self):
        h = host([array(leg(1), leg(2, LS.FAULTY)),
                  array(leg(3), name='md126')], [ctrl(1), ctrl(2), ctrl(3)])
        actions, _ = self.run_engine(h, {'vol1': rset(replica(1),
                                                      replica(2))})
        self.assertEqual([], actions)

    def test_stale_generation_is_ignored(self):
        before = state_mod.AgentState((state_mod.VolumeRecord('vol1', 7),))
        actions, state = self.run_engine(
            self._broken(), {'vol1': rset(replica(1), replica(2), gen=6)},
            before)
        self.assertEqual([], actions)
        self.assertEqual(before, state)

    def test_malformed_sets_are_ignored(self):
        dup = model.Replica('r9', NQN % 1, PORTALS)
        no_portal = model.Replica('r2', NQN % 2, ())
        for bad in (rset(replica(1), dup), rset(replica(1), no_portal),
                    rset(replica(1), replica(2), volume='other'), rset(),
                    {'replicas': []}):
            actions, _ = self.run_engine(self._broken(), {'vol1': bad})
            self.assertEqual([], actions, bad)

    def test_homehost_prefix_is_understood(self):
        actions, _ = self.run_engine(self._broken('compute-1:vol1'),
                                     {'vol1': rset(replica(1), replica(2))})
        self.assertEqual(['RemoveLeg', 'ReAddLeg'], kinds(actions))

    def test_records_of_vanished_arrays_are_dropped(self):
        before = state_mod.AgentState((state_mod.VolumeRecord('gone', 2),
                                       state_mod.VolumeRecord('vol1', 1)))
        h = host([array(leg(1), leg(2))], [ctrl(1), ctrl(2)])
        _, state = self.run_engine(h, {'vol1': None}, before)
        self.assertEqual(['vol1'], [v.volume_id for v in state.volumes])


class TestStateAndClock(EngineTestCase):

    def test_pending_actions_are_recorded(self):
        h = host([array(leg(1), leg(2, LS.FAULTY))], [ctrl(1), ctrl(2)])
        actions, state = self.run_engine(h, {'vol1': rset(replica(1),
                                                          replica(2))})
        self.assertEqual(2, len(actions))
        self.assertEqual(actions, state.pending_actions())
        reloaded = state_mod.loads(state_mod.dumps(state))
        self.assertEqual(actions, reloaded.pending_actions())

    def test_clock_going_backwards_does_not_replace(self):
        h = host([array(leg(1), leg(2, LS.FAULTY))], [ctrl(1)])
        sets = {'vol1': rset(replica(1), replica(2, RS.FAULTY))}
        _, state = self.run_engine(h, sets, None, T0)
        actions, _ = self.run_engine(h, sets, state, T0 - 5000)
        self.assertNotIn('RequestReplacement', kinds(actions))


def _drive(world, saved, crash_at=None):
    """One agent pass over ``world``; crash after ``crash_at`` actions."""
    host_state = world.host_state()
    world.observe(host_state)
    actions, new = engine.reconcile(host_state, world.replica_sets(),
                                    state_mod.loads(saved), world.now,
                                    CONFIG)
    saved = state_mod.dumps(new)
    failed = set()
    for n, action in enumerate(actions):
        if crash_at is not None and n >= crash_at:
            return saved, True
        if action.volume_id in failed:
            continue
        try:
            world.apply(action)
        except simworld.ActionFailed:
            failed.add(action.volume_id)
    return saved, False


class TestCrashConvergence(testtools.TestCase):
    """A crash after any step of a heal still converges on restart."""

    def _scenario(self, crash_pass, crash_at):
        world = simworld.SimWorld(grace=CONFIG.grace_period)
        saved = state_mod.dumps(state_mod.AgentState())
        lost = world.volumes['vol-a'].replicas[0].nqn
        world.target_down(lost)
        world.controller_lost(lost)
        crashed = False
        for n in range(40):
            saved, died = _drive(world, saved,
                                 crash_at if n == crash_pass else None)
            crashed = crashed or died
            world.provisioner_replace()
            world.resync_done()
            if world.converged():
                break
            world.now += CONFIG.connect_interval
        return world, crashed

    def test_crash_after_every_step_converges(self):
        crashes = 0
        for crash_pass in range(16):
            for crash_at in range(3):
                world, crashed = self._scenario(crash_pass, crash_at)
                crashes += crashed
                self.assertTrue(world.converged(),
                                (crash_pass, crash_at, world.log))
        self.assertGreater(crashes, 10)

    def test_replacement_happens_through_the_provisioner(self):
        world, _ = self._scenario(None, None)
        self.assertIn('RequestReplacement', kinds(world.log))
        self.assertIn('AddLeg', kinds(world.log))
        self.assertEqual(3, world.volumes['vol-a'].generation)
