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

"""Scene: two cinder-volume services share one storage backend.

``python -m demo.scene_coordination [BACKEND_URL]`` (a file:// directory
by default; give e.g. ``redis://127.0.0.1:6379`` to use a real server).

1. Two service processes, "hostA" and "hostB", each extend one volume five
   times.  Every extension reads the size the array reports, works a little,
   and writes size + 1: without a shared lock the two would overwrite each
   other.  They hold the same distributed lock, ``{volume_id}-extend``.
2. A caller asks for that lock without waiting while the other service holds
   it.  Upstream ``cinder.coordination.synchronized`` runs the function
   anyway, unlocked; ours refuses and raises ``LockAcquireFailed``.
"""

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time

OPERATIONS = 5
VOLUME = 'f3a1c0de-0000-4000-8000-000000000001'


def _coordinator(url, name):
    from oslo_config import cfg

    from cinder_resilience import coordination
    conf = cfg.ConfigOpts()
    coordination.register_opts(conf)
    conf([])
    coord = coordination.Coordinator(agent_id=name, prefix='cinder-',
                                     conf=conf, backend_url=url)
    coord.start()
    return coord


def service(url, name, array_file, journal, start_at):
    """One cinder-volume service extending the volume OPERATIONS times."""
    from cinder_resilience import coordination
    _quiet()
    coord = _coordinator(url, name)
    time.sleep(max(0.0, start_at - time.time()))

    @coordination.synchronized('{volume_id}-extend', coordinator=coord)
    def extend_volume(volume_id):
        lock = coord.held_locks()[0]
        with open(array_file) as f:
            size = json.load(f)['size']
        time.sleep(0.05)  # the array takes its time
        with open(array_file, 'w') as f:
            json.dump({'size': size + 1}, f)
        with open(journal, 'a') as f:
            f.write('%s %d %d %d\n' % (name, lock.fencing_token, size,
                                       size + 1))

    for _ in range(OPERATIONS):
        extend_volume(VOLUME)
        time.sleep(0.03)  # other requests of this service
    coord.stop()
    return 0


def _mounts():
    try:
        with open('/proc/mounts') as f:
            return f.read()
    except OSError:
        return ''


def _quiet():
    """The scene narrates the start warning once; keep logs to errors."""
    logging.getLogger('cinder_resilience').setLevel(logging.ERROR)
    logging.getLogger('kazoo').setLevel(logging.ERROR)


def _act_one(url, workdir):
    print('Act 1: hostA and hostB extend volume %s, %d times each, through '
          'the lock "%s-extend" on %s.' % (
              VOLUME[:8], OPERATIONS, VOLUME, url.split('?')[0]))
    array_file = os.path.join(workdir, 'array.json')
    journal = os.path.join(workdir, 'journal')
    with open(array_file, 'w') as f:
        json.dump({'size': 10}, f)
    start_at = repr(time.time() + 3)
    procs = [subprocess.Popen(
        [sys.executable, '-W', 'ignore', '-m', 'demo.scene_coordination',
         '--service', name, url, array_file, journal, start_at])
        for name in ('hostA', 'hostB')]
    for proc in procs:
        proc.wait(60)
    with open(journal) as f:
        entries = [line.split() for line in f]
    for host, token, before, after in entries:
        print('  %s  fencing token %-17s size %s -> %s GiB' % (
            host, token, before, after))
    tokens = [int(entry[1]) for entry in entries]
    with open(array_file) as f:
        final = json.load(f)['size']
    chained = all(int(a[3]) == int(b[2])
                  for a, b in zip(entries, entries[1:]))
    ok = (final == 10 + 2 * OPERATIONS and chained and
          tokens == sorted(set(tokens)) and
          all(p.returncode == 0 for p in procs))
    print('  The volume grew from 10 to %d GiB: %s. Each extension started '
          'from the size the previous one wrote, and fencing tokens only '
          'grew, so the array could refuse a late writer.' % (
              final, 'no extension was lost' if ok else 'SOMETHING WAS LOST'))
    return ok


def _act_two(url):
    print('\nAct 2: hostA holds the lock; a caller on hostB asks for it '
          'without waiting (blocking=False).')
    from cinder import coordination as cinder_coordination
    from oslo_config import cfg

    from cinder_resilience import coordination
    from cinder_resilience import exception
    holder = _coordinator(url, 'hostA')
    lock = holder.get_lock('%s-extend' % VOLUME)
    lock.acquire()
    ran = {'upstream': False, 'ours': False}

    cfg.CONF.set_override('backend_url', url, 'coordination')
    upstream = cinder_coordination.Coordinator(prefix='cinder-')
    upstream.start()

    @cinder_coordination.synchronized('{volume_id}-extend', blocking=False,
                                      coordinator=upstream)
    def upstream_extend(volume_id):
        ran['upstream'] = True

    ours = _coordinator(url, 'hostB')

    @coordination.synchronized('{volume_id}-extend', blocking=False,
                               coordinator=ours)
    def our_extend(volume_id):
        ran['ours'] = True

    upstream_extend(VOLUME)
    print('  upstream cinder.coordination: the function %s.' % (
        'RAN WITHOUT THE LOCK' if ran['upstream'] else 'did not run'))
    try:
        our_extend(VOLUME)
    except exception.LockAcquireFailed as exc:
        print('  cinder_resilience.coordination: LockAcquireFailed: %s' % exc)
    print('  ours: the function %s.' % (
        'ran' if ran['ours'] else 'did not run, the caller was told'))
    lock.release()
    for coord in (ours, holder, upstream):
        coord.stop()
    cfg.CONF.clear_override('backend_url', 'coordination')
    return ran == {'upstream': True, 'ours': False}


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m demo.scene_coordination',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('url', nargs='?',
                        help='tooz backend URL (default: a temp file:// dir)')
    parser.add_argument('--service', nargs=5, help=argparse.SUPPRESS,
                        metavar=('NAME', 'URL', 'ARRAY', 'JOURNAL', 'START'))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.service:
        name, url, array_file, journal, start_at = args.service
        return service(url, name, array_file, journal, float(start_at))
    workdir = tempfile.mkdtemp(prefix='demo-coordination-')
    url = args.url or 'file://' + os.path.join(workdir, 'locks')
    print(__doc__.split('\n\n', 1)[0].split(': ', 1)[1])
    from cinder_resilience import backends
    risk = backends.active_active_risk(url, _mounts())
    print('At start each service checks its backend. %s' % (
        'It warns: ' + risk if risk else 'No warning: this backend is '
        'safe for active-active.'))
    _quiet()
    try:
        ok = _act_one(url, workdir)
        ok = _act_two(url) and ok
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print('\nScene %s.' % ('showed what it promised' if ok else 'FAILED'))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
