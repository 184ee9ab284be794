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

"""Polling, for the tests and benchmarks that drive real processes.

Every wait has a bound so that a broken build fails instead of hanging;
the bound is never an assertion on speed.
"""

import time


def wait_for(predicate, timeout, interval=0.2):
    """Poll ``predicate`` until true or ``timeout`` s; returns the result."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)


def wait_until(check, timeout, what, interval=0.1, tolerate=()):
    """Poll ``check`` until true, or raise RuntimeError naming ``what``.

    :param timeout: seconds before giving up
    :param tolerate: exception classes that count as "not yet" (a server
        still refusing connections, say)
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except tolerate:
            pass
        time.sleep(interval)
    raise RuntimeError('%s not ready after %.1f s' % (what, timeout))
