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
how many counted attempts were made and how long it has waited so far, and
gets back the next wait (or ``None`` to give up). That keeps the schedule
testable on plain numbers.

ironic's meaning of its two options is kept: ``node_locked_retry_attempts``
attempts, ``node_locked_retry_interval`` seconds apart, so a request gives up
after (attempts - 1) x interval seconds. The ``jittered`` strategy spreads
the attempts in between (each wait between half and all of the interval)
and makes the last one at that same moment; ``fixed`` waits exactly the
interval, as ironic does.
"""

import dataclasses
import random

from ironic_locking import opts

__all__ = ['Policy', 'make_policy', 'next_wait', 'gives_up']

# An attempt that starts this close to the end of the patience is the last.
_EPSILON = 0.001


@dataclasses.dataclass(frozen=True)
class Policy:
    """How one lock request retries.

    :ivar strategy: ``fixed`` or ``jittered``.
    :ivar max_attempts: counted attempts allowed, ``None`` for no limit.
    :ivar interval: ironic's ``node_locked_retry_interval``.
    :ivar patience: seconds a request may wait, ``None`` for no limit;
        0 means waits of 0 (ironic with a zero interval).
    """

    strategy: str
    max_attempts: int | None
    interval: float
    patience: float | None

    @property
    def timed(self):
        """Whether the patience is a time limit (it is not when it is 0)."""
        return bool(self.patience)


def make_policy(conductor_conf, retry=True, patient=False):
    """Build the policy of one lock request.

    ``retry=False`` and ``node_locked_retry_attempts <= 1`` mean a single
    attempt; ``patient=True`` means no limit at all (ironic's meaning: the
    caller has no fallback).

    :param conductor_conf: the ``[conductor]`` group of ironic's CONF.
    :param retry: ironic's ``retry`` argument of the lock request.
    :param patient: ironic's ``patient`` argument of the lock request.
    :returns: a :class:`Policy`.
    """
    attempts = conductor_conf.node_locked_retry_attempts
    interval = float(max(conductor_conf.node_locked_retry_interval, 0))
    strategy = conductor_conf.node_locked_retry_strategy
    if patient:
        return Policy(strategy, None, interval, None)
    if not retry or attempts <= 1:
        return Policy(strategy, 1, interval, 0.0)
    patience = (attempts - 1) * interval
    deadline = conductor_conf.node_locked_retry_deadline
    if deadline and patience:
        patience = min(patience, deadline)
    return Policy(strategy, attempts, interval, patience)


def gives_up(policy, counted, started_at):
    """Whether a failed attempt was the last one.

    :param policy: the :class:`Policy` of the request.
    :param counted: counted attempts made so far (wake-ups are not counted).
    :param started_at: seconds since the request began, when the failed
        attempt started.
    :returns: True to give up.
    """
    if policy.max_attempts is not None and counted >= policy.max_attempts:
        return True
    return policy.timed and started_at >= policy.patience - _EPSILON


def remaining(policy, elapsed):
    """Seconds of patience left, ``None`` for no limit (pure)."""
    if policy.patience is None:
        return None
    return max(policy.patience - elapsed, 0.0)


def next_wait(policy, counted, elapsed, rand=random.random):
    """The poll wait before the next counted attempt.

    :param policy: the :class:`Policy` of the request.
    :param counted: counted attempts made so far (1 after the first).
    :param elapsed: seconds since the request began.
    :param rand: source of floats in [0, 1) for the jitter.
    :returns: seconds to wait before the next attempt.
    """
    wait = policy.interval
    if policy.strategy != opts.STRATEGY_FIXED:
        wait *= 0.5 + 0.5 * rand()
    left = remaining(policy, elapsed)
    if left is None:
        return wait
    last = (policy.max_attempts is not None
            and counted >= policy.max_attempts - 1)
    # The last attempt lands at the end of the patience, as ironic's does.
    return left if last else min(wait, left)
