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

"""One worker: take the lock, write with its token, release; record all.

Like a driver that trusts its lock, the worker does not re-check the lock
before each write: it learns it lost the lock from the lost-lock callback
or from the resource refusing its token.  ``python -m`` on this module runs
one worker until the stop file appears.
"""

import argparse
import os
import random
import sys
import time

from oslo_config import cfg

from cinder_resilience.fenced_resource import FencedFile
from cinder_resilience.tests.chaos import history

LOCK_NAME = 'chaos-resource'


def connect(url, heartbeat, on_lost):
    from cinder_resilience import coordination
    conf = cfg.ConfigOpts()
    coordination.register_opts(conf)
    conf([])
    conf.set_override('heartbeat', heartbeat, 'coordination')
    conf.set_override('max_reconnect_backoff', 0.5, 'coordination')
    coord = coordination.Coordinator(prefix='cinder-', conf=conf,
                                     backend_url=url, on_lock_lost=on_lost)
    coord.start()
    return coord


class Worker(object):

    def __init__(self, args):
        self.args = args
        self.pid = os.getpid()
        self.rec = history.History(
            os.path.join(args.workdir, 'w-%s-%d.jsonl' % (args.worker,
                                                          self.pid)),
            w=args.worker, pid=self.pid)
        self.resource = FencedFile(os.path.join(args.workdir, 'resource'))
        self.acq = 0
        self.coord = None
        self.lock = None

    def on_lost(self, lock):
        self.rec.record('lost', acq=self.acq, reason=lock.lost_reason)

    def _announce(self, token):
        path = os.path.join(self.args.workdir, 'holder')
        tmp = '%s.%d' % (path, self.pid)
        with open(tmp, 'w') as f:
            f.write('%d %d\n' % (self.pid, token))
        os.replace(tmp, path)

    def one_round(self):
        if self.coord is None:
            self.coord = connect(self.args.url, self.args.heartbeat,
                                 self.on_lost)
            self.lock = self.coord.get_lock(LOCK_NAME)
        # Polling without backoff keeps the lock busy: tooz's blocking
        # acquire waits up to 1 s (etcd) or 0.1 s (redis) between tries.
        if not self.lock.acquire(blocking=False):
            time.sleep(random.uniform(0, self.args.poll))
            return
        token = self.lock.fencing_token
        self.acq += 1
        self.rec.record('acquire', acq=self.acq, token=token)
        self._announce(token)
        for index in range(self.args.writes):
            time.sleep(self.args.hold / self.args.writes)
            started = time.monotonic()
            ok = self.resource.append(token, 'w=%s pid=%d acq=%d i=%d' % (
                self.args.worker, self.pid, self.acq, index))
            self.rec.record('write', t=started, acq=self.acq, token=token,
                            ok=ok, i=index, last=index + 1 == self.args.writes)
            if not ok:
                break
        # The release is recorded with the time it was asked for: from then
        # on another grant is legitimate.
        started = time.monotonic()
        ok = self.lock.release()
        self.rec.record('release', t=started, acq=self.acq, ok=ok)
        time.sleep(random.uniform(0, self.args.hold))

    def drop(self):
        coord, self.coord = self.coord, None
        if coord is not None:
            try:
                coord.stop()
            except Exception:
                pass   # the connection is already broken; drop it

    def run(self):
        stop_file = os.path.join(self.args.workdir, 'stop')
        while not os.path.exists(stop_file):
            try:
                self.one_round()
            except Exception as exc:
                # Backend down, lock lost, session gone: start over with a
                # fresh connection, as a service would.
                self.rec.record('error', acq=self.acq,
                                error='%s: %s' % (type(exc).__name__, exc))
                self.drop()
                time.sleep(0.2)
        self.drop()
        return 0


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument('url')
    parser.add_argument('workdir')
    parser.add_argument('worker')
    parser.add_argument('--lease', type=float, default=3.0)
    parser.add_argument('--heartbeat', type=float, default=0.5)
    parser.add_argument('--writes', type=int, default=3)
    parser.add_argument('--hold', type=float, default=0.015)
    parser.add_argument('--poll', type=float, default=0.05)
    return Worker(parser.parse_args(argv)).run()


if __name__ == '__main__':
    sys.exit(main())
