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

"""Add up the test counts of a tox log into one closing line.

Usage: python3 tools/summarize_tests.py LOG

Each tox command line (``ENV: commands[N]> ...``) names its runner, and
only that runner's summary lines are counted until tox's next step:

- stestr (and subunit-trace): the "Totals" block, `` - Passed: N``,
  `` - Failed: N``, `` - Skipped: N``;
- ``python -m unittest`` / ``testtools.run``: ``Ran N tests`` and the
  ``OK (skipped=K)`` or ``FAILED (failures=F, errors=E)`` line after it;
- pytest: the closing ``== 3 passed, 1 failed, 2 skipped in 1.2s ==``;
- tools/check_extras.py: ``check_extras: N passed, N failed``.

It prints one line per tox environment with tox's own verdict, then each
failed test's id with the end of its traceback (subunit-trace's
``{N} id [t] ... FAILED`` block, pytest's ``FAILED id`` line, unittest's
``FAIL: id``/``ERROR: id`` block), then
``Totals: N passed, N failed, N skipped``. A CI service often keeps only
the end of the log, so what failed and why must be there.

It exits 1 when a test failed, when tox reported an environment as failed,
when an environment ran a test runner that counted no test (a filter
matching nothing, a runner that crashed before its summary), or when no
test ran at all.
"""

import re
import sys

# Every tox step: venv>, install_deps>, commands_pre[0]>, commands[1]>, ...
STEP_RE = re.compile(r'^(?P<env>[\w.-]+): (?P<step>[\w\[\]]+)> (?P<cmd>.*)$')
VERDICT_RE = re.compile(r'^\s+(?P<env>[\w.-]+): (?P<verdict>OK|FAIL code '
                        r'-?\d+|SKIP)\b')
RUNNERS = (('check_extras', 'check_extras'), ('stestr', 'stestr'),
           ('subunit-trace', 'stestr'), ('pytest', 'pytest'),
           ('py.test', 'pytest'), ('unittest', 'unittest'),
           ('testtools.run', 'unittest'))
KINDS = ('passed', 'failed', 'skipped')

STESTR_RE = re.compile(r'^ - (?P<kind>Passed|Failed|Skipped): (?P<n>\d+)\s*$')
UNITTEST_RAN_RE = re.compile(r'^Ran (?P<n>\d+) tests? in ')
UNITTEST_END_RE = re.compile(r'^(?P<verdict>OK|FAILED)(?: \((?P<detail>.*)\))?'
                             r'\s*$')
PYTEST_RE = re.compile(r'^=+ (?P<detail>.*\d+ \w+.*) in [\d.]+s\b.*=+\s*$')
# A failed test and where its report ends.
FAILED_TEST_RES = (
    re.compile(r'^\{\d+\} (?P<id>\S+) (?:\[[^]]*\] )?\.\.\. FAILED'),
    re.compile(r'^FAILED (?!\()(?P<id>\S+)'),
    re.compile(r'^(?:FAIL|ERROR): (?P<id>\S+(?: \([\w.]+\))?)\s*$'),
)
REPORT_END_RE = re.compile(r'^(?:\{\d+\} |={6}|-{6,}$|Ran \d+ tests? |'
                           r'FAILED |(?:FAIL|ERROR): )')
EXCERPT_LINES = 15
EXCERPT_TESTS = 10
EXTRAS_RE = re.compile(r'^check_extras: (?P<passed>\d+) passed, '
                       r'(?P<failed>\d+) failed')


def runner_of(command):
    """The runner a tox command line starts, or None."""
    for word, runner in RUNNERS:
        if word in command:
            return runner
    return None


def _pairs(detail):
    """{'failures': 2, ...} from 'failures=2, skipped=1' or '2 passed'."""
    found = dict((k, int(v)) for k, v in re.findall(r'(\w+)=(\d+)', detail))
    found.update((k, int(v)) for v, k in re.findall(r'(\d+) (\w+)', detail))
    return found


