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
import testtools

from os_brick_nvme_agent import opts


class OptsTest(testtools.TestCase):

    def test_list_opts_groups(self):
        groups = dict(opts.list_opts())
        self.assertIn('nvme_agent', groups)
        self.assertIn('privsep_nvme_agent', groups)
        self.assertIn('provisioner_static', groups)
        names = {opt.name for opt in groups['nvme_agent']}
        for name in ('enabled', 'provisioner', 'poll_interval',
                     'grace_period', 'state_dir', 'root_dir', 'start_method',
                     'systemd_unit', 'cgroup', 'journal_max_events',
                     'metrics_file', 'privsep_in_process'):
            self.assertIn(name, names)
        # what runs as root is not chosen by the config (issue 12)
        self.assertFalse({'mdadm_path', 'nvme_path'} & names)

    def test_every_option_has_help_and_numeric_bounds(self):
        for _group, options in opts.list_opts():
            for opt in options:
                self.assertTrue(opt.help, opt.name)
        for opt in opts.AGENT_OPTS:
            if isinstance(opt, (cfg.IntOpt, cfg.FloatOpt)):
                self.assertIsNotNone(opt.type.min, opt.name)
                self.assertIsNotNone(opt.type.max, opt.name)

    def test_defaults(self):
        conf = cfg.ConfigOpts()
        opts.register_opts(conf)
        opts.register_opts(conf)    # idempotent
        conf([])
        self.assertFalse(conf.nvme_agent.enabled)
        self.assertEqual('/', conf.nvme_agent.root_dir)
        self.assertFalse(conf.nvme_agent.privsep_in_process)
        self.assertRaises(ValueError, conf.set_override, 'poll_interval',
                          0.0, group='nvme_agent')
