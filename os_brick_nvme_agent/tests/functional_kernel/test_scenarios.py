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

"""The healing agent on a real kernel: fault scenarios under qemu.

One guest boot runs every scenario of :mod:`.scenarios` (about four
minutes under TCG); each test below checks what one scenario observed.
``OS_BRICK_NVME_AGENT_KERNEL_SCENARIOS`` (comma separated) limits the run
to some scenarios, e.g. ``fail`` for a short CI run; tests of the others
are skipped. ``OS_BRICK_NVME_AGENT_KERNEL_TESTS=0`` skips them all; they
also skip when qemu or the built kernel is missing
(``tools/kernel/build.sh`` builds it), and fail instead when ``CI`` is set.
"""

import json
import os
import shlex
import sys

import testtools

from os_brick_nvme_agent import tests
from os_brick_nvme_agent.tests.functional_kernel import guest
from os_brick_nvme_agent.tests.functional_kernel import scenarios

SCENARIOS_ENV = 'OS_BRICK_NVME_AGENT_KERNEL_SCENARIOS'
ENABLE_ENV = 'OS_BRICK_NVME_AGENT_KERNEL_TESTS'
JOB_TIMEOUT = 900


def job_script(python, workdir, names, module='scenarios', extra=()):
    """The guest job: run a guest-side module in the host's root (chroot).

    :param names: scenario names (positional arguments of the module).
    :param extra: arguments before ``--workdir`` (e.g. a sub-command).
    """
    argv = ([python, '-m', 'os_brick_nvme_agent.tests.functional_kernel.'
             + module] + list(extra) + ['--workdir', workdir] + list(names))
    env = ['PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root',
           'PYTHONDONTWRITEBYTECODE=1', 'TMPDIR=/run', 'LANG=C.UTF-8']
    return ('cd /\nexec chroot /host /usr/bin/env -i %s sh -c %s\n' % (
        ' '.join(env), shlex.quote('cd %s && exec %s' % (
            shlex.quote(str(guest.REPO)),
            ' '.join(shlex.quote(a) for a in argv)))))


def selected():
    names = os.environ.get(SCENARIOS_ENV)
    if not names:
        return list(scenarios.DEFAULT)
    return [n for n in names.split(',') if n in scenarios.SCENARIOS]


class _Run(object):
    """The single guest run shared by the tests of this module."""

    result = None
    results = None
    workdir = None
    fixture = None
    error = None

    @classmethod
    def get(cls):
        if cls.results is None and cls.error is None:
            cls._boot()
        if cls.error is not None:
            raise cls.error
        return cls.results

    @classmethod
    def _boot(cls):
        try:
            cls.fixture = guest.Guest(
                keep=bool(os.environ.get('OS_BRICK_NVME_AGENT_KEEP')))
            cls.fixture.setUp()
        except guest.GuestUnavailable as exc:
            cls.error = tests.missing(str(exc))
            return
        try:
            guest.compile_bytecode()
            workdir = cls.fixture.workdir
            cls.result = cls.fixture.run(
                job_script(guest.guest_python(), workdir, selected()),
                timeout=JOB_TIMEOUT)
            with open(os.path.join(workdir, 'console.log.keep'), 'w') as f:
                f.write(cls.result.console)
            try:
                with open(os.path.join(workdir, 'results.json')) as f:
                    cls.results = json.load(f)
            except (OSError, ValueError) as exc:
                cls.error = AssertionError(
                    'no results from the guest (%s); console:\n%s'
                    % (exc, cls.result.console[-6000:]))
            cls.agent_log = _tail(os.path.join(workdir, 'agent.log'))
        finally:
            cls.fixture.cleanUp()


def _tail(path, size=20000):
    try:
        with open(path, errors='replace') as stream:
            return stream.read()[-size:]
    except OSError:
        return ''


class ScenarioTest(testtools.TestCase):

    name = None

    def setUp(self):
        super().setUp()
        if os.environ.get(ENABLE_ENV) == '0':
            self.skipTest('%s=0: not booting the test kernel' % ENABLE_ENV)
        if self.name not in selected():
            self.skipTest('scenario %s not selected' % self.name)
        results = _Run.get()
        self.out = results.get(self.name)
        self.assertIsNotNone(self.out, 'scenario %s did not run' % self.name)
        if 'error' in self.out:
            sys.stderr.write(_Run.result.console[-4000:])
            sys.stderr.write(getattr(_Run, 'agent_log', ''))
        self.assertNotIn('error', self.out, self.out.get('error'))

    def assertHealed(self):
        out = self.out
        self.assertNotEqual(out['new_replica'], '')
        self.assertEqual(out['replica_nqns'], out['members'])
        self.assertEqual(2, len(out['members']))
        self.assertEqual(out['digest_before'], out['digest_after'])
        self.assertTrue(out['old_controller_gone'])


class TestLegFailed(ScenarioTest):
    """mdadm --fail, target gone: reported, replaced after the grace."""

    name = 'fail'

    def test_reported_then_replaced_after_grace(self):
        self.assertTrue(self.out['agent_running'])
        self.assertLess(self.out['detect_s'], self.out['replaced_after_s'])
        # replaced no earlier than the grace period (3 s in the guest)
        self.assertGreaterEqual(self.out['replaced_after_s'], 3.0)
        self.assertHealed()


