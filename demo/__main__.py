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

"""A guided tour of the plugins: ``python -m demo [SCENE ...]``.

Each scene runs the real host project on embedded defaults, narrates what
happens, and reports whether what it showed actually happened.
"""

import argparse
import importlib
import sys
import time
import warnings

# (module, one-line title), in the order a newcomer should see them.
SCENES = (
    ('cinder_reinit', 'cinder: a storage backend that comes up late'),
    ('coordination', 'cinder: two volume services sharing one backend'),
    ('ironic', 'ironic: API calls that meet a locked node'),
    ('nvme_agent', 'os-brick: a replica fails and the agent heals it'),
)


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog='python -m demo',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('scenes', nargs='*', metavar='SCENE',
                        help='scenes to run (default: all): %s'
                        % ', '.join(name for name, _ in SCENES))
    args = parser.parse_args(argv)
    unknown = set(args.scenes) - {name for name, _ in SCENES}
    if unknown:
        parser.error('unknown scene(s): %s' % ', '.join(sorted(unknown)))
    return args


def run_scene(name, title):
    banner = '== %s ' % title
    print('\n' + banner + '=' * max(0, 78 - len(banner)), flush=True)
    module = importlib.import_module('demo.scene_%s' % name)
    started = time.monotonic()
    rc = module.main([])
    elapsed = time.monotonic() - started
    verdict = 'OK' if rc == 0 else 'FAILED (exit %s)' % rc
    print('-- scene %s: %s in %.1f s' % (name, verdict, elapsed), flush=True)
    return rc == 0


def main(argv=None):
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    # cinder still imports eventlet, which announces its deprecation on
    # import: true, but not what a newcomer came to see.
    warnings.simplefilter('ignore', DeprecationWarning)
    wanted = args.scenes or [name for name, _ in SCENES]
    results = {name: run_scene(name, title)
               for name, title in SCENES if name in wanted}
    print('\nDemo summary:')
    for name, ok in results.items():
        print('  %-15s %s' % (name, 'ok' if ok else 'FAILED'))
    return 0 if all(results.values()) else 1


if __name__ == '__main__':
    sys.exit(main())
