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

"""Where a driver re-initialization stands, in one object.

The manager (cinder_resilience.manager) asks :class:`ReinitState` what to
do and tells it what happened; :mod:`reinit_policy` says how long to wait.
Every transition that two threads can race on (the probe loop, the service
start, a stop signal) happens under the object's lock.
"""

import threading

#: Not started yet, or started again after a stop.
IDLE = 'idle'
#: The first attempt and the ``reinit_driver_count`` counted retries.
COUNTED = 'counted'
#: Background probes after the counted attempts.
PROBING = 'probing'
#: The driver is initialized.
READY = 'ready'
#: No more attempts: a permanent error, or background probing is off.
GAVE_UP = 'gave_up'
#: Stopped with the service.
STOPPED = 'stopped'


class ReinitState:
    """Phase, attempts, exponent, start time and deferred RPC work.

    :ivar phase: one of the module's phase constants
    :ivar attempts: driver initializations tried since the start
    :ivar exponent: the doubling step of the next wait
    :ivar started: clock value at the first attempt, or None
    :ivar rpc_pending: cinder's ``init_host_with_rpc`` waits for the driver
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.phase = IDLE
        self.attempts = 0
        self.exponent = 0
        self.started = None
        self.rpc_pending = False
        self.loop = None

    def begin(self, now):
        """Forget a previous start (a service may be started again)."""
        self.stop_event.clear()
        with self.lock:
            self.phase = COUNTED
            self.attempts = 0
            self.exponent = 0
            self.started = now
            self.rpc_pending = False
            self.loop = None

    @property
    def stopped(self):
        return self.stop_event.is_set()

    @property
    def probing(self):
        return self.phase == PROBING

    def count_attempt(self):
        """Record one more attempt; returns True if it is a retry."""
        self.attempts += 1
        return self.attempts > 1

    def start_probing(self, start_loop):
        """Enter PROBING and keep the loop ``start_loop()`` returns.

        :returns: False (and starts nothing) when already stopped
        """
        with self.lock:
            if self.stopped:
                return False
            self.phase = PROBING
            self.loop = start_loop()
            return True

    def defer_rpc(self):
        """Note that RPC initialization waits; False when nothing waits."""
        with self.lock:
            if self.phase != PROBING:
                return False
            self.rpc_pending = True
            return True

    def end(self, phase):
        """Leave COUNTED or PROBING for ``phase``.

        :returns: whether RPC initialization was deferred until now
        """
        with self.lock:
            if self.phase != STOPPED:
                self.phase = phase
            self.loop = None
            pending, self.rpc_pending = self.rpc_pending, False
            return pending

    def stop(self):
        """Interrupt waits and probes; returns the loop to stop, or None."""
        self.stop_event.set()
        with self.lock:
            loop, self.loop = self.loop, None
            if self.phase in (COUNTED, PROBING):
                self.phase = STOPPED
            return loop
