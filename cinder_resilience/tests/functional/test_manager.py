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

"""A real cinder-volume whose backend answers only after about 20 s.

Two cinder-volume processes start side by side against the same backend,
a TCP listener that the test opens 20 s later: one runs our manager, the
other cinder's own. Ours must come up by itself (driver initialized, RPC
initialization done, capabilities published, heartbeats sent); cinder's
must stay uninitialized and silent. Then a third run shows that stopping
the service while it waits for the backend takes about a second at most.
Both run with cinder's eventlet backend (its default) and with its native
threading backend (``OS_CINDER_DISABLE_EVENTLET_PATCHING=1``).
"""

import time

import fixtures
from oslotest import base
from testtools import content

from cinder_resilience.tests.functional import cinder_service as cs

BACKEND_DELAY = 20.0


class LateBackendTest(base.BaseTestCase):
    """cinder-volume with its default (eventlet) oslo.service backend."""

    THREADING = False

    def _volume(self, name, manager, port, **kwargs):
        path = self.useFixture(fixtures.TempDir()).path
        volume = cs.CinderVolume(path, name, manager, port,
                                 threading=self.THREADING, **kwargs)
        self.addCleanup(volume.stop)
        self.addCleanup(self._attach_log, name, volume)
        return volume

    def _attach_log(self, name, volume):
        self.addDetailUniqueName(
            '%s-log' % name,
            content.text_content(volume.log()[-20000:]))

    def _backend(self, port):
        backend = cs.Backend(port)
        self.addCleanup(backend.close)
        return backend

    def test_ours_comes_up_by_itself_cinders_stays_down(self):
        port = cs.free_port()
        ours = self._volume('ours', cs.OURS, port)
        upstream = self._volume('upstream', cs.UPSTREAM, port)
        backend = self._backend(port)
        began = time.monotonic()
        ours.start()
        upstream.start(template=ours)
        # The backend answers about 20 s after the start, and in any case
        # only once both managers are past their counted attempts (a loaded
        # machine can take longer than 20 s to get there).
        self.assertTrue(cs.wait_for(
            lambda: (cs.GIVE_UP_LINE in upstream.log() and
                     cs.PROBING_LINE in ours.log()), 120),
            'the counted attempts did not end')
        # While it probes, ours takes no RPC work and shows down.
        self.assertTrue(cs.wait_for(
            lambda: ours.log().count(cs.HELD_LINE) == 2, 30),
            'the host and backend RPC servers were not held')
        self.assertIn(cs.DOWN_LINE, ours.log())
        self.assertFalse(ours.shown_up())
        time.sleep(max(0.0, BACKEND_DELAY - (time.monotonic() - began)))
        self.assertFalse(ours.initialized())
        self.assertFalse(upstream.initialized())
        backend.open()
        opened = time.monotonic()

        # Ours: noticed within one capped probe interval (4 s here).
        self.assertTrue(cs.wait_for(ours.initialized, 30),
                        'our cinder-volume did not initialize the driver')
        took = time.monotonic() - opened
        self.assertTrue(cs.wait_for(ours.reporting, 15),
                        'our cinder-volume sends no heartbeat')
        log = ours.log()
        self.assertTrue(ours.shown_up())
        for line in (cs.RPC_READY_LINE, cs.CAPABILITIES_LINE,
                     '2 RPC servers started, the service is up'):
            self.assertGreater(log.count(line), 0, 'not in our log: ' + line)
        self.assertEqual('disabled', ours.service_row()['replication_status'])

        # cinder's own manager gave up long ago and stays down.
        time.sleep(max(0.0, 6.0 - (time.monotonic() - opened)))
        self.assertIsNone(upstream.process.poll())
        self.assertFalse(upstream.initialized())
        self.assertFalse(upstream.reporting())
        self.assertGreater(upstream.log().count(cs.GIVE_UP_LINE), 0)
        self.assertLess(took, 15.0)

    def test_stop_while_waiting_for_the_backend(self):
        port = cs.free_port()
        ours = self._volume('stopper', cs.OURS, port, probe_interval=60)
        ours.start()
        waiting = cs.wait_for(
            lambda: cs.DEFERRED_LINE in ours.log(), 120)
        self.assertTrue(waiting, 'never reached background probing')
        # Let Service.start() finish: a signal landing inside the start
        # greenthread is an eventlet hazard of cinder's, not ours.
        time.sleep(1.0)
        took = ours.stop(timeout=15)
        self.assertLess(took, 3.0)

    def test_bad_option_stops_the_service_once(self):
        # cinder-volume builds the manager in its parent process: a bad
        # option ends it there, before any worker is forked and respawned.
        ours = self._volume('badopt', cs.OURS, cs.free_port(),
                            extra='reinit_driver_count = -2')
        ours.start()
        self.assertEqual(1, ours.exited(120), 'cinder-volume kept running')
        log = ours.log()
        named = [line for line in log.splitlines()
                 if 'reinit_driver_count' in line]
        self.assertEqual(1, len(named), log[-3000:])
        self.assertIn('ERROR', named[0])
        self.assertIn('cinder-volume does not start', named[0])
        self.assertNotIn('Traceback', log)
        self.assertNotIn('Starting volume driver', log)
        with open(ours.path + '/stdout.log', errors='replace') as out:
            self.assertNotIn('Forking too fast', out.read())


class LateBackendThreadingTest(LateBackendTest):
    """The same with cinder's native threading backend (cotyledon)."""

    THREADING = True