class Env(object):
    """Counts and verdict of one tox environment."""

    def __init__(self):
        self.counts = dict.fromkeys(KINDS, 0)
        self.runs_tests = False
        self.verdict = None
        self.failures = []  # (test id, [report lines])
        self._report = None  # the failed test's report being read
        self._ran = None  # unittest: "Ran N" awaiting its OK/FAILED line

    def add(self, passed=0, failed=0, skipped=0):
        self.counts['passed'] += passed
        self.counts['failed'] += failed
        self.counts['skipped'] += skipped

    def total(self):
        return sum(self.counts.values())

    def line(self, runner, line):
        """Count ``line`` if it is ``runner``'s summary."""
        self._failure(line)
        getattr(self, '_' + runner)(line)

    def _failure(self, line):
        """Keep the id and report of a failed test."""
        for regex in FAILED_TEST_RES:
            match = regex.match(line)
            if match:
                self._report = []
                self.failures.append((match.group('id'), self._report))
                return
        if self._report is None:
            return
        if REPORT_END_RE.match(line):
            self._report = None
        elif line.strip() and not set(line.strip()) <= set('~'):
            self._report.append(line)

    def excerpts(self):
        """Lines naming each failed test, with the end of its report."""
        out = []
        for test_id, report in self.failures[:EXCERPT_TESTS]:
            out.append('FAILED %s' % test_id)
            out.extend('    ' + line for line in report[-EXCERPT_LINES:])
        if len(self.failures) > EXCERPT_TESTS:
            out.append('... and %d more failed tests'
                       % (len(self.failures) - EXCERPT_TESTS))
        return out

    def _stestr(self, line):
        match = STESTR_RE.match(line)
        if match:
            self.counts[match.group('kind').lower()] += int(match.group('n'))

    def _unittest(self, line):
        match = UNITTEST_RAN_RE.match(line)
        if match:
            self._ran = int(match.group('n'))
            return
        match = UNITTEST_END_RE.match(line)
        if match and self._ran is not None:
            detail = _pairs(match.group('detail') or '')
            failed = detail.get('failures', 0) + detail.get('errors', 0)
            skipped = detail.get('skipped', 0)
            self.add(self._ran - failed - skipped, failed, skipped)
            self._ran = None

    def _pytest(self, line):
        match = PYTEST_RE.match(line)
        if match:
            detail = _pairs(match.group('detail'))
            self.add(detail.get('passed', 0),
                     detail.get('failed', 0) + detail.get('error', 0)
                     + detail.get('errors', 0), detail.get('skipped', 0))

    def _check_extras(self, line):
        match = EXTRAS_RE.match(line)
        if match:
            self.add(int(match.group('passed')), int(match.group('failed')))


def tally(lines):
    """Return {env: Env} in the order the environments first appear."""
    envs = {}
    env = runner = None
    for line in lines:
        line = line.rstrip('\n')
        match = STEP_RE.match(line)
        if match:
            runner = None
            if match.group('step').startswith('commands['):
                # Not the packaging env (.pkg) and its build steps.
                env = envs.setdefault(match.group('env'), Env())
                runner = runner_of(match.group('cmd'))
                env.runs_tests = env.runs_tests or runner is not None
            continue
        match = VERDICT_RE.match(line)
        if match:
            envs.setdefault(match.group('env'), Env()).verdict = (
                match.group('verdict'))
            continue
        if runner is not None:
            env.line(runner, line)
    return envs


def problems(envs):
    """Why the run must fail, one line each (empty when it passed)."""
    found = []
    for name, env in envs.items():
        if env.verdict and env.verdict.startswith('FAIL'):
            found.append('%s: tox says %s' % (name, env.verdict))
        if env.runs_tests and env.total() == 0:
            found.append('%s: ran a test runner but counted 0 tests' % name)
        if env.counts['failed']:
            found.append('%s: %d failed' % (name, env.counts['failed']))
    if not any(env.counts['passed'] for env in envs.values()):
        found.append('no test passed at all')
    return found


def main(argv):
    with open(argv[1], encoding='utf-8', errors='replace') as log:
        envs = tally(log)
    total = dict.fromkeys(KINDS, 0)
    for name, env in envs.items():
        print('%-20s %5d passed %5d failed %5d skipped  %s'
              % ((name,) + tuple(env.counts[k] for k in KINDS)
                 + (env.verdict or 'no verdict',)))
        for kind in KINDS:
            total[kind] += env.counts[kind]
    for name, env in envs.items():
        for line in env.excerpts():
            print('%s: %s' % (name, line))
    found = problems(envs)
    for problem in found:
        print('ERROR: %s' % problem)
    print('Totals: %d passed, %d failed, %d skipped'
          % (total['passed'], total['failed'], total['skipped']))
    return 1 if found else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
