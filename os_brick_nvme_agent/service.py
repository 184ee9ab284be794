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

What the agent sees and does goes to the event journal
(:mod:`os_brick_nvme_agent.journal`): faults seen, legs back in sync,
reports, replacement requests, host steps and their failures, and the
provisioner's reachability, which is probed at start. Volume events are
also offered to the provisioner (:meth:`Provisioner.send_event`). After
every pass the optional metrics file is rewritten.

The loop runs in an oslo.service looping call on the threading backend
(selected here, before oslo.service is imported).
"""

import os
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
from os_brick_nvme_agent import journal as journal_mod  # noqa: E402
from os_brick_nvme_agent import metrics  # noqa: E402
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
    :param journal: where events go (default: kept in memory).
    :param monotonic: callable() -> monotonic seconds.
    """

    def __init__(self, conf, provisioner, executor, store, snapshot,
                 watcher, clock=time.time, journal=None,
                 monotonic=time.monotonic):
        super().__init__(threads=1)
        self.conf = conf
        self.provisioner = provisioner
        self.executor = executor
        self.store = store
        self.snapshot = snapshot
        self.watcher = watcher
        self.clock = clock
        self.monotonic = monotonic
        self.journal = journal or journal_mod.MemoryJournal(clock)
        self.group = conf.nvme_agent
        self.config = engine_config(self.group)
        self.backoff = Backoff(self.group.provisioner_backoff_initial,
                               self.group.provisioner_backoff_max)
        self.state = store.load()
        self.acted = False
        self.reachable = None       # unknown until probed
        self.malformed = {}         # volume id -> last message logged
        self.heals = 0
        self.detection_latency = None
        self.woke_at = monotonic()
        self._metrics_error = None
        self._timer = None

    # The provisioner --------------------------------------------------------

    def probe(self):
        """Probe the provisioner and record whether it is reachable.

        :returns: True when it answered.
        """
        try:
            self.provisioner.probe()
        except (exception.ProvisionerUnavailable,
                exception.MalformedReply) as exc:
            self.set_reachable(False, exc)
            return False
        self.set_reachable(True)
        return True

    def set_reachable(self, reachable, error=None):
        """Log and journal a change of the provisioner's reachability."""
        if reachable == self.reachable:
            return
        self.reachable = reachable
        if reachable:
            LOG.info('Provisioner %s is reachable', self.group.provisioner)
            self.journal.record(journal_mod.PROVISIONER_REACHABLE,
                                provisioner=self.group.provisioner)
        else:
            LOG.warning('Provisioner %s is unreachable: %s',
                        self.group.provisioner, error)
            self.journal.record(journal_mod.PROVISIONER_UNREACHABLE,
                                provisioner=self.group.provisioner,
                                error=str(error))

    def malformed_answer(self, volume_id, exc):
        """Log a malformed answer once per distinct message."""
        message = str(exc)
        if self.malformed.get(volume_id) == message:
            LOG.debug('Still ignoring the answer for %s: %s', volume_id,
                      message)
            return
        self.malformed[volume_id] = message
        LOG.warning('Ignoring the provisioner answer for %s: %s; the '
                    'volume is left untouched until the answer is usable',
                    volume_id, message)
        self.journal.record(journal_mod.MALFORMED_ANSWER, volume_id,
                            error=message)

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
                self.malformed_answer(volume_id, exc)
                answers[volume_id] = None
                continue
            except Exception:
                # A plugin bug must not stop the healing of other volumes;
                # the volume it concerns is left untouched (None).
                LOG.exception('Provisioner failed on volume %s', volume_id)
                answers[volume_id] = None
                continue
            if self.malformed.pop(volume_id, None) is not None:
                LOG.info('The provisioner answer for %s is usable again',
                         volume_id)
        return answers

    # One pass ---------------------------------------------------------------

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
            self.set_reachable(False, exc)
            delay = self.backoff.next_delay()
            LOG.warning('Provisioner unavailable (%s); arrays left untouched, '
                        'next attempt in %.1fs', exc, delay)
            self.write_metrics(host, {})
            return delay
        if answers:
            # Only an answer shows it reachable: with no array to ask
            # about, the last probe's verdict stands.
            self.set_reachable(True)
        self.backoff.reset()
        self.tune_controllers(host, answers)
        actions, new_state = engine.reconcile(host, answers, self.state,
                                              self.clock(), self.config)
        self.store.save(new_state)      # write-ahead: the pending step
        self.record_changes(self.state, new_state)
        self.state = new_state
        delay = self.execute(actions)
        self.write_metrics(host, answers)
        return delay

    def record_changes(self, old, new):
        """Journal the faults seen and the legs back in sync."""
        for event, volume_id, rec in journal_mod.state_events(old, new):
            entry = self.journal.record(event, volume_id,
                                        replica=rec.replica_id, nqn=rec.nqn)
            if event == journal_mod.FAULT_SEEN:
                self.detection_latency = max(
                    0.0, self.monotonic() - self.woke_at)
                LOG.warning('Replica %s of %s is out of sync', rec.replica_id,
                            volume_id)
            else:
                self.heals += 1
                LOG.info('Replica %s of %s is in sync again',
                         rec.replica_id, volume_id)
            self.forward(entry)

    def forward(self, entry):
        """Offer a volume event to the provisioner; never fails the pass."""
        try:
            self.provisioner.send_event(entry)
        except exception.NVMeAgentException as exc:
            LOG.warning('Could not forward event %s of %s to the '
                        'provisioner: %s', entry['event'], entry['volume'],
                        exc)

    def write_metrics(self, host, answers):
        path = self.group.metrics_file
        if not path:
            return
        managed = [a for a in host.arrays if a.md_name and answers.get(
            a.md_name.split(':', 1)[-1]) is not None]
        error = metrics.write(path, {
            'arrays': len(managed),
            'degraded_arrays': sum(1 for a in managed if a.degraded),
            'heals_total': self.heals,
            'last_detection_latency_seconds': self.detection_latency,
            'provisioner_up': int(bool(self.reachable))})
        if error and error != self._metrics_error:
            LOG.warning('Cannot write the metrics file %s: %s', path, error)
        self._metrics_error = error

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
        """Carry out actions in order.

        A failure skips the later host steps of its volume, which may
        depend on it; reports and replacement requests still go, so that
        a reconnect that keeps failing (a target still down) never holds
        back the report of the replica it concerns.

        Sets ``acted`` when every action succeeded: only then is the next
        step likely ready soon. A failing step is retried at the normal
        pace, so that it does not use up the engine's re-join attempts
        within seconds.

        :returns: a backoff delay if the provisioner went away, else None.
        """
        failed = set()
        for action in actions:
            if (action.volume_id in failed
                    and not isinstance(action, PROVISIONER_ACTIONS)):
                continue
            try:
                self._apply(action)
            except exception.ProvisionerUnavailable as exc:
                self.set_reachable(False, exc)
                delay = self.backoff.next_delay()
                LOG.warning('Provisioner unavailable while applying %s (%s); '
                            'next attempt in %.1fs', action, exc, delay)
                return delay
            except Exception as exc:
                # The next pass decides again from what it observes, so a
                # failed step is retried from the real state, not replayed.
                LOG.exception('Failed to apply %s; skipping the other '
                              'host steps of volume %s this pass', action,
                              action.volume_id)
                self.journal.record(
                    journal_mod.ACTION_FAILED, action.volume_id,
                    action=type(action).__name__, error=str(exc),
                    **journal_mod.action_fields(action))
                failed.add(action.volume_id)
                continue
            entry = self.journal.record(
                journal_mod.ACTION_EVENTS[type(action)], action.volume_id,
                **journal_mod.action_fields(action))
            if entry['event'] in journal_mod.FORWARDED:
                self.forward(entry)
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
            self.woke_at = self.monotonic() + delay
            return delay
        self.watcher.wait(self.next_wait())
        self.woke_at = self.monotonic()
        return 0

    def next_wait(self):
        """Timeout of the wait for a change; None means ``poll_interval``.

        Right after acting the next step is usually close (a replacement
        replica showing up, a leg to remove): look again soon. Never sleep
        past the end of a running grace period either; the engine says
        when the next one ends.
        """
        waits = [self.group.poll_interval]
        if self.acted:
            waits.append(AFTER_ACTION_WAIT)
        grace = engine.grace_wait(self.state, self.clock(), self.config)
        if grace is not None:
            waits.append(grace + GRACE_SLACK)
        wait = min(waits)
        return None if wait == self.group.poll_interval else wait

    def start(self):
        LOG.info('NVMe-oF healing agent started (provisioner %s, grace '
                 'period %ss, poll interval %ss)', self.group.provisioner,
                 self.group.grace_period, self.group.poll_interval)
        self.journal.record(journal_mod.AGENT_STARTED, pid=os.getpid(),
                            provisioner=self.group.provisioner)
        self.probe()
        self._timer = loopingcall.DynamicLoopingCall(self._tick)
        self._timer.start(initial_delay=0, stop_on_exception=False)

    def stop(self, graceful=False):
        if self._timer is not None:
            self._timer.stop()
        self.watcher.interrupt()
        self.journal.record(journal_mod.AGENT_STOPPED, pid=os.getpid())
        super().stop(graceful)

    def wait(self):
        if self._timer is not None:
            self._timer.wait()
        super().wait()
