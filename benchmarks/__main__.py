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

"""Run the side-by-side benchmarks: ``python -m benchmarks [--quick] [NAME]``.

Every benchmark measures upstream's behaviour and ours in the same run,
prints both as a table and writes ``benchmarks/results/<name>.json``.
"""

import argparse
import importlib
import sys
import time

BENCHMARKS = ('cinder_reinit', 'ironic_locking', 'coordination', 'nvme_agent')
# Real cinder deployments (RabbitMQ, MariaDB, cinder-api...): minutes each.
BENCHMARKS += ('cinder_cluster', 'cinder_reinit_cluster')
# Lock chaos on 3-member clusters (the long run).
BENCHMARKS += ('chaos',)
# Lock failover after a holder's SIGKILL, per backend.
BENCHMARKS += ('lock_failover',)


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog='python -m benchmarks',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='shorter runs (fewer samples), as CI uses')
    parser.add_argument('names', nargs='*', metavar='NAME',
                        help='benchmarks to run (default: all): %s'
                        % ', '.join(BENCHMARKS))
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error('unknown benchmark(s): %s' % ', '.join(sorted(unknown)))
    return args


def main(argv=None):
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    failed = []
    for name in args.names or BENCHMARKS:
        print('\n### benchmark %s' % name, flush=True)
        module = importlib.import_module('benchmarks.%s' % name)
        started = time.monotonic()
        rc = module.main(['--quick'] if args.quick else [])
        print('### %s finished in %.1f s (exit %s)'
              % (name, time.monotonic() - started, rc), flush=True)
        if rc:
            failed.append(name)
    if failed:
        print('benchmarks that failed: %s' % ', '.join(failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
