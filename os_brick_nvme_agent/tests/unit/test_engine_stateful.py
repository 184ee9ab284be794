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

"""Random fault, recovery, provisioner and crash sequences for the engine.

A hypothesis state machine drives :class:`simworld.SimWorld` (a host with
two managed arrays, one array os-brick did not create and one whose volume
the provisioner does not know) through random sequences of faults
(I/O errors, targets going down, controllers lost), recoveries, provisioner
behaviour (marking, replacing, outages, malformed and stale answers) and
agent crashes, with the state going through its serialised form and a
crash possible after any action of a pass. The world checks the safety
invariants on every action; after every step the state must serialise;
at the end all faults stop and the host must converge.
"""

import os

import hypothesis
from hypothesis import stateful
from hypothesis import strategies as st
import testtools

from os_brick_nvme_agent import engine
from os_brick_nvme_agent import state as state_mod
from os_brick_nvme_agent.tests.unit import simworld

GRACE = 100.0
CONFIG = engine.EngineConfig(grace_period=GRACE, report_interval=20.0,
                             request_interval=60.0, connect_interval=10.0)

hypothesis.settings.register_profile(
    'nvme-agent-default', max_examples=2000, stateful_step_count=20,
    deadline=None, print_blob=True, database=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow])
hypothesis.settings.register_profile(
    'nvme-agent-ci', max_examples=200, stateful_step_count=20,
    deadline=None, database=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow])


def _profile():
    """NVME_AGENT_HYPOTHESIS_PROFILE, else HYPOTHESIS_PROFILE=ci -> ours."""
    name = os.environ.get('NVME_AGENT_HYPOTHESIS_PROFILE')
    if name:
        return name
    generic = os.environ.get('HYPOTHESIS_PROFILE', '')
    return 'nvme-agent-ci' if generic == 'ci' else 'nvme-agent-default'


