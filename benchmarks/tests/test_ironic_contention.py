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

"""The figures the benchmark and the demo publish (pure parts)."""

# ironic's command package selects oslo.service's threading backend; the
# harness imports ironic's conductor modules.
from ironic import command  # noqa: F401

from oslotest import base

from benchmarks import ironic_contention as contention


class PercentileTest(base.BaseTestCase):

    def test_nearest_rank(self):
        values = [5, 1, 4, 2, 3]
        self.assertEqual(3, contention.percentile(values, 0.5))
        self.assertEqual(5, contention.percentile(values, 0.99))
        self.assertEqual(1, contention.percentile(values, 0.0))

    def test_single_value(self):
        self.assertEqual(7, contention.percentile([7], 0.99))


class SummarizeTest(base.BaseTestCase):

    def test_figures(self):
        samples = [(0.0, True), (1.0, True), (2.0, False), (2.0, False)]
        figures = contention.summarize(samples, reserve_calls=9,
                                       duration=4.0)
        self.assertEqual(0.5, figures['failed_ratio'])
        self.assertEqual(1.0, figures['p50_wait_s'])
        self.assertEqual(2.0, figures['p99_wait_s'])
        self.assertEqual(0.5, figures['throughput_per_s'])
        self.assertEqual(4.5, figures['reserve_calls_per_acquire'])
        self.assertEqual(4, figures['requests'])

    def test_nothing_acquired(self):
        figures = contention.summarize([(2.0, False)], 3, 2.0)
        self.assertEqual(1.0, figures['failed_ratio'])
        self.assertIsNone(figures['reserve_calls_per_acquire'])
