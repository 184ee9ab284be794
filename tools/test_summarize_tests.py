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

"""Tests of tools/summarize_tests.py (run by tox -e extras)."""

import contextlib
import io
import os
import tempfile
import unittest

import summarize_tests

STESTR = '''\
py3: commands[0]> stestr --test-path ./cinder_resilience/tests/unit run
======
Totals
======
 - Passed: 10
 - Skipped: 2
 - Expected Fail: 0
 - Unexpected Success: 0
 - Failed: 1
Sum of execute time for each test: 3.1 sec.
py3: commands[1]> stestr --test-path ./ironic_locking/tests/unit run
 - Passed: 5
 - Skipped: 0
 - Failed: 0
'''
UNITTEST = '''\
upstream-cinder: commands[0]> python -m unittest discover cinder.tests
Ran 12 tests in 0.5s

FAILED (failures=1, errors=2, skipped=3)
'''
PYTEST = '''\
upstream-ironic: commands[0]> python -m pytest ironic/tests/unit
========== 7 passed, 1 failed, 2 skipped, 1 warning in 4.20s ==========
'''
EXTRAS = '''\
extras: commands[0]> python tools/check_extras.py
PASS cinder: venv with only [cinder] (3.0s)
check_extras: 17 passed, 0 failed (120s)
'''
REPORT = '''\
  py3: FAIL code 1 (30.00=setup[1.00]+cmd[29.00] seconds)
  upstream-cinder: FAIL code 1 (3.00 seconds)
  upstream-ironic: OK (4.00 seconds)
  extras: OK (120.00 seconds)
  evaluation failed :( (160.00 seconds)
'''


def counts(env):
    return tuple(env.counts[k] for k in summarize_tests.KINDS)


class TallyTest(unittest.TestCase):

    def tally(self, text):
        return summarize_tests.tally(text.splitlines(True))

    def test_each_runner(self):
        envs = self.tally(STESTR + UNITTEST + PYTEST + EXTRAS + REPORT)
        self.assertEqual((15, 1, 2), counts(envs['py3']))
        self.assertEqual((6, 3, 3), counts(envs['upstream-cinder']))
        self.assertEqual((7, 1, 2), counts(envs['upstream-ironic']))
        self.assertEqual((17, 0, 0), counts(envs['extras']))
        self.assertEqual('FAIL code 1', envs['py3'].verdict)
        self.assertEqual('OK', envs['extras'].verdict)

    def test_only_the_commands_runner_is_read(self):
        # A docs build printing "Ran 3 tests" or stestr-like lines is not
        # a test run.
        envs = self.tally('docs: commands[0]> sphinx-build doc/source x\n'
                          'Ran 3 tests in 1s\nOK\n - Passed: 4\n')
        self.assertEqual((0, 0, 0), counts(envs['docs']))
        self.assertFalse(envs['docs'].runs_tests)

    def test_steps_other_than_commands_end_a_run(self):
        envs = self.tally('py3: commands[0]> stestr run\n - Passed: 3\n'
                          '.pkg-cpython311: _optional_hooks> python x.py\n'
                          ' - Passed: 5\n'
                          'functional: commands_pre[0]> os-brick-nvme-agent'
                          ' hook install\n - Passed: 4\n'
                          'functional: commands[0]> stestr run\n'
                          ' - Passed: 1\n')
        self.assertEqual(['py3', 'functional'], list(envs))
        self.assertEqual((3, 0, 0), counts(envs['py3']))
        self.assertEqual((1, 0, 0), counts(envs['functional']))

    def test_runner_with_no_test_is_a_problem(self):
        envs = self.tally(
            'cluster: commands[0]> stestr --test-path x run nomatch\n'
            "The specified regex doesn't match with anything\n"
            'pep8: commands[0]> flake8\n'
            'py3: commands[0]> stestr run\n - Passed: 3\n')
        self.assertEqual(
            ['cluster: ran a test runner but counted 0 tests'],
            summarize_tests.problems(envs))

    def test_problems(self):
        envs = self.tally(STESTR + UNITTEST + PYTEST + EXTRAS + REPORT)
        self.assertEqual(['py3: tox says FAIL code 1', 'py3: 1 failed',
                          'upstream-cinder: tox says FAIL code 1',
                          'upstream-cinder: 3 failed',
                          'upstream-ironic: 1 failed'],
                         summarize_tests.problems(envs))
        self.assertEqual(['no test passed at all'],
                         summarize_tests.problems({}))


class MainTest(unittest.TestCase):

    def run_main(self, text):
        fd, path = tempfile.mkstemp()
        self.addCleanup(os.unlink, path)
        with os.fdopen(fd, 'w') as stream:
            stream.write(text)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = summarize_tests.main(['summarize_tests.py', path])
        self.assertRegex(out.getvalue(),
                         r'\nTotals: \d+ passed, \d+ failed, \d+ skipped\n$')
        return rc

    def test_passing_run(self):
        self.assertEqual(0, self.run_main(EXTRAS + '  extras: OK (1 s)\n'))

    def test_failing_run(self):
        self.assertEqual(1, self.run_main(STESTR))


FAILED_STESTR = '''\
functional: commands[0]> stestr --test-path ./x run
{0} x.test_a.T.test_ok [0.1s] ... ok
{1} x.test_a.T.test_bad [2.5s] ... FAILED

Captured traceback:
~~~~~~~~~~~~~~~~~~~
    Traceback (most recent call last):
      File "x/test_a.py", line 9, in test_bad
    AssertionError: 3 != 4

{0} x.test_a.T.test_ok2 [0.1s] ... ok
======
Totals
======
 - Passed: 2
 - Failed: 1
'''
FAILED_PYTEST = '''\
extras: commands[0]> python -m pytest tools
FAILED tools/test_x.py::test_y - assert 1 == 2
========== 1 passed, 1 failed in 1.0s ==========
'''


class FailureTest(unittest.TestCase):

    def test_failed_tests_are_named_with_their_traceback(self):
        envs = summarize_tests.tally(
            (FAILED_STESTR + FAILED_PYTEST + UNITTEST).splitlines(True))
        self.assertEqual(
            ['FAILED x.test_a.T.test_bad',
             '    Captured traceback:',
             '        Traceback (most recent call last):',
             '          File "x/test_a.py", line 9, in test_bad',
             '        AssertionError: 3 != 4'],
            envs['functional'].excerpts())
        self.assertEqual(['FAILED tools/test_x.py::test_y'],
                         envs['extras'].excerpts())
        # unittest's closing "FAILED (failures=1, ...)" names no test.
        self.assertEqual([], envs['upstream-cinder'].excerpts())

    def test_main_prints_them_before_the_totals(self):
        with tempfile.NamedTemporaryFile('w', suffix='.log',
                                         delete=False) as log:
            log.write(FAILED_STESTR)
        self.addCleanup(os.unlink, log.name)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = summarize_tests.main(['summarize_tests.py', log.name])
        self.assertEqual(1, rc)
        self.assertIn('functional: FAILED x.test_a.T.test_bad\n'
                      'functional:     Captured traceback:\n', out.getvalue())
        self.assertIn('AssertionError: 3 != 4', out.getvalue())


if __name__ == '__main__':
    unittest.main()
