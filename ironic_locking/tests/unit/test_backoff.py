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

"""Pure tests of the retry schedule: numbers in, numbers out."""

import types

from oslotest import base

from ironic_locking import backoff
from ironic_locking import opts


def conductor(**overrides):
    values = {'node_locked_retry_attempts': 3,
              'node_locked_retry_interval': 1,
              'node_locked_retry_strategy': opts.STRATEGY_JITTERED,
              'node_locked_retry_deadline': 0.0}
    values.update(overrides)
    return types.SimpleNamespace(**values)


def schedule(policy, rand=lambda: 0.5, limit=100):
    """(waits, attempts) if every attempt failed at once, as retrying runs.

    Each attempt takes no time; the waits are the poll waits.
    """
    waits, elapsed, counted = [], 0.0, 0
    while counted < limit:
        counted += 1
        if backoff.gives_up(policy, counted, elapsed):
            return waits, counted
        wait = backoff.next_wait(policy, counted, elapsed, rand)
        waits.append(wait)
        elapsed += wait
    raise AssertionError('policy never stopped: %s' % waits)


class MakePolicyTest(base.BaseTestCase):

    def test_fixed_is_ironic_schedule(self):
        policy = backoff.make_policy(
            conductor(node_locked_retry_strategy=opts.STRATEGY_FIXED))
        self.assertEqual(([1.0, 1.0], 3), schedule(policy))

    def test_jittered_keeps_attempts_and_patience(self):
        # The figure ironic's own test checks at ironic's default interval:
        # 3 attempts, and the last one 2 s after the first.
        for rand in (0.0, 0.3, 0.999):
            waits, attempts = schedule(backoff.make_policy(conductor()),
                                       rand=lambda: rand)
            self.assertEqual(3, attempts)
            self.assertAlmostEqual(2.0, sum(waits))
            self.assertGreaterEqual(waits[0], 0.5)
            self.assertLessEqual(waits[0], 1.0)

    def test_jitter_spreads_the_middle_attempt(self):
        firsts = {schedule(backoff.make_policy(conductor()),
                           rand=lambda r=r: r)[0][0] for r in (0.0, 0.5)}
        self.assertEqual({0.5, 0.75}, firsts)

    def test_many_attempts(self):
        waits, attempts = schedule(backoff.make_policy(conductor(
            node_locked_retry_attempts=10, node_locked_retry_interval=2)))
        self.assertEqual(10, attempts)
        self.assertAlmostEqual(18.0, sum(waits))

    def test_deadline_shortens_patience(self):
        policy = backoff.make_policy(conductor(
            node_locked_retry_attempts=10, node_locked_retry_deadline=2.5))
        self.assertEqual(2.5, policy.patience)
        waits, attempts = schedule(policy, rand=lambda: 0.999)
        self.assertAlmostEqual(2.5, sum(waits))
        self.assertEqual(4, attempts)

    def test_deadline_longer_than_patience_changes_nothing(self):
        policy = backoff.make_policy(conductor(
            node_locked_retry_deadline=100.0))
        self.assertEqual(2.0, policy.patience)

    def test_one_attempt_disables_retrying(self):
        for strategy in (opts.STRATEGY_FIXED, opts.STRATEGY_JITTERED):
            policy = backoff.make_policy(conductor(
                node_locked_retry_attempts=1,
                node_locked_retry_strategy=strategy))
            self.assertEqual(([], 1), schedule(policy))

    def test_zero_attempts_also_means_one(self):
        policy = backoff.make_policy(conductor(node_locked_retry_attempts=0))
        self.assertEqual(([], 1), schedule(policy))

    def test_retry_false_means_one_attempt(self):
        policy = backoff.make_policy(conductor(), retry=False)
        self.assertEqual(([], 1), schedule(policy))

    def test_patient_never_gives_up(self):
        policy = backoff.make_policy(conductor(node_locked_retry_attempts=1,
                                               node_locked_retry_deadline=1),
                                     retry=False, patient=True)
        self.assertIsNone(policy.patience)
        for counted in (1, 10, 1000):
            self.assertFalse(backoff.gives_up(policy, counted, 1e6))
            wait = backoff.next_wait(policy, counted, 1e6, lambda: 0.5)
            self.assertEqual(0.75, wait)

    def test_zero_interval_keeps_ironic_attempt_count(self):
        policy = backoff.make_policy(conductor(node_locked_retry_interval=0))
        self.assertFalse(policy.timed)
        self.assertEqual(([0.0, 0.0], 3), schedule(policy))


class GivesUpTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.policy = backoff.Policy(opts.STRATEGY_JITTERED, 3, 1.0, 2.0)

    def test_after_the_counted_attempts(self):
        self.assertFalse(backoff.gives_up(self.policy, 2, 0.1))
        self.assertTrue(backoff.gives_up(self.policy, 3, 0.1))

    def test_after_an_attempt_at_the_end_of_patience(self):
        # Wake-ups are not counted: time still bounds the request.
        self.assertFalse(backoff.gives_up(self.policy, 1, 1.9))
        self.assertTrue(backoff.gives_up(self.policy, 1, 2.0))

    def test_remaining(self):
        self.assertEqual(0.5, backoff.remaining(self.policy, 1.5))
        self.assertEqual(0.0, backoff.remaining(self.policy, 7.0))
        patient = backoff.Policy(opts.STRATEGY_JITTERED, None, 1.0, None)
        self.assertIsNone(backoff.remaining(patient, 7.0))


class NextWaitTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.policy = backoff.Policy(opts.STRATEGY_JITTERED, 5, 1.0, 4.0)

    def test_jitter_between_half_and_whole_interval(self):
        self.assertAlmostEqual(
            0.5, backoff.next_wait(self.policy, 1, 0.0, lambda: 0.0))
        self.assertAlmostEqual(
            0.75, backoff.next_wait(self.policy, 1, 0.0, lambda: 0.5))

    def test_fixed_is_the_interval(self):
        policy = backoff.Policy(opts.STRATEGY_FIXED, 5, 1.0, 4.0)
        self.assertEqual(1.0, backoff.next_wait(policy, 2, 1.0))

    def test_last_wait_lands_on_deadline(self):
        self.assertAlmostEqual(
            1.25, backoff.next_wait(self.policy, 4, 2.75, lambda: 0.0))

    def test_never_beyond_patience(self):
        self.assertAlmostEqual(
            0.25, backoff.next_wait(self.policy, 2, 3.75, lambda: 0.999))
