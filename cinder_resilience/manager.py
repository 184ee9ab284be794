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

"""Volume manager that re-initializes a volume driver which failed to start.

Enable it in cinder.conf::

    [DEFAULT]
    volume_manager = cinder_resilience.manager.VolumeManager

cinder's own manager tries ``reinit_driver_count`` more times, sleeping 1, 2,
4 ... s in between, and then leaves the service down for good. This one keeps
those counted attempts (the waits capped and jittered, and interruptible by
:meth:`DriverReinitMixin.stop_reinit`), stops at once on a permanent error,
then keeps probing in the background with an oslo.service looping call. When
the driver comes up late, it finishes what a start-time success does: stats
and capabilities published, the RPC-dependent initialization run, and a
heartbeat sent so the service reports up.
"""

import random
import sys
import time

from cinder import context
from cinder import objects
from oslo_config import cfg
from oslo_log import log as logging

from cinder_resilience import coordination_service
from cinder_resilience import exception
from cinder_resilience import member_cleanup
from cinder_resilience import opts
from cinder_resilience import reinit_policy
from cinder_resilience import reinit_state
from cinder_resilience import rpc_gate
from cinder_resilience import service_status

# cinder.volume.manager refers to the versioned object classes at import
# time; cinder-volume registers them before loading the manager, other
# importers (tests, benchmark, demo) may not have. Registering is idempotent.
objects.register_all()

from cinder.volume import manager as cinder_manager  # noqa: E402
from cinder.volume import volume_utils  # noqa: E402

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

READY = 'ready'
TRANSIENT = 'transient'
PERMANENT = 'permanent'
STOPPED = 'stopped'

#: Driver calls whose exception decides whether a failure is permanent.
SETUP_METHODS = ('do_setup', 'check_for_setup_error')
#: Optional driver method ``undo_setup(context)``: called before a retry to
#: release what a failed attempt set up (sessions, threads, temp files).
UNDO_HOOK = 'undo_setup'


def looping_call_runner(step, first_wait, max_wait):
    """Run ``step`` in an oslo.service DynamicLoopingCall.

    ``step()`` returns the seconds to wait before the next call, or None
    when done. The backend (eventlet or threading) is the one the service
    selected; the looping call's ``stop()`` interrupts a wait at once.

    :returns: the started looping call (has ``stop()`` and ``wait()``)
    """
    from oslo_service import loopingcall  # the service has picked a backend

    def _call():
        wait = step()
        if wait is None:
            raise loopingcall.LoopingCallDone()
        return wait

    call = loopingcall.DynamicLoopingCall(_call)
    call.start(initial_delay=first_wait, periodic_interval_max=max_wait)
    return call


def load_policy_or_exit(conf):
    """Validate the options; a bad one ends the process with one line.

    cinder-volume builds its managers in the parent process, before it
    forks a worker per backend: failing here stops the service once,
    instead of a worker that fails and is respawned over and over.
    """
    try:
        return reinit_policy.load_policy(conf)
    except exception.InvalidReinitOption as exc:
        LOG.error('%s; cinder-volume does not start.', exc)
        sys.exit(1)


