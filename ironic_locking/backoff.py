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

"""Pure decisions of the NodeLocked retry: when to stop, how long to wait.

Nothing here sleeps, reads a clock or touches the database: the caller says
how many attempts were made and how long it has waited so far, and gets back
the next wait (or ``None`` to give up). That keeps every strategy testable
on plain numbers.
"""

import dataclasses
import random

from ironic_locking import opts

__all__ = ['Policy', 'make_policy', 'next_wait']


@dataclasses.dataclass(frozen=True)
class Policy:
    """How one lock request retries.

    :ivar strategy: ``fixed`` or ``jittered-exponential``.
    :ivar max_attempts: attempts allowed, ``None`` for no count limit.
    :ivar interval: the fixed wait of the fixed strategy.
    :ivar initial_wait: first wait of the exponential strategy.
    :ivar max_wait: longest wait of the exponential strategy.
    :ivar patience: seconds of waiting allowed, ``None`` for no time limit.
    """

    strategy: str
    max_attempts: int | None
    interval: float
    initial_wait: float
    max_wait: float
    patience: float | None


def make_policy(conductor_conf, retry=True, patient=False):
    """Build the policy of one lock request.

    ``retry=False`` and ``node_locked_retry_attempts <= 1`` mean a single
    attempt; ``patient=True`` means no limit at all (ironic's meaning: the
    caller has no fallback). The jittered strategy trades the attempt count
    for the same total patience, attempts x interval.

    :param conductor_conf: the ``[conductor]`` group of ironic's CONF.
    :param retry: ironic's ``retry`` argument of the lock request.
    :param patient: ironic's ``patient`` argument of the lock request.
    :returns: a :class:`Policy`.
    """
    attempts = conductor_conf.node_locked_retry_attempts
    interval = float(max(conductor_conf.node_locked_retry_interval, 0))
    strategy = conductor_conf.node_locked_retry_strategy
    max_wait = min(conductor_conf.node_locked_retry_max_wait, interval)
    initial = min(conductor_conf.node_locked_retry_initial_wait, max_wait)
    deadline = conductor_conf.node_locked_retry_deadline or None

    def policy(max_attempts, patience):
        return Policy(strategy, max_attempts, interval, initial, max_wait,
                      patience)

    if patient:
        return policy(None, None)
    if not retry or attempts <= 1:
        return policy(1, None)
    if strategy == opts.STRATEGY_FIXED or not interval:
        # With a zero interval there is no patience to spread: keep
        # ironic's count of immediate attempts.
        return policy(attempts, deadline)
    patience = attempts * interval
    if deadline is not None:
        patience = min(patience, deadline)
    return policy(None, patience)


def _raw_wait(policy, attempt, rand):
    """The strategy's wait after ``attempt`` failed attempts, unclipped."""
    if policy.strategy == opts.STRATEGY_FIXED:
        return policy.interval
    # Double from the initial wait, capped, then keep the upper half of it
    # plus a random part ("equal jitter"): waiters that collided once do
    # not collide again, yet no wait collapses to zero.
    ceiling = min(policy.max_wait,
                  policy.initial_wait * 2 ** min(attempt - 1, 32))
    return ceiling / 2 + rand() * ceiling / 2


def next_wait(policy, attempt, elapsed, rand=random.random):
    """Decide what follows a failed attempt.

    :param policy: the :class:`Policy` of the request.
    :param attempt: how many attempts have failed so far (1 after the first).
    :param elapsed: seconds since the first attempt started.
    :param rand: source of floats in [0, 1) for the jitter.
    :returns: seconds to wait before the next attempt, or ``None`` to stop.
    """
    if policy.max_attempts is not None and attempt >= policy.max_attempts:
        return None
    wait = _raw_wait(policy, attempt, rand)
    if policy.patience is not None:
        remaining = policy.patience - elapsed
        if remaining <= 0:
            return None
        # The last attempt lands on the deadline rather than after it.
        wait = min(wait, remaining)
    return max(wait, 0.0)
