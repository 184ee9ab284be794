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

import fixtures
from ironic.conf import conductor as ironic_conductor_conf
from oslo_config import cfg
from oslotest import base

from ironic_locking import exception
from ironic_locking import opts


class OptsTest(base.BaseTestCase):

    def test_list_opts_is_conductor_group(self):
        groups = dict(opts.list_opts())
        self.assertEqual(['conductor'], list(groups))
        names = {opt.name for opt in groups['conductor']}
        self.assertEqual({'task_manager', 'node_locked_retry_strategy',
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
        self.assertEqual('jittered',
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


class CheckTest(base.BaseTestCase):
    """Values the plugin refuses at start, each named in one line."""

    def setUp(self):
        super().setUp()
        self.conf = cfg.ConfigOpts()
        ironic_conductor_conf.register_opts(self.conf)
        opts.register_opts(self.conf)
        self.conf([])
        # ironic's schema migrations in other tests of the same process
        # run alembic's fileConfig(), which disables existing loggers.
        self.useFixture(fixtures.MockPatchObject(
            opts.LOG.logger, 'disabled', False))
        self.logs = self.useFixture(fixtures.FakeLogger(
            name='ironic_locking.opts'))

    def set(self, **values):
        for name, value in values.items():
            self.conf.set_override(name, value, group='conductor')

    def refused(self):
        error = self.assertRaises(exception.ConfigurationError,
                                  opts.check, self.conf)
        self.assertNotIn('\n', str(error))
        return str(error)

    def test_defaults_pass(self):
        opts.check(self.conf)
        self.assertEqual('', self.logs.output)

    def test_negative_attempts(self):
        self.set(node_locked_retry_attempts=-1)
        self.assertIn('[conductor] node_locked_retry_attempts = -1',
                      self.refused())

    def test_zero_attempts_is_a_warning(self):
        self.set(node_locked_retry_attempts=0)
        opts.check(self.conf)
        self.assertIn('retrying is disabled', self.logs.output)

    def test_negative_interval(self):
        self.set(node_locked_retry_interval=-1)
        self.assertIn('node_locked_retry_interval = -1', self.refused())

    def test_unknown_strategy_in_file(self):
        path = self.useFixture(fixtures.TempDir()).path + '/ironic.conf'
        with open(path, 'w') as conf:
            conf.write('[conductor]\nnode_locked_retry_strategy = '
                       'jittered-exponential\n')
        self.conf(['--config-file', path])
        message = self.refused()
        self.assertTrue(message.startswith(
            '[conductor] node_locked_retry_strategy: '), message)
        self.assertIn('jittered-exponential', message)
