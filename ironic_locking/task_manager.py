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

"""ironic's TaskManager, with node reservations handed to the next waiter.

:class:`TaskManager` changes how ironic's class waits for a node that
another task holds, and nothing else (shared locks, drivers, state machine,
spawning stay ironic's code):

* a node held by a task of this conductor is handed over when that task
  releases it: waiters queue per node, first come first served
  (:mod:`ironic_locking.handoff`), and the next one reserves at once;
* a node held by another conductor is polled for with the ``retrying``
  library, with ironic's number of attempts and total patience
  (:mod:`ironic_locking.backoff`). A wake-up by a release is not an
  attempt.

ironic's meanings are kept: ``retry=False`` makes one attempt,
``patient=True`` waits until the node is free, ``upgrade_lock(retry=...)``
changes ``retry`` for the upgrade, and a shared lock never waits.
"""

import json
import random
import time

from ironic.common import exception as ironic_exc
from ironic.conductor import task_manager as ironic_task_manager
from ironic import objects
from oslo_config import cfg
from oslo_log import log as logging
import retrying

from ironic_locking import backoff
from ironic_locking import handoff
from ironic_locking import opts

__all__ = ['TaskManager', 'acquire']

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

# A patient request (no time limit) re-checks the database and says it is
# still waiting this often, at WARNING.
PATIENT_WARNING_INTERVAL = 60.0

_OPTS_REGISTERED = False


def _conductor_conf():
    """ironic's ``[conductor]`` group, with this plugin's options in it."""
    global _OPTS_REGISTERED
    if not _OPTS_REGISTERED:
        opts.register_opts(CONF)
        _OPTS_REGISTERED = True
    return CONF.conductor


def acquire(context, *args, **kwargs):
    """Lock a node with :class:`TaskManager`; ironic's ``acquire`` signature.

    :param context: request context.
    :returns: a :class:`TaskManager`, to be used as a context manager.
    :raises: NodeLocked, NodeNotFound, DriverNotFound as ironic does.
    """
    # As ironic does: make the context the thread's own (periodic tasks).
    context.ensure_thread_contain_context()
    return TaskManager(context, *args, **kwargs)


def wait_for_turn(event, timeout):
    """Block until ``event`` is set or ``timeout`` seconds pass.

    :returns: True if the event was set (the wait was a wake-up).
    """
    return event.wait(timeout)


class _Waiter(object):
    """One lock request: its place in line and its ``retrying`` callbacks.

    ``retrying`` asks ``stop`` after each failed attempt and ``wait`` before
    the next one. The decision is made once, in ``stop``; ``wait`` blocks
    on the ticket's event through the task manager's injectable
    ``wait_for_turn`` and tells ``retrying`` to sleep 0 ms itself.
    """

    def __init__(self, task, policy, ticket):
        self.task = task
        self.policy = policy
        self.ticket = ticket
        self.start = task.clock()
        self.counted = 0
        self.reserves = 0
        self.free = False
        self.started_at = 0.0
        self.last_error = None
        self.timeout = None
        self.warned_at = None

    def elapsed(self):
        return self.task.clock() - self.start

    def attempt(self):
        if not self.free:
            self.counted += 1
        self.free = False
        self.started_at = self.elapsed()
        self.reserves += 1
        return self.task._reserve(self.ticket)

    def is_locked(self, error):
        if not isinstance(error, ironic_exc.NodeLocked):
            return False
        self.last_error = error
        if self.ticket is not None:
            self.task.handoff.requeue(self.ticket, _error_kwarg(error, 'node')
                                      or self.ticket.key)
        return True

    def _local_turn(self):
        """Whether a release in this process is what to wait for."""
        place, held = self.task.handoff.position(self.ticket)
        holder = _error_kwarg(self.last_error, 'host')
        return place > 0 or (held and holder == CONF.host), place

    def stop(self, _attempt_number, _delay_ms):
        if backoff.gives_up(self.policy, self.counted, self.started_at):
            return True
        elapsed = self.elapsed()
        local, place = (self._local_turn() if self.ticket is not None
                        else (False, 0))
        if local:
            self.timeout = self._turn_timeout(elapsed)
        else:
            self.timeout = backoff.next_wait(self.policy, self.counted,
                                             elapsed, self.task.rand)
        self.task._log_retry(self, local, place)
        return False

    def wait(self, _attempt_number, _delay_ms):
        self._block(self.timeout)
        return 0

    def _turn_timeout(self, elapsed):
        """How long to wait for a release here: the patience left."""
        left = backoff.remaining(self.policy, elapsed)
        return PATIENT_WARNING_INTERVAL if left is None else left

    def _block(self, timeout):
        """Wait for the turn, or ``timeout`` s; the wait is then used up."""
        self.free = self.task.wait_for_turn(self.ticket.event, timeout)
        self.ticket.event.clear()
        self.task._warn_if_patient_too_long(self)

    def first_turn(self):
        """Wait for the turn before the first attempt, if others are first.

        A request that finds others of this process ahead of it (or the
        node held here) waits for its turn; the time counts against its
        patience, but no attempt is used.
        """
        if self.ticket is None:
            return
        if self.ticket.event.is_set():
            # The turn at once: nobody of this process is ahead.
            self.ticket.event.clear()
            return
        self._block(self._turn_timeout(self.elapsed()))


