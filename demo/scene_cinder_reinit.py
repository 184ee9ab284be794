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

"""Scene: a cinder-volume service whose storage backend answers late.

``python -m demo.scene_cinder_reinit``

Two real cinder-volume processes start side by side (cinder from PyPI,
sqlite database, in-process messaging), both pointed at the same storage
backend, which is down:

* "upstream" runs cinder's own ``cinder.volume.manager.VolumeManager``;
* "ours" runs ``cinder_resilience.manager.VolumeManager``, enabled with one
  line of cinder.conf.

Both retry the driver 3 times (1 s, 2 s, 4 s). When cinder's manager has
given up, the backend comes back. Ours notices within one capped probe
interval (4 s here) and the service reports up; cinder's stays down until
someone restarts it. Returns 0 only if that is what happened.
"""

import shutil
import sys
import tempfile
import time


def _say(text):
    print(text, flush=True)


def _status(volume, cs):
    row = volume.service_row() or {}
    driver = 'initialized' if volume.initialized() else 'NOT initialized'
    beats = row.get('report_count', 0)
    return '%-8s driver %-15s heartbeats sent: %s' % (
        volume.name, driver, beats)


def _run(workdir):
    from cinder_resilience.tests.functional import cinder_service as cs
    port = cs.free_port()
    backend = cs.Backend(port)
    ours = cs.CinderVolume(workdir + '/ours', 'ours', cs.OURS, port)
    upstream = cs.CinderVolume(workdir + '/upstream', 'upstream',
                               cs.UPSTREAM, port)
    try:
        return _play(cs, backend, ours, upstream)
    finally:
        for volume in (ours, upstream):
            volume.stop()
        backend.close()


def _play(cs, backend, ours, upstream):
    _say('1. The storage backend (a TCP listener on 127.0.0.1:%d) is DOWN.'
         % backend.port)
    _say('2. Starting two real cinder-volume processes against it:')
    _say('   upstream: volume_manager = %s' % cs.UPSTREAM)
    _say('   ours:     volume_manager = %s' % cs.OURS)
    began = time.monotonic()
    ours.start()
    upstream.start(template=ours)
    gave_up = cs.wait_for(lambda: (cs.GIVE_UP_LINE in upstream.log() and
                                   cs.PROBING_LINE in ours.log()), 60)
    _say('3. After %.0f s cinder\'s manager has made its 3 retries and gave '
         'up%s.' % (time.monotonic() - began, '' if gave_up else ' (?)'))
    _say('   ' + _status(upstream, cs))
    _say('   ' + _status(ours, cs) + '  <- still probing in the background')
    _say('4. The backend comes back now.')
    backend.open()
    opened = time.monotonic()
    recovered = cs.wait_for(ours.initialized, 20)
    took = time.monotonic() - opened
    cs.wait_for(ours.reporting, 10)
    _say('5. %.1f s later:' % took)
    _say('   ' + _status(ours, cs))
    _say('   ' + _status(upstream, cs))
    ok = (recovered and ours.reporting() and cs.RPC_READY_LINE in ours.log()
          and not upstream.initialized() and not upstream.reporting())
    if ok:
        _say('   Ours came up by itself: driver initialized, RPC '
             'initialization done, capabilities sent to the schedulers, '
             'heartbeats up.')
        _say('   cinder\'s own service stays down until an operator '
             'restarts it.')
    else:
        _say('   Unexpected outcome; logs: %s and %s'
             % (ours.log_file, upstream.log_file))
    return ok


def main(argv=None):
    workdir = tempfile.mkdtemp(prefix='scene-cinder-reinit-')
    ok = False
    try:
        ok = _run(workdir)
    finally:
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
