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

"""Choosing the task manager by entry point name and patching ironic."""

from unittest import mock

import fixtures
from ironic.conductor import task_manager as ironic_task_manager
from ironic.tests.unit.db import base as db_base
from ironic.tests.unit.objects import utils as obj_utils
from oslotest import base
from stevedore import driver

from ironic_locking import exception
from ironic_locking import loader
from ironic_locking import opts
from ironic_locking import task_manager


class LoadTaskManagerTest(base.BaseTestCase):
    """The two names the distribution declares, and a missing one."""

    def test_default_is_ironic_class(self):
        self.assertIs(ironic_task_manager.TaskManager,
                      loader.load_task_manager('default'))

    def test_retrying_is_ours(self):
        self.assertIs(task_manager.TaskManager,
                      loader.load_task_manager('retrying'))

    def test_unknown_name(self):
        exc = self.assertRaises(exception.TaskManagerNotFound,
                                loader.load_task_manager, 'no-such-thing')
        self.assertIn('no-such-thing', str(exc))
        self.assertIn(loader.NAMESPACE, str(exc))


class InstallTest(db_base.DbTestCase):
    """ironic's module-level ``acquire`` builds the configured class."""

    def setUp(self):
        super().setUp()
        opts.register_opts(loader.CONF)
        self.addCleanup(loader.uninstall)
        self.node = obj_utils.create_test_node(self.context)

    def acquire_through_ironic(self):
        # The way ironic's conductor code calls it.
        return ironic_task_manager.acquire(self.context, self.node.uuid,
                                           purpose='test', load_driver=False)

    def test_install_routes_ironic_acquire(self):
        self.assertFalse(loader.installed())
        loader.install()
        self.assertTrue(loader.installed())
        with self.acquire_through_ironic() as task:
            self.assertIs(task_manager.TaskManager, type(task))

    def test_default_name_gives_ironic_class(self):
        self.config(task_manager='default', group='conductor')
        loader.install()
        with self.acquire_through_ironic() as task:
            self.assertIs(ironic_task_manager.TaskManager, type(task))

    def test_uninstall_restores_ironic(self):
        loader.install()
        loader.uninstall()
        self.assertFalse(loader.installed())
        with self.acquire_through_ironic() as task:
            self.assertIs(ironic_task_manager.TaskManager, type(task))

    def test_loaded_once(self):
        loader.install()
        with mock.patch.object(driver, 'DriverManager',
                               wraps=driver.DriverManager) as manager:
            for _ in range(3):
                with self.acquire_through_ironic():
                    pass
        self.assertEqual(1, manager.call_count)

    def test_bad_name_fails_the_lock_request_loudly(self):
        self.config(task_manager='typo', group='conductor')
        loader.install()
        self.assertRaises(exception.TaskManagerNotFound,
                          self.acquire_through_ironic)


class CheckConfigurationTest(db_base.DbTestCase):
    """What the console scripts run right after ironic reads its config."""

    def setUp(self):
        super().setUp()
        opts.register_opts(loader.CONF)
        self.addCleanup(loader.uninstall)

    def test_loads_the_configured_class(self):
        # ironic's first schema migration (alembic's fileConfig) disables
        # loggers that already existed; ours did.
        self.useFixture(fixtures.MockPatchObject(
            loader.LOG.logger, 'disabled', False))
        logs = self.useFixture(fixtures.FakeLogger(name='ironic_locking'))
        self.assertIs(task_manager.TaskManager,
                      loader.check_configuration())
        self.assertIn('Node locks are taken by task manager retrying',
                      logs.output)

    def test_unknown_name_names_the_option(self):
        self.config(task_manager='nosuch', group='conductor')
        error = self.assertRaises(exception.ConfigurationError,
                                  loader.check_configuration)
        self.assertEqual('[conductor] task_manager = nosuch: no such task '
                         'manager in the ironic_locking.task_managers entry '
                         'point namespace', str(error))

    def test_checks_the_retry_options(self):
        self.config(node_locked_retry_attempts=-3, group='conductor')
        error = self.assertRaises(exception.ConfigurationError,
                                  loader.check_configuration)
        self.assertIn('node_locked_retry_attempts', str(error))
