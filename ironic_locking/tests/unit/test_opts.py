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

"""The option set: registered on demand, listed for the generator."""

from ironic.conf import conductor as ironic_conductor_conf
from oslo_config import cfg
from oslotest import base

from ironic_locking import opts


class OptsTest(base.BaseTestCase):

    def test_list_opts_is_conductor_group(self):
        groups = dict(opts.list_opts())
        self.assertEqual(['conductor'], list(groups))
        names = {opt.name for opt in groups['conductor']}
        self.assertEqual({'task_manager', 'node_locked_retry_strategy',
                          'node_locked_retry_initial_wait',
                          'node_locked_retry_max_wait',
                          'node_locked_retry_deadline'}, names)

    def test_every_option_documented_and_bounded(self):
        for opt in opts.OPTS:
            self.assertTrue(opt.help, opt.name)
            if isinstance(opt, cfg.FloatOpt):
                self.assertIsNotNone(opt.type.min, opt.name)
                self.assertIsNotNone(opt.type.max, opt.name)

    def test_no_rival_to_ironic_options(self):
        ironic_names = {opt.name for opt in ironic_conductor_conf.opts}
        self.assertIn('node_locked_retry_attempts', ironic_names)
        self.assertEqual(set(), ironic_names & {o.name for o in opts.OPTS})

    def test_register_next_to_ironic_and_idempotent(self):
        conf = cfg.ConfigOpts()
        ironic_conductor_conf.register_opts(conf)
        opts.register_opts(conf)
        opts.register_opts(conf)
        conf([])
        self.assertEqual('jittered-exponential',
                         conf.conductor.node_locked_retry_strategy)
        self.assertEqual(3, conf.conductor.node_locked_retry_attempts)
        self.assertEqual('retrying', conf.conductor.task_manager)

    def test_strategy_choices(self):
        conf = cfg.ConfigOpts()
        opts.register_opts(conf)
        conf([])
        self.assertRaises(ValueError, conf.set_override,
                          'node_locked_retry_strategy', 'random',
                          group='conductor')