class EngineMachine(stateful.RuleBasedStateMachine):
    """The agent's loop, a simulated host, and everything going wrong."""

    def __init__(self):
        super().__init__()
        # vol-a has two legs, vol-b three (it survives two faults).
        self.world = simworld.SimWorld(volumes=('vol-a', 'vol-b'),
                                       legs={'vol-a': 2, 'vol-b': 3},
                                       grace=GRACE)
        self.saved = state_mod.dumps(state_mod.AgentState())
        self.previous_sets = self.world.replica_sets()
        self.foreign_before = self._foreign_snapshot()

    # The agent -------------------------------------------------------------

    def _pass(self, sets, crash_after=None):
        state = state_mod.loads(self.saved)
        host = self.world.host_state()
        self.world.observe(host)
        actions, new_state = engine.reconcile(
            host, sets, state, self.world.now, CONFIG)
        self.saved = state_mod.dumps(new_state)     # write-ahead
        failed = set()
        for n, action in enumerate(actions):
            if crash_after is not None and n >= crash_after:
                return      # the process died; the rest never happened
            if action.volume_id in failed:
                continue
            try:
                self.world.apply(action)
            except simworld.ActionFailed:
                # Like the service: log, skip the volume's other actions
                # this pass, decide again next pass.
                failed.add(action.volume_id)

    @stateful.rule(crash_after=st.one_of(st.none(),
                                         st.integers(min_value=0,
                                                     max_value=4)))
    def agent_pass(self, crash_after):
        self.previous_sets = self.world.replica_sets()
        self._pass(self.previous_sets, crash_after)

    @stateful.rule(passes=st.integers(min_value=2, max_value=8),
                   step=st.sampled_from([5.0, 30.0]))
    def agent_keeps_working(self, passes, step):
        """Several passes while time goes by and resyncs complete."""
        for _ in range(passes):
            self.world.now += step
            self.previous_sets = self.world.replica_sets()
            self._pass(self.previous_sets)
            self.world.resync_done()

    @stateful.rule()
    def crash_before_saving(self):
        """A pass decided but died before its state reached the disk."""
        state = state_mod.loads(self.saved)
        engine.reconcile(self.world.host_state(), self.world.replica_sets(),
                         state, self.world.now, CONFIG)

    @stateful.rule(volume=st.sampled_from(['vol-a', 'vol-b']))
    def provisioner_malformed(self, volume):
        sets = self.world.replica_sets()
        sets[volume] = None         # the service dropped a bad answer
        self._pass(sets)

    @stateful.rule()
    def provisioner_stale(self):
        sets = dict(self.world.replica_sets())
        sets.update({k: v for k, v in self.previous_sets.items()
                     if v is not None and k in self.world.volumes})
        self._pass(sets)

    @stateful.rule(seconds=st.sampled_from([1.0, 5.0, 15.0, 40.0, 120.0]))
    def time_passes(self, seconds):
        # An outage of the provisioner is this rule too: time goes by and
        # the service does not call the engine at all.
        self.world.now += seconds

    # Faults and recoveries ------------------------------------------------

    @stateful.rule(volume=st.sampled_from(['vol-a', 'vol-b']),
                   index=st.integers(min_value=0, max_value=3))
    def io_error(self, volume, index):
        self.world.io_error(self.world.array_of(volume).name, index)

    @stateful.rule(volume=st.sampled_from(['vol-a', 'vol-b']),
                   index=st.integers(min_value=0, max_value=3))
    def target_down(self, volume, index):
        self.world.target_down(self._nqn(volume, index))

    @stateful.rule(volume=st.sampled_from(['vol-a', 'vol-b']),
                   index=st.integers(min_value=0, max_value=3))
    def controller_lost(self, volume, index):
        self.world.controller_lost(self._nqn(volume, index))

    @stateful.rule(index=st.integers(min_value=0, max_value=50))
    def target_up(self, index):
        down = sorted(n for n, up in self.world.targets.items() if not up)
        if down:
            self.world.target_up(down[index % len(down)])

    @stateful.rule()
    def resync_done(self):
        self.world.resync_done()

    @stateful.rule()
    def provisioner_replaces(self):
        self.world.provisioner_replace()

    @stateful.rule(volume=st.sampled_from(['vol-a', 'vol-b']),
                   index=st.integers(min_value=0, max_value=3))
    def provisioner_migrates(self, volume, index):
        self.world.provisioner_migrates(volume, index)

    def _nqn(self, volume, index):
        replicas = self.world.volumes[volume].replicas
        return replicas[index % len(replicas)].nqn

    def _foreign_snapshot(self):
        host = self.world.host_state()
        return [a for a in host.arrays
                if a.name in self.world.foreign_names()]

    # Checks ---------------------------------------------------------------

    @stateful.invariant()
    def foreign_arrays_untouched(self):
        assert self._foreign_snapshot() == self.foreign_before

    @stateful.invariant()
    def state_round_trips(self):
        state = state_mod.loads(self.saved)
        assert state_mod.dumps(state) == self.saved
        assert {v.volume_id for v in state.volumes} <= {'vol-a', 'vol-b'}

    def teardown(self):
        """Faults stop, the provisioner behaves: the host must converge."""
        world = self.world
        for nqn in sorted(world.targets):
            if nqn not in world.foreign_nqns():
                world.target_up(nqn)
        for _ in range(40):
            self._pass(world.replica_sets())
            world.provisioner_replace()
            world.resync_done()
            if world.converged():
                break
            world.now += CONFIG.connect_interval
        assert world.converged(), (world.host_state(),
                                   world.replica_sets())


class TestEngineStateful(testtools.TestCase):
    """Runs :class:`EngineMachine` under the suite's hypothesis profile."""

    def test_random_fault_sequences(self):
        machine = EngineMachine.TestCase
        machine.settings = hypothesis.settings.get_profile(_profile())
        machine('runTest').runTest()


class TestStatefulProfile(testtools.TestCase):

    def test_default_profile_runs_enough_examples(self):
        profile = hypothesis.settings.get_profile('nvme-agent-default')
        self.assertGreaterEqual(profile.max_examples, 2000)
