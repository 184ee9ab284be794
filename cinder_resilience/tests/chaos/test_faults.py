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

"""A pause starts only once every thread of the holder has stopped."""

import os
import signal
import subprocess
import sys

import testtools

from cinder_resilience.tests.chaos import faults
from cinder_resilience.tests import waiting

SLEEPER = ('import threading, time\n'
           'threading.Thread(target=time.sleep, args=(60,), daemon=True)'
           '.start()\n'
           'time.sleep(60)\n')


class AllStoppedTest(testtools.TestCase):

    def test_follows_sigstop_and_sigcont_on_every_thread(self):
        proc = subprocess.Popen([sys.executable, '-c', SLEEPER])
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        self.assertTrue(waiting.wait_for(
            lambda: len(os.listdir('/proc/%d/task' % proc.pid)) == 2, 30))
        self.assertFalse(faults._all_stopped(proc.pid))
        os.kill(proc.pid, signal.SIGSTOP)
        self.assertTrue(waiting.wait_for(
            lambda: faults._all_stopped(proc.pid), 30))
        os.kill(proc.pid, signal.SIGCONT)
        self.assertTrue(waiting.wait_for(
            lambda: not faults._all_stopped(proc.pid), 30))

    def test_a_gone_process_is_not_stopped(self):
        proc = subprocess.Popen([sys.executable, '-c', 'pass'])
        proc.wait()
        self.assertFalse(faults._all_stopped(proc.pid))
