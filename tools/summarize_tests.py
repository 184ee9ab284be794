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

"""Add up the stestr totals of a tox log into one closing line.

Usage: python3 tools/summarize_tests.py LOG

stestr prints a "Totals" block per run (" - Passed: N", " - Failed: N",
" - Skipped: N"). This prints one line per tox environment and then
"Totals: N passed, N failed, N skipped". It exits 1 when a test failed or
when no test ran at all.
"""

import re
import sys

ENV_RE = re.compile(r'^(?P<env>[\w.-]+): commands\[\d+\]')
COUNT_RE = re.compile(r'^ - (?P<kind>Passed|Failed|Skipped): (?P<n>\d+)\s*$')


def tally(lines):
    """Return {env: {'Passed': n, 'Failed': n, 'Skipped': n}}."""
    per_env = {}
    env = 'unknown'
    for line in lines:
        match = ENV_RE.match(line)
        if match:
            env = match.group('env')
            continue
        match = COUNT_RE.match(line.rstrip('\n'))
        if match:
            counts = per_env.setdefault(env, {'Passed': 0, 'Failed': 0,
                                              'Skipped': 0})
            counts[match.group('kind')] += int(match.group('n'))
    return per_env


def main(argv):
    with open(argv[1], encoding='utf-8', errors='replace') as log:
        per_env = tally(log)
    total = {'Passed': 0, 'Failed': 0, 'Skipped': 0}
    for env, counts in sorted(per_env.items()):
        print('%-20s %5d passed %5d failed %5d skipped'
              % (env, counts['Passed'], counts['Failed'], counts['Skipped']))
        for kind in total:
            total[kind] += counts[kind]
    print('Totals: %d passed, %d failed, %d skipped'
          % (total['Passed'], total['Failed'], total['Skipped']))
    return 1 if total['Failed'] or not total['Passed'] else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