class TestPortLost(ScenarioTest):
    """Target port removed: the leg fails, is replaced, data intact."""

    name = 'port_lost'

    def test_replaced_and_data_intact(self):
        self.assertHealed()

    def test_new_leg_alone_holds_the_data(self):
        out, alone = self.out, self.out['alone']
        self.assertIn(out['new_leg_nqn'], out['members'])
        # the survivor was taken out and md read from the new leg only
        self.assertTrue(alone['agent_paused'])
        self.assertEqual(1, len(alone['removed']))
        self.assertNotIn(out['new_leg_nqn'], alone['removed'])
        self.assertEqual([out['new_leg_nqn']], alone['members_before_read'])
        self.assertEqual([out['new_leg_nqn']], alone['in_sync_before_read'])
        self.assertEqual([out['new_leg_nqn']], alone['in_sync_after_read'])
        self.assertTrue(alone['alone'])
        # written before the fault, never rewritten
        self.assertEqual(out['digest_before'], alone['before'])
        # written while the old leg was failing
        self.assertEqual(out['digest_during'], alone['during'])


class TestLegComesBack(ScenarioTest):
    """A leg whose device is still there is re-added, not replaced."""

    name = 'comes_back'

    def test_readded_not_replaced(self):
        out = self.out
        self.assertEqual(out['leg'], out['leg_after'])
        self.assertEqual(out['replica_ids_before'], out['replica_ids_after'])
        self.assertEqual(out['digest_before'], out['digest_after'])

    def test_not_reported(self):
        out = self.out
        self.assertEqual('available', out['replica_state_after'])
        # every report or replacement bumps the nvmet generation
        self.assertEqual(out['generation_before'], out['generation_after'])
        self.assertIsNone(out['agent_reported'])
        self.assertFalse(out['agent_requested'])


class TestPortFlap(ScenarioTest):
    """The port comes back inside the grace period: re-added, kept."""

    name = 'port_flap'

    def test_readded_not_replaced(self):
        out = self.out
        self.assertEqual(out['leg'], out['leg_after'])
        self.assertEqual(out['replica_ids_before'], out['replica_ids_after'])
        self.assertEqual(out['digest_before'], out['digest_after'])

    def test_readded_leg_alone_holds_the_data(self):
        out, alone = self.out, self.out['alone']
        self.assertTrue(alone['alone'])
        self.assertEqual(1, len(alone['removed']))
        # before the fault, and during it (copied by the bitmap resync)
        self.assertEqual(out['digest_before'], alone['before'])
        self.assertEqual(out['digest_during'], alone['during'])


class TestAgentKilledMidHeal(ScenarioTest):
    """SIGKILL after the report; the next connect_volume restarts it."""

    name = 'killed'

    def test_work_was_left(self):
        out = self.out
        self.assertIsNotNone(out['killed_pid'])
        # the dead agent's durable state: reported, not yet replaced
        self.assertEqual({'faulty_since_set': True,
                          'reported_state': 'faulty',
                          'replacement_requested': False},
                         out['state_at_kill'])
        self.assertEqual('1', out['degraded_at_kill'])
        # nothing did the work while the agent was dead
        self.assertFalse(out['running_after_kill'])
        self.assertEqual(out['replica_ids_at_kill'],
                         out['replica_ids_while_dead'])
        self.assertEqual('1', out['degraded_while_dead'])

    def test_restarted_agent_did_it(self):
        out = self.out
        self.assertIsNotNone(out['restarted_pid'])
        self.assertNotEqual(out['killed_pid'], out['restarted_pid'])
        self.assertNotIn(out['new_replica'], out['replica_ids_at_kill'])
        self.assertHealed()


class TestDegradedAttach(ScenarioTest):
    """os-brick assembles with a leg missing; the agent adds it."""

    name = 'degraded_attach'

    def test_missing_leg_connected_and_added(self):
        out = self.out
        self.assertEqual('1', out['degraded_at_attach'])
        self.assertEqual(1, len(out['members_at_attach']))
        self.assertEqual(out['replica_nqns'], out['members'])
        self.assertEqual(out['replica_ids_before'], out['replica_ids_after'])
        alone = out['alone']
        self.assertTrue(alone['alone'])
        self.assertEqual(out['digest_before'], alone['before'])


class TestStarterKilled(ScenarioTest):
    """The starter's cgroup is stopped as systemd does; the agent lives."""

    name = 'starter_killed'

    def test_agent_outlives_its_starter(self):
        out = self.out
        self.assertTrue(out['starter_connected'])
        self.assertIsNotNone(out['agent_pid'])
        self.assertEqual('/' + 'rs-starter', out['starter_cgroup'])
        self.assertTrue(out['agent_running_after'],
                        'agent (cgroup %s) died with its starter'
                        % out['agent_cgroup_before'])
        self.assertEqual(out['agent_pid'], out['agent_pid_after'])

    def test_heals_a_fault_injected_afterwards(self):
        self.assertTrue(self.out['healed'])
