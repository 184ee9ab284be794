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
import threading
import time

from cinder import context
from cinder import objects
from oslo_config import cfg
from oslo_log import log as logging

from cinder_resilience import coordination_service
from cinder_resilience import opts
from cinder_resilience import reinit_policy

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


class DriverReinitMixin:
    """Retries a failed volume driver start, then probes in the background.

    Compose it before ``cinder.volume.manager.VolumeManager``. Tests and the
    benchmark replace ``reinit_wait`` (``wait(seconds) -> stopped``),
    ``reinit_random``, ``reinit_clock`` and ``reinit_runner`` (same contract
    as :func:`looping_call_runner`) so that nothing sleeps for real.
    """

    def __init__(self, *args, **kwargs):
        opts.register_opts(CONF)
        self._reinit_stop_event = threading.Event()
        self._reinit_lock = threading.Lock()
        self._reinit_rpc_pending = False
        self._reinit_probing = False
        self._reinit_loop = None
        self._reinit_policy = None
        self._reinit_args = (None, {})
        self._reinit_attempts = 0
        self._reinit_exponent = 0
        self._reinit_started = None
        self.reinit_wait = self._reinit_stop_event.wait
        self.reinit_random = random.random
        self.reinit_clock = time.monotonic
        self.reinit_runner = looping_call_runner
        super().__init__(*args, **kwargs)

    # -- service life cycle -------------------------------------------------

    def init_host(self, added_to_cluster=None, **kwargs):
        """Start the driver, retrying as configured (see module doc)."""
        policy = reinit_policy.load_policy(CONF)
        self._reinit_reset(policy)
        if not self._reinit_driver_allowed():
            return
        self._reinit_args = (added_to_cluster, kwargs)
        self._reinit_started = self.reinit_clock()
        outcome = self._reinit_attempt()
        attempt = 0
        while outcome == TRANSIENT and attempt < policy.count:
            wait = policy.counted_wait(attempt, self.reinit_random())
            LOG.warning('Volume driver %(driver)s is not initialized; '
                        'retry %(n)d of %(count)d in %(wait).1f s.',
                        {'driver': self._reinit_driver_name(),
                         'n': attempt + 1, 'count': policy.count,
                         'wait': wait})
            if self.reinit_wait(wait):
                outcome = STOPPED
                break
            attempt += 1
            outcome = self._reinit_attempt()
        self._reinit_exponent = attempt
        if outcome == TRANSIENT:
            self._reinit_start_background()
        elif outcome == STOPPED:
            LOG.info('Driver re-initialization of %s stopped.',
                     self._reinit_driver_name())

    def init_host_with_rpc(self):
        """Run cinder's RPC-dependent start work, or defer it.

        While background probing may still bring the driver up, the work is
        deferred and done right after the late success.
        """
        with self._reinit_lock:
            if self._reinit_probing and not self.driver.initialized:
                self._reinit_rpc_pending = True
                LOG.warning('RPC initialization of volume driver %s is '
                            'deferred until the driver initializes.',
                            self._reinit_driver_name())
                return
        super().init_host_with_rpc()

    def stop_reinit(self):
        """Stop counted waits and background probing; returns at once."""
        self._reinit_stop_event.set()
        with self._reinit_lock:
            loop, self._reinit_loop = self._reinit_loop, None
            self._reinit_probing = False
        if loop is not None:
            loop.stop()

    def _reinit_reset(self, policy):
        """Forget a previous start (a service may be started again)."""
        self.stop_reinit()
        self._reinit_stop_event.clear()
        self._reinit_policy = policy
        self._reinit_attempts = 0
        self._reinit_exponent = 0
        self._reinit_rpc_pending = False

    @property
    def reinit_probing(self):
        """True while the background probe is scheduled."""
        return self._reinit_probing

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
        if self._reinit_stop_event.is_set():
            return STOPPED
        if self._reinit_attempts:
            self._reinit_undo_partial_setup()
        self._reinit_attempts += 1
        error = self._reinit_init_host_once()
        if self.driver.initialized:
            return READY
        permanent = reinit_policy.find_permanent(
            error, self._reinit_policy.permanent)
        if permanent is None:
            return TRANSIENT
        LOG.error('Volume driver %(driver)s cannot start: %(cls)s: %(err)s. '
                  'This error is permanent (reinit_driver_permanent_errors): '
                  'no further attempt; fix the cause and restart the '
                  'service.',
                  {'driver': self._reinit_driver_name(),
                   'cls': type(permanent).__name__, 'err': permanent})
        return PERMANENT

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
        if not policy.background:
            LOG.error('Volume driver %(driver)s is still not initialized '
                      'after %(n)d attempts and background probing is off '
                      '(reinit_driver_background): restart the service once '
                      'the backend is back.',
                      {'driver': self._reinit_driver_name(),
                       'n': self._reinit_attempts})
            return
        first = policy.probe_wait(self._reinit_exponent, self.reinit_random())
        LOG.warning('Volume driver %(driver)s is still not initialized after '
                    '%(n)d attempts; probing in the background (first probe '
                    'in %(wait).1f s, then at most every %(cap)d s). The '
                    'service reports down until then.',
                    {'driver': self._reinit_driver_name(),
                     'n': self._reinit_attempts, 'wait': first,
                     'cap': policy.probe_interval})
        with self._reinit_lock:
            if self._reinit_stop_event.is_set():
                return
            self._reinit_probing = True
            self._reinit_loop = self.reinit_runner(
                self._reinit_probe, first, policy.probe_interval)

    def _reinit_probe(self):
        """One background probe: the next wait in seconds, None when done."""
        outcome = self._reinit_attempt()
        if outcome == TRANSIENT:
            self._reinit_exponent += 1
            wait = self._reinit_policy.probe_wait(self._reinit_exponent,
                                                  self.reinit_random())
            LOG.warning('Volume driver %(driver)s is still not initialized '
                        '(attempt %(n)d); next probe in %(wait).1f s.',
                        {'driver': self._reinit_driver_name(),
                         'n': self._reinit_attempts, 'wait': wait})
            return wait
        with self._reinit_lock:
            self._reinit_probing = False
            self._reinit_loop = None
            rpc_pending, self._reinit_rpc_pending = (
                self._reinit_rpc_pending, False)
        if outcome == READY:
            self._reinit_finish_late_start(rpc_pending)
        return None

    def _reinit_finish_late_start(self, rpc_pending):
        """Leave the service as a start-time success would have."""
        if rpc_pending:
            super().init_host_with_rpc()
        self._reinit_heartbeat()
        LOG.info('Volume driver %(driver)s initialized after %(n)d attempts '
                 'and %(secs).1f s; the service is up.',
                 {'driver': self._reinit_driver_name(),
                  'n': self._reinit_attempts,
                  'secs': self.reinit_clock() - self._reinit_started})

    def _reinit_heartbeat(self):
        """Report the service up now rather than at the next report tick."""
        service_id = self._reinit_args[1].get('service_id')
        if service_id is None:
            return
        try:
            service = objects.Service.get_by_id(context.get_admin_context(),
                                                service_id)
            service.report_count += 1
            service.save()
        except Exception:
            # The service's own report_state timer sends the next heartbeat
            # anyway; this one only shortens the time shown as down.
            LOG.exception('Could not send the heartbeat of service %s.',
                          service_id)


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
    the driver and stops it with the service (see coordination_service).
    """

    def stop_coordination(self):
        """Called when cinder's Service.stop() stops its coordinator.

        That is the only stop signal a manager gets, so the driver
        re-initialization (waits, background probes) ends here too.
        """
        self.stop_reinit()
        super().stop_coordination()
