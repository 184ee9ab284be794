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

"""ironic's TaskManager, with a node reservation that waits out NodeLocked.

:class:`TaskManager` changes one thing in ironic's class: how ``_lock()``
retries :meth:`ironic.objects.Node.reserve` when another task holds the node.
It uses the ``retrying`` library with the schedule chosen in
:mod:`ironic_locking.backoff`; everything else (shared locks, drivers,
state machine, spawning) is ironic's code, untouched.

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
from ironic_locking import opts

__all__ = ['TaskManager', 'acquire']

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

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


class _Schedule(object):
    """The stop and wait callbacks of one ``retrying`` run.

    ``retrying`` asks ``stop`` after each failed attempt and ``wait`` before
    the next one. The decision is made once, in ``stop``; ``wait`` sleeps
    through the task manager's injectable ``sleep`` and tells ``retrying``
    to sleep 0 ms itself, so that tests never wait for real.
    """

    def __init__(self, task, policy):
        self.task = task
        self.policy = policy
        self.start = task.clock()
        self.attempts = 0
        self.last_error = None
        self._next = None

    def elapsed(self):
        return self.task.clock() - self.start

    def is_locked(self, error):
        self.attempts += 1
        if isinstance(error, ironic_exc.NodeLocked):
            self.last_error = error
            return True
        return False

    def stop(self, attempt_number, _delay_ms):
        self._next = backoff.next_wait(self.policy, attempt_number,
                                       self.elapsed(), self.task.rand)
        if self._next is not None:
            self.task._log_retry(self, self._next)
        return self._next is None

    def wait(self, _attempt_number, _delay_ms):
        if self._next:
            self.task.sleep(self._next)
        return 0


class TaskManager(ironic_task_manager.TaskManager):
    """ironic's TaskManager whose exclusive lock waits out NodeLocked.

    The class attributes ``clock``, ``sleep`` and ``rand`` are the only
    sources of time and randomness; tests replace them.
    """

    clock = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)
    rand = staticmethod(random.random)

    def _lock(self):
        self._debug_timer.restart()
        policy = backoff.make_policy(_conductor_conf(), retry=self._retry,
                                     patient=self._patient)
        schedule = _Schedule(self, policy)
        retrier = retrying.Retrying(retry_on_exception=schedule.is_locked,
                                    stop_func=schedule.stop,
                                    wait_func=schedule.wait)
        try:
            retrier.call(self._reserve)
        except ironic_exc.NodeLocked as error:
            raise self._gave_up(schedule, error) from error

    def _reserve(self):
        self.node = objects.Node.reserve(self.context, CONF.host,
                                         self.node_id)
        LOG.debug("Node %(node)s reserved for %(purpose)s after "
                  "%(time).2f seconds",
                  {'node': self.node.uuid, 'purpose': self._purpose,
                   'time': self._debug_timer.elapsed()})
        self._debug_timer.restart()

    def _log_retry(self, schedule, wait):
        """Log one line per retry: WARNING once the wait gets noticeable."""
        elapsed = schedule.elapsed()
        noticeable = elapsed + wait >= max(
            CONF.conductor.node_locked_retry_interval, 0)
        LOG.log(logging.WARNING if noticeable else logging.DEBUG,
                "Node %(node)s is locked by %(host)s; retrying the "
                "reservation for %(purpose)s in %(wait).3f s (attempt "
                "%(attempt)d failed, %(elapsed).3f s waited so far)",
                {'node': self._node_name(schedule.last_error),
                 'host': self._holder(schedule.last_error),
                 'purpose': self._purpose, 'wait': wait,
                 'attempt': schedule.attempts, 'elapsed': elapsed})

    def _gave_up(self, schedule, error):
        """The final NodeLocked: who holds the node, how long we waited."""
        node = self._node_name(error)
        holder = self._holder(error)
        message = ("Node %(node)s is locked by host %(host)s; gave up "
                   "reserving it for %(purpose)s after %(attempts)d "
                   "attempt(s) in %(waited).2f seconds. Please retry after "
                   "the current operation is completed." %
                   {'node': node, 'host': holder, 'purpose': self._purpose,
                    'attempts': schedule.attempts,
                    'waited': schedule.elapsed()})
        # ironic's own class, so its API still answers 409 and its RPC
        # layers rebuild the exception on the other side.
        return ironic_exc.NodeLocked(message, node=node, host=holder)

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
