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

from oslo_config import cfg
from oslotest import base

from cinder_resilience import opts


class OptsTest(base.BaseTestCase):

    def test_list_opts_groups(self):
        groups = dict(opts.list_opts())
        self.assertIn('DEFAULT', groups)
        names = {opt.name for opt in groups['DEFAULT']}
        self.assertEqual({'reinit_driver_max_interval', 'reinit_driver_jitter',
                          'reinit_driver_background',
                          'reinit_driver_probe_interval',
                          'reinit_driver_permanent_errors',
                          'dead_member_cleanup',
                          'dead_member_cleanup_interval'}, names)

    def test_cinder_option_is_reused_not_registered(self):
        for _group, group_opts in opts.list_opts():
            self.assertNotIn('reinit_driver_count',
                             [opt.name for opt in group_opts])

    def test_every_option_documented_and_bounded(self):
        for _group, group_opts in opts.list_opts():
            for opt in group_opts:
                self.assertTrue(opt.help, opt.name)
                if isinstance(opt, (cfg.IntOpt, cfg.FloatOpt)):
                    self.assertIsNotNone(opt.type.min, opt.name)
                    self.assertIsNotNone(opt.type.max, opt.name)

    def test_list_opts_returns_copies(self):
        listed = dict(opts.list_opts())['DEFAULT']
        self.assertIsNot(listed[0], opts.REINIT_OPTS[0])

    def test_register_is_idempotent_and_defaults(self):
        conf = cfg.ConfigOpts()
        opts.register_opts(conf)
        opts.register_opts(conf)
        conf([])
        self.assertTrue(conf.reinit_driver_background)
        self.assertEqual(30, conf.reinit_driver_max_interval)
        self.assertEqual(0.2, conf.reinit_driver_jitter)
        self.assertEqual(opts.DEFAULT_PERMANENT_ERRORS,
                         conf.reinit_driver_permanent_errors)

    def test_registers_nothing_at_import(self):
        conf = cfg.ConfigOpts()
        conf([])
        self.assertRaises(cfg.NoSuchOptError, getattr, conf,
                          'reinit_driver_jitter')
