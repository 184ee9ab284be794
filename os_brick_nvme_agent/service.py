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

"""The agent daemon's service: observe, decide, write ahead, act.

One pass (:meth:`AgentService.run_once`): snapshot the host, ask the
provisioner for the replica set of every array that carries a name, let
the pure engine decide, save the new state (with the actions about to be
taken, so a restart knows the pending step) and carry the actions out:
provisioner actions through the provisioner, host actions through the
executor. Between passes the service waits on kernel change notifications
with ``poll_interval`` as fallback. When the provisioner cannot be reached
the pass stops before deciding anything, so arrays stay untouched, and the
next attempt backs off exponentially with jitter.

The loop runs in an oslo.service looping call on the threading backend
(selected here, before oslo.service is imported).
"""

import random
import time

from oslo_log import log as logging
from oslo_service import backend

try:
    backend.init_backend(backend.BackendType.THREADING)
except backend.exceptions.BackendAlreadySelected:
    pass  # the embedding process chose; the looping call works on both

from oslo_service import loopingcall  # noqa: E402
from oslo_service import service  # noqa: E402

from os_brick_nvme_agent import engine  # noqa: E402
from os_brick_nvme_agent import exception  # noqa: E402
from os_brick_nvme_agent import model  # noqa: E402

LOG = logging.getLogger(__name__)

PROVISIONER_ACTIONS = (model.ReportReplicaState, model.RequestReplacement)
#: Seconds to wait after a pass that acted: the host (or the provisioner)
#: usually has the next step ready by then, e.g. a replacement replica.
AFTER_ACTION_WAIT = 1.0
#: Past a grace period's end, so that the pass finds it over.
GRACE_SLACK = 0.05


def engine_config(group):
    """EngineConfig from the ``[nvme_agent]`` options."""
    return engine.EngineConfig(grace_period=group.grace_period,
                               report_interval=group.report_interval,
                               request_interval=group.request_interval,
                               connect_interval=group.connect_interval)


def volume_ids(host):
    """Volume ids to ask about: the metadata names of the host's arrays."""
    return sorted({array.md_name.split(':', 1)[-1]
                   for array in host.arrays if array.md_name})


def grace_wait(agent_state, grace_period, now):
    """Seconds until the next grace period to run out, or None.

    Only the replicas whose grace period is still running count; one that
    ran out already is paced by ``request_interval``, not by this wait.
    """
    waits = [rec.faulty_since + grace_period - now
             for volume in agent_state.volumes for rec in volume.replicas
             if rec.faulty_since is not None
             and rec.faulty_since + grace_period > now]
    return min(waits) if waits else None


class Backoff(object):
    """Exponential backoff with jitter between ``initial`` and ``maximum``."""

    def __init__(self, initial, maximum, rng=random.random):
        self.initial = initial
        self.maximum = maximum
        self.failures = 0
        self._rng = rng

    def next_delay(self):
        self.failures += 1
        ceiling = min(self.maximum, self.initial * 2 ** (self.failures - 1))
        return ceiling / 2.0 + self._rng() * ceiling / 2.0

    def reset(self):
        self.failures = 0


