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
              'node_locked_retry_initial_wait': 0.05,
              'node_locked_retry_max_wait': 0.5,
              'node_locked_retry_deadline': 0.0}
    values.update(overrides)
    return types.SimpleNamespace(**values)


def schedule(policy, rand=lambda: 0.5, attempts=100):
    """Waits the policy would take if every attempt failed at once."""
    waits, elapsed = [], 0.0
    for attempt in range(1, attempts + 1):
        wait = backoff.next_wait(policy, attempt, elapsed, rand)
        if wait is None:
            return waits
        waits.append(wait)
        elapsed += wait
    raise AssertionError('policy never stopped: %s' % waits)


class MakePolicyTest(base.BaseTestCase):

    def test_fixed_is_ironic_behaviour(self):
        policy = backoff.make_policy(
            conductor(node_locked_retry_strategy=opts.STRATEGY_FIXED))
        self.assertEqual([1.0, 1.0], schedule(policy))

    def test_fixed_honours_deadline(self):
        policy = backoff.make_policy(conductor(
            node_locked_retry_strategy=opts.STRATEGY_FIXED,
            node_locked_retry_attempts=10,
            node_locked_retry_deadline=2.5))
        self.assertEqual([1.0, 1.0, 0.5], schedule(policy))

    def test_jittered_spends_attempts_times_interval(self):
        policy = backoff.make_policy(conductor())
        self.assertIsNone(policy.max_attempts)
        self.assertEqual(3.0, policy.patience)
        waits = schedule(policy)
        self.assertAlmostEqual(3.0, sum(waits))
        self.assertLessEqual(max(waits), 0.5)
        # Early waits are short: the first look comes within 50 ms.
        self.assertLessEqual(waits[0], 0.05)

    def test_jittered_deadline_shortens_patience(self):
        policy = backoff.make_policy(conductor(
            node_locked_retry_deadline=1.2))
        self.assertAlmostEqual(1.2, sum(schedule(policy)))

    def test_deadline_longer_than_patience_changes_nothing(self):
        policy = backoff.make_policy(conductor(
            node_locked_retry_deadline=100.0))
        self.assertEqual(3.0, policy.patience)

    def test_one_attempt_disables_retrying(self):
        for strategy in (opts.STRATEGY_FIXED, opts.STRATEGY_JITTERED):
            policy = backoff.make_policy(conductor(
                node_locked_retry_attempts=1,
                node_locked_retry_strategy=strategy))
            self.assertEqual([], schedule(policy))

    def test_zero_attempts_also_means_one(self):
        policy = backoff.make_policy(conductor(node_locked_retry_attempts=0))
        self.assertEqual([], schedule(policy))

    def test_retry_false_means_one_attempt(self):
        policy = backoff.make_policy(conductor(), retry=False)
        self.assertEqual([], schedule(policy))

    def test_patient_never_gives_up(self):
        policy = backoff.make_policy(conductor(node_locked_retry_attempts=1,
                                               node_locked_retry_deadline=1),
                                     retry=False, patient=True)
        for attempt in (1, 10, 1000):
            wait = backoff.next_wait(policy, attempt, 1e6, lambda: 0.5)
            self.assertIsNotNone(wait)
            self.assertLessEqual(wait, 1.0)

    def test_zero_interval_keeps_ironic_attempt_count(self):
        policy = backoff.make_policy(conductor(node_locked_retry_interval=0))
        self.assertEqual([0.0, 0.0], schedule(policy))

    def test_initial_wait_capped_by_max_wait(self):
        policy = backoff.make_policy(conductor(
            node_locked_retry_initial_wait=5.0))
        self.assertEqual(0.5, policy.initial_wait)

    def test_max_wait_capped_by_interval(self):
        policy = backoff.make_policy(conductor(
            node_locked_retry_max_wait=30.0))
        self.assertEqual(1.0, policy.max_wait)
        waits = schedule(policy, rand=lambda: 1.0)
        self.assertEqual(1.0, max(waits))


class NextWaitTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.policy = backoff.Policy(opts.STRATEGY_JITTERED, None, 1.0,
                                     0.1, 1.0, 3.0)

    def test_doubles_up_to_max_wait(self):
        ceilings = [backoff.next_wait(self.policy, n, 0.0, lambda: 1.0)
                    for n in range(1, 7)]
        self.assertEqual([0.1, 0.2, 0.4, 0.8, 1.0, 1.0], ceilings)

    def test_equal_jitter_keeps_upper_half(self):
        self.assertAlmostEqual(
            0.2, backoff.next_wait(self.policy, 3, 0.0, lambda: 0.0))
        self.assertAlmostEqual(
            0.3, backoff.next_wait(self.policy, 3, 0.0, lambda: 0.5))

    def test_last_wait_lands_on_deadline(self):
        self.assertAlmostEqual(
            0.25, backoff.next_wait(self.policy, 8, 2.75, lambda: 1.0))

    def test_stops_when_patience_spent(self):
        self.assertIsNone(backoff.next_wait(self.policy, 8, 3.0))

    def test_stops_after_max_attempts(self):
        policy = backoff.Policy(opts.STRATEGY_FIXED, 3, 1.0, 0.1, 1.0, None)
        self.assertEqual(1.0, backoff.next_wait(policy, 2, 50.0))
        self.assertIsNone(backoff.next_wait(policy, 3, 0.0))

    def test_huge_attempt_numbers_do_not_overflow(self):
        self.assertEqual(
            1.0, backoff.next_wait(self.policy, 10 ** 6, 0.0, lambda: 1.0))

    def test_attempts_within_default_patience(self):
        policy = backoff.make_policy(conductor())
        # Shortest possible waits (jitter 0) give the most attempts, the
        # longest ones the fewest; the admin guide quotes both.
        self.assertEqual(16, len(schedule(policy, rand=lambda: 0.0)) + 1)
        self.assertEqual(10, len(schedule(policy, rand=lambda: 0.999)) + 1)