class DriverReinitMixin:
    """Retries a failed volume driver start, then probes in the background.

    Compose it before ``cinder.volume.manager.VolumeManager``. Tests and the
    benchmark replace ``reinit_wait`` (``wait(seconds) -> stopped``),
    ``reinit_random``, ``reinit_clock`` and ``reinit_runner`` (same contract
    as :func:`looping_call_runner`, also used for the dead-member cleanup)
    so that nothing sleeps for real.
    """

    def __init__(self, *args, **kwargs):
        opts.register_opts(CONF)
        self.reinit_state = reinit_state.ReinitState()
        self._reinit_policy = load_policy_or_exit(CONF)
        self._reinit_args = (None, {})
        self._cleanup_loop = None
        self._rpc_gate = None
        self.reinit_wait = self.reinit_state.stop_event.wait
        self.reinit_random = random.random
        self.reinit_clock = time.monotonic
        self.reinit_runner = looping_call_runner
        self.cleanup_runner = looping_call_runner
        super().__init__(*args, **kwargs)

    # -- service life cycle -------------------------------------------------

    def init_host(self, added_to_cluster=None, **kwargs):
        """Start the driver, retrying as configured (see module doc)."""
        self.stop_reinit()
        policy = self._reinit_policy = reinit_policy.load_policy(CONF)
        self.reinit_state.begin(self.reinit_clock())
        if not self._reinit_driver_allowed():
            self.reinit_state.end(reinit_state.GAVE_UP)
            return
        self._reinit_args = (added_to_cluster, kwargs)
        outcome = self._reinit_counted_attempts(policy)
        if outcome == READY:
            self.reinit_state.end(reinit_state.READY)
            return
        if outcome == STOPPED:
            LOG.info('Driver re-initialization of %s stopped.',
                     self._reinit_driver_name())
            return
        self._rpc_gate = rpc_gate.install(self)
        if outcome == TRANSIENT:
            self._reinit_start_background()
        else:
            self.reinit_state.end(reinit_state.GAVE_UP)

    def _reinit_counted_attempts(self, policy):
        """The first attempt and cinder's counted retries, as upstream.

        Every failure, permanent or not, is retried ``reinit_driver_count``
        times; the classification of the last one decides what follows.
        """
        outcome = self._reinit_attempt()
        if outcome in (TRANSIENT, PERMANENT):
            # Nothing heartbeats before init_host returns: once is enough.
            self._reinit_report_down()
        attempt = 0
        while outcome in (TRANSIENT, PERMANENT) and attempt < policy.count:
            wait = policy.counted_wait(attempt, self.reinit_random())
            LOG.warning('Volume driver %(driver)s is not initialized; '
                        'retry %(n)d of %(count)d in %(wait).1f s.',
                        {'driver': self._reinit_driver_name(),
                         'n': attempt + 1, 'count': policy.count,
                         'wait': wait})
            if self.reinit_wait(wait):
                return STOPPED
            attempt += 1
            outcome = self._reinit_attempt()
        self.reinit_state.exponent = attempt
        if outcome == PERMANENT:
            self._reinit_log_permanent()
        return outcome

    def init_host_with_rpc(self):
        """Run cinder's RPC-dependent start work, or defer it.

        While background probing may still bring the driver up, the work is
        deferred and done right after the late success.
        """
        rpc_gate.uninstall(self)
        if self.reinit_state.defer_rpc():
            LOG.warning('RPC initialization of volume driver %s is '
                        'deferred until the driver initializes.',
                        self._reinit_driver_name())
            return
        super().init_host_with_rpc()
        self._reinit_start_cleanup()

    def stop_reinit(self):
        """Stop counted waits, probes and the dead-member cleanup."""
        loop = self.reinit_state.stop()
        if loop is not None:
            loop.stop()
        cleanup, self._cleanup_loop = self._cleanup_loop, None
        if cleanup is not None:
            cleanup.stop()
        rpc_gate.uninstall(self)
        gate, self._rpc_gate = self._rpc_gate, None
        if gate is not None:
            gate.close()

    @property
    def reinit_probing(self):
        """True while the background probe is scheduled."""
        return self.reinit_state.probing

    # -- one attempt --------------------------------------------------------

    def _reinit_driver_name(self):
        return self.driver.__class__.__name__

    def _reinit_driver_allowed(self):
        # Same rule and message as cinder's init_host, which we replace.
        if self.driver.supported:
            return True
        volume_utils.log_unsupported_driver_warning(self.driver)
        if self.configuration.enable_unsupported_driver:
            return True
        LOG.error('Unsupported drivers are disabled. You can re-enable by '
                  'adding enable_unsupported_driver=True to the driver '
                  'section in cinder.conf')
        return False

    def _reinit_attempt(self):
        """Try cinder's ``_init_host`` once and classify the result.

        :returns: READY, TRANSIENT, PERMANENT or STOPPED
        """
        if self.reinit_state.stopped:
            return STOPPED
        if self.reinit_state.count_attempt():
            self._reinit_undo_partial_setup()
        error = self._reinit_init_host_once()
        if self.driver.initialized:
            return READY
        self._reinit_last_error = reinit_policy.find_permanent(
            error, self._reinit_policy.permanent)
        return TRANSIENT if self._reinit_last_error is None else PERMANENT

    def _reinit_log_permanent(self):
        error = self._reinit_last_error
        LOG.error('Volume driver %(driver)s cannot start: %(cls)s: %(err)s. '
                  'This error is permanent (reinit_driver_permanent_errors): '
                  'no further attempt after %(n)d; fix the cause and restart '
                  'the service.',
                  {'driver': self._reinit_driver_name(),
                   'cls': type(error).__name__, 'err': error,
                   'n': self.reinit_state.attempts})

    def _reinit_init_host_once(self):
        """Run ``_init_host`` and return the exception that failed it.

        cinder's ``_init_host`` logs and swallows the driver's exception, so
        the setup methods are wrapped for the attempt to see it.
        """
        errors = []
        driver = self.driver
        own = getattr(driver, '__dict__', {})
        saved = {name: own.get(name) for name in SETUP_METHODS}
        for name in SETUP_METHODS:
            setattr(driver, name, _recording(getattr(driver, name), errors))
        added_to_cluster, kwargs = self._reinit_args
        try:
            self._init_host(added_to_cluster, **kwargs)
        except Exception as exc:
            # Beyond the driver calls (database, capabilities): log and
            # classify like a driver error so that a probe never dies.
            LOG.exception('Volume driver initialization failed.')
            errors.append(exc)
        finally:
            for name, method in saved.items():
                if method is None:
                    own.pop(name, None)
                else:
                    setattr(driver, name, method)
        return errors[-1] if errors else None

    def _reinit_undo_partial_setup(self):
        hook = getattr(self.driver, UNDO_HOOK, None)
        if not callable(hook):
            return
        try:
            hook(context.get_admin_context())
        except Exception:
            # The next attempt starts from whatever is left; its own outcome
            # decides, so a failing cleanup must not stop the retries.
            LOG.exception('Volume driver %s failed to undo a partial setup.',
                          self._reinit_driver_name())

    # -- background probing and late success ---------------------------------

    def _reinit_start_background(self):
        policy = self._reinit_policy
        state = self.reinit_state
        if not policy.background:
            state.end(reinit_state.GAVE_UP)
            LOG.error('Volume driver %(driver)s is still not initialized '
                      'after %(n)d attempts and background probing is off '
                      '(reinit_driver_background): restart the service once '
                      'the backend is back.',
                      {'driver': self._reinit_driver_name(),
                       'n': state.attempts})
            return
        first = policy.probe_wait(state.exponent, self.reinit_random())
        LOG.warning('Volume driver %(driver)s is still not initialized after '
                    '%(n)d attempts; probing in the background (first probe '
                    'in %(wait).1f s, then at most every %(cap)d s). The '
                    'service reports down and takes no RPC work until then.',
                    {'driver': self._reinit_driver_name(),
                     'n': state.attempts, 'wait': first,
                     'cap': policy.probe_interval})
        state.start_probing(lambda: self.reinit_runner(
            self._reinit_probe, first, policy.probe_interval))

    def _reinit_probe(self):
        """One background probe: the next wait in seconds, None when done."""
        outcome = self._reinit_attempt()
        state = self.reinit_state
        if outcome == TRANSIENT:
            state.exponent += 1
            wait = self._reinit_policy.probe_wait(state.exponent,
                                                  self.reinit_random())
            LOG.warning('Volume driver %(driver)s is still not initialized '
                        '(attempt %(n)d); next probe in %(wait).1f s.',
                        {'driver': self._reinit_driver_name(),
                         'n': state.attempts, 'wait': wait})
            return wait
        if outcome == PERMANENT:
            self._reinit_log_permanent()
        phase = {READY: reinit_state.READY, PERMANENT: reinit_state.GAVE_UP,
                 STOPPED: reinit_state.STOPPED}[outcome]
        rpc_pending = state.end(phase)
        if outcome == READY:
            self._reinit_finish_late_start(rpc_pending)
        return None

    def _reinit_finish_late_start(self, rpc_pending):
        """Leave the service as a start-time success would have."""
        gate = self._rpc_gate
        started = gate.open() if gate is not None else 0
        if rpc_pending:
            super().init_host_with_rpc()
            self._reinit_start_cleanup()
        self._reinit_heartbeat()
        LOG.info('Volume driver %(driver)s initialized after %(n)d attempts '
                 'and %(secs).1f s; %(rpc)d RPC servers started, the service '
                 'is up.',
                 {'driver': self._reinit_driver_name(),
                  'n': self.reinit_state.attempts, 'rpc': started,
                  'secs': self.reinit_clock() - self.reinit_state.started})

    def _reinit_service_id(self):
        return self._reinit_args[1].get('service_id')

    def _reinit_report_down(self):
        service_status.report_down(self._reinit_service_id())

    def _reinit_heartbeat(self):
        service_status.heartbeat(self._reinit_service_id())

    # -- dead-member cleanup --------------------------------------------------

    def _reinit_start_cleanup(self):
        """Clean dead cluster members periodically (member_cleanup)."""
        if not (self.cluster and CONF.dead_member_cleanup and
                self.driver.initialized):
            return
        coordinator = self._cleanup_coordinator()
        if coordinator is None or self._cleanup_loop is not None:
            return
        self._cleanup_loop = member_cleanup.start(
            self, coordinator, self.cleanup_runner,
            CONF.dead_member_cleanup_interval, self.reinit_random())

    def _cleanup_coordinator(self):
        """The coordinator electing the cleaner; None disables cleaning."""
        return None


def _recording(method, errors):
    """Wrap ``method`` so that the exception it raises is appended."""
    def _call(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            errors.append(exc)
            raise
    return _call


class VolumeManager(coordination_service.CoordinationMixin,
                    DriverReinitMixin, cinder_manager.VolumeManager):
    """cinder's VolumeManager with driver re-initialization.

    It also starts ``cinder_resilience.coordination.COORDINATOR`` before
    the driver and stops it with the service (see coordination_service),
    and elects the cleaner of dead cluster members through it.
    """

    def _cleanup_coordinator(self):
        return self._coordinator()

    def stop_coordination(self):
        """Called when cinder's Service.stop() stops its coordinator.

        That is the only stop signal a manager gets, so the driver
        re-initialization (waits, background probes) ends here too.
        """
        self.stop_reinit()
        super().stop_coordination()