class AgentService(service.Service):
    """The healing loop.

    :param conf: ConfigOpts with ``[nvme_agent]`` registered.
    :param provisioner: a provisioner plugin instance.
    :param executor: an :class:`~os_brick_nvme_agent.executor.Executor`.
    :param store: a :class:`~os_brick_nvme_agent.state.StateStore`.
    :param snapshot: callable() -> :class:`model.HostState`.
    :param watcher: a :class:`~os_brick_nvme_agent.host.watcher.Watcher`.
    :param clock: callable() -> wall-clock seconds.
    """

    def __init__(self, conf, provisioner, executor, store, snapshot,
                 watcher, clock=time.time):
        super().__init__(threads=1)
        self.conf = conf
        self.provisioner = provisioner
        self.executor = executor
        self.store = store
        self.snapshot = snapshot
        self.watcher = watcher
        self.clock = clock
        self.group = conf.nvme_agent
        self.config = engine_config(self.group)
        self.backoff = Backoff(self.group.provisioner_backoff_initial,
                               self.group.provisioner_backoff_max)
        self.state = store.load()
        self.acted = False
        self._timer = None

    # One pass -------------------------------------------------------------

    def replica_sets(self, host):
        """Ask the provisioner about every named array.

        :raises ProvisionerUnavailable: stop the pass, touch nothing.
        """
        answers = {}
        for volume_id in volume_ids(host):
            try:
                answers[volume_id] = self.provisioner.get_replica_set(
                    volume_id)
            except exception.ProvisionerUnavailable:
                raise
            except exception.MalformedReply as exc:
                LOG.warning('Ignoring the provisioner answer for %s: %s',
                            volume_id, exc)
                answers[volume_id] = None
            except Exception:
                # A plugin bug must not stop the healing of other volumes;
                # the volume it concerns is left untouched (None).
                LOG.exception('Provisioner failed on volume %s', volume_id)
                answers[volume_id] = None
        return answers

    def run_once(self):
        """One observe/decide/act pass.

        :returns: seconds to wait before the next pass when backing off,
            else None (wait for a change or ``poll_interval``).
        """
        self.acted = False
        host = self.snapshot()
        try:
            answers = self.replica_sets(host)
        except exception.ProvisionerUnavailable as exc:
            delay = self.backoff.next_delay()
            LOG.warning('Provisioner unavailable (%s); arrays left untouched, '
                        'next attempt in %.1fs', exc, delay)
            return delay
        self.backoff.reset()
        self.tune_controllers(host, answers)
        actions, new_state = engine.reconcile(host, answers, self.state,
                                              self.clock(), self.config)
        self.store.save(new_state)      # write-ahead: the pending step
        self.state = new_state
        return self.execute(actions)

    def tune_controllers(self, host, answers):
        """fast_io_fail_tmo on the legs of the volumes the provisioner knows.

        A failure here must not keep the pass from healing, so it is logged
        and the next pass tries again.
        """
        known = [volume_id for volume_id, answer in answers.items()
                 if answer is not None]
        if not known:
            return
        try:
            self.executor.tune_controllers(host, known)
        except Exception:
            LOG.exception('Could not tune the controllers of %s', known)

    def execute(self, actions):
        """Carry out actions in order; a failure skips the rest of its volume.

        Sets ``acted`` when every action succeeded: only then is the next
        step likely ready soon. A failing step (a target still down) is
        retried at the normal pace, so that it does not use up the
        engine's re-join attempts within seconds.

        :returns: a backoff delay if the provisioner went away, else None.
        """
        failed = set()
        for action in actions:
            if action.volume_id in failed:
                continue
            try:
                self._apply(action)
            except exception.ProvisionerUnavailable as exc:
                delay = self.backoff.next_delay()
                LOG.warning('Provisioner unavailable while applying %s (%s); '
                            'next attempt in %.1fs', action, exc, delay)
                return delay
            except Exception:
                # The next pass decides again from what it observes, so a
                # failed step is retried from the real state, not replayed.
                LOG.exception('Failed to apply %s; skipping the other '
                              'actions of volume %s this pass', action,
                              action.volume_id)
                failed.add(action.volume_id)
        self.acted = bool(actions) and not failed
        return None

    def _apply(self, action):
        if isinstance(action, model.ReportReplicaState):
            LOG.info('Reporting replica %s of %s as %s', action.replica_id,
                     action.volume_id, action.state.value)
            self.provisioner.report_replica_state(
                action.volume_id, action.replica_id, action.state)
        elif isinstance(action, model.RequestReplacement):
            LOG.info('Requesting a replacement for replica %s of %s',
                     action.replica_id, action.volume_id)
            self.provisioner.request_replacement(action.volume_id,
                                                 action.replica_id)
        else:
            self.executor.apply(action)

    # The loop -------------------------------------------------------------

    def _tick(self):
        try:
            delay = self.run_once()
        except Exception:
            # Keep the daemon alive: the next pass starts from a fresh
            # observation, and the failure is in the log.
            LOG.exception('Reconcile pass failed')
            delay = self.backoff.next_delay()
        if delay:
            return delay
        self.watcher.wait(self.next_wait())
        return 0

    def next_wait(self):
        """Timeout of the wait for a change; None means ``poll_interval``.

        Right after acting the next step is usually close (a replacement
        replica showing up, a leg to remove): look again soon. Never sleep
        past the end of a running grace period either.
        """
        waits = [self.group.poll_interval]
        if self.acted:
            waits.append(AFTER_ACTION_WAIT)
        grace = grace_wait(self.state, self.config.grace_period, self.clock())
        if grace is not None:
            waits.append(grace + GRACE_SLACK)
        wait = min(waits)
        return None if wait == self.group.poll_interval else wait

    def start(self):
        LOG.info('NVMe-oF healing agent started (provisioner %s, grace '
                 'period %ss, poll interval %ss)', self.group.provisioner,
                 self.group.grace_period, self.group.poll_interval)
        self._timer = loopingcall.DynamicLoopingCall(self._tick)
        self._timer.start(initial_delay=0, stop_on_exception=False)

    def stop(self, graceful=False):
        if self._timer is not None:
            self._timer.stop()
        self.watcher.interrupt()
        super().stop(graceful)

    def wait(self):
        if self._timer is not None:
            self._timer.wait()
        super().wait()