class TaskManager(ironic_task_manager.TaskManager):
    """ironic's TaskManager that hands a released node to the next waiter.

    The class attributes ``clock``, ``wait_for_turn``, ``rand`` and
    ``handoff`` are the only sources of time, randomness and shared state;
    tests replace them.
    """

    clock = staticmethod(time.monotonic)
    wait_for_turn = staticmethod(wait_for_turn)
    rand = staticmethod(random.random)
    handoff = handoff.REGISTRY

    _handoff_key = None

    def _lock(self):
        self._debug_timer.restart()
        policy = backoff.make_policy(_conductor_conf(), retry=self._retry,
                                     patient=self._patient)
        node_id = self.node.uuid if self.node is not None else self.node_id
        # A single attempt never queues: it must not wait for anyone.
        ticket = (self.handoff.arrive(node_id)
                  if policy.max_attempts != 1 else None)
        waiter = _Waiter(self, policy, ticket)
        retrier = retrying.Retrying(retry_on_exception=waiter.is_locked,
                                    stop_func=waiter.stop,
                                    wait_func=waiter.wait)
        try:
            waiter.first_turn()
            retrier.call(waiter.attempt)
        except ironic_exc.NodeLocked as error:
            raise self._gave_up(waiter, error) from error
        finally:
            if ticket is not None:
                # No-op once the node is ours; frees the turn otherwise.
                self.handoff.leave(ticket)

    def _reserve(self, ticket):
        node = objects.Node.reserve(self.context, CONF.host, self.node_id)
        self.handoff.acquired(ticket, node.uuid, (node.id,))
        self._handoff_key = node.uuid
        self.node = node
        LOG.debug("Node %(node)s reserved for %(purpose)s after "
                  "%(time).2f seconds",
                  {'node': node.uuid, 'purpose': self._purpose,
                   'time': self._debug_timer.elapsed()})
        self._debug_timer.restart()
        return node

    def _handed_off(self):
        """Tell this process's waiters that the reservation is gone."""
        key, self._handoff_key = self._handoff_key, None
        if key is not None:
            self.handoff.released(key)

    def release_resources(self):
        """ironic's release, then the next waiter of the node is woken."""
        try:
            super().release_resources()
        finally:
            # Also when ironic's release failed: the database is the
            # truth, and the woken waiter asks it.
            self._handed_off()

    def downgrade_lock(self):
        """ironic's downgrade, then the next waiter of the node is woken."""
        super().downgrade_lock()
        self._handed_off()

    def _log_retry(self, waiter, local, place):
        """One DEBUG line per retry: what is awaited, and how long."""
        error = waiter.last_error
        LOG.debug("Node %(node)s is locked by %(host)s; %(how)s for "
                  "%(purpose)s (%(attempts)d attempt(s), %(elapsed).3f s "
                  "waited so far)",
                  {'node': self._node_name(error), 'host': self._holder(error),
                   'how': ('waiting for its release in this conductor '
                           '(place %d in line)' % place if local else
                           'retrying the reservation in %.3f s' %
                           waiter.timeout),
                   'purpose': self._purpose, 'attempts': waiter.reserves,
                   'elapsed': waiter.elapsed()})

    def _warn_if_patient_too_long(self, waiter):
        """A rate-limited WARNING for requests that wait without limit."""
        if waiter.policy.patience is not None:
            return
        elapsed = waiter.elapsed()
        if elapsed < PATIENT_WARNING_INTERVAL or (
                waiter.warned_at is not None and
                elapsed - waiter.warned_at < PATIENT_WARNING_INTERVAL):
            return
        waiter.warned_at = elapsed
        LOG.warning("Node %(node)s is still locked by %(host)s; %(purpose)s "
                    "has waited %(elapsed).0f seconds for it and keeps "
                    "waiting", {'node': self._node_name(waiter.last_error),
                                'host': self._holder(waiter.last_error),
                                'purpose': self._purpose,
                                'elapsed': elapsed})

    def _gave_up(self, waiter, error):
        """The final NodeLocked, logged once: holder, attempts, time."""
        values = {'node': self._node_name(error),
                  'host': self._holder(error), 'purpose': self._purpose,
                  'attempts': waiter.reserves, 'waited': waiter.elapsed()}
        summary = ("Node %(node)s is locked by host %(host)s; gave up "
                   "reserving it for %(purpose)s after %(attempts)d "
                   "attempt(s) in %(waited).2f seconds" % values)
        LOG.warning('%s', summary)
        message = (summary + '. Please retry after the current operation '
                   'is completed.')
        # ironic's own class, so its API still answers 409 and its RPC
        # layers rebuild the exception on the other side.
        return ironic_exc.NodeLocked(message, node=values['node'],
                                     host=values['host'])

    def _node_name(self, error):
        return _error_kwarg(error, 'node') or self.node_id

    @staticmethod
    def _holder(error):
        return _error_kwarg(error, 'host') or 'unknown'


def _error_kwarg(error, key):
    """A keyword argument of an ironic exception, as it was passed.

    ironic stores each one JSON-encoded (ready for RPC); decode it back.
    """
    value = (getattr(error, 'kwargs', None) or {}).get(key)
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value
