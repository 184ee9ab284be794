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

"""Pick the task manager by entry point name and put it into ironic.

ironic's conductor code calls ``task_manager.acquire(...)`` through the
module ``ironic.conductor.task_manager``. :func:`install` replaces that one
module attribute, ``acquire``, with :func:`acquire`, which builds the task
manager named by ``[conductor] task_manager`` (stevedore namespace
``ironic_locking.task_managers``). :func:`check_configuration` loads it,
and checks the retry options, when the service starts, right after ironic
has read its configuration: a name that is not installed stops the service
there. ironic's ``TaskManager`` class itself is left in place, so
``isinstance`` checks such as ``require_exclusive_lock`` keep working with
any subclass.
"""

import threading

from ironic.conductor import task_manager as ironic_task_manager
from oslo_config import cfg
from oslo_log import log as logging
from stevedore import driver

from ironic_locking import exception
from ironic_locking import opts

__all__ = ['NAMESPACE', 'load_task_manager', 'check_configuration',
           'acquire', 'install', 'uninstall', 'installed']

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

NAMESPACE = 'ironic_locking.task_managers'

_ORIGINAL_ACQUIRE = ironic_task_manager.acquire
_LOADED = {}
_LOAD_LOCK = threading.Lock()
_OPTS_REGISTERED = False


def load_task_manager(name):
    """Load the task manager class registered under ``name``.

    :param name: entry point name in ``ironic_locking.task_managers``.
    :returns: the class.
    :raises: TaskManagerNotFound if nothing loads under that name.
    """
    try:
        manager = driver.DriverManager(NAMESPACE, name, invoke_on_load=False)
    except Exception as error:
        # stevedore raises NoMatches or the plugin's own import error;
        # both mean the configuration points at nothing usable.
        raise exception.TaskManagerNotFound(
            'No task manager %r in namespace %s: %s' %
            (name, NAMESPACE, error)) from error
    return manager.driver


def configured_task_manager():
    """The class named by ``[conductor] task_manager``, loaded once.

    :returns: the task manager class.
    :raises: TaskManagerNotFound
    """
    global _OPTS_REGISTERED
    if not _OPTS_REGISTERED:
        opts.register_opts(CONF)
        _OPTS_REGISTERED = True
    name = CONF.conductor.task_manager
    cls = _LOADED.get(name)
    if cls is not None:
        return cls
    with _LOAD_LOCK:
        if name not in _LOADED:
            cls = load_task_manager(name)
            LOG.info('Node locks are taken by task manager %(name)s '
                     '(%(cls)s.%(qual)s)',
                     {'name': name, 'cls': cls.__module__,
                      'qual': cls.__qualname__})
            _LOADED[name] = cls
        return _LOADED[name]


def check_configuration(conf=CONF):
    """Load the configured task manager and check the retry options.

    Called when the service starts, once ironic has parsed its
    configuration, so that a wrong value stops it at once instead of
    failing every lock request.

    :param conf: ironic's CONF.
    :returns: the task manager class.
    :raises: ConfigurationError, in one line naming the option.
    """
    try:
        cls = configured_task_manager()
    except exception.TaskManagerNotFound as error:
        raise exception.ConfigurationError(
            '[conductor] task_manager = %s: no such task manager in the '
            '%s entry point namespace' % (conf.conductor.task_manager,
                                          NAMESPACE)) from error
    opts.check(conf)
    return cls


def acquire(context, *args, **kwargs):
    """ironic's ``acquire``, building the configured task manager.

    :param context: request context.
    :returns: a task manager instance.
    """
    context.ensure_thread_contain_context()
    return configured_task_manager()(context, *args, **kwargs)


def install():
    """Make ironic's ``task_manager.acquire`` go through :func:`acquire`."""
    ironic_task_manager.acquire = acquire


def uninstall():
    """Restore ironic's own ``acquire`` and forget the loaded class."""
    ironic_task_manager.acquire = _ORIGINAL_ACQUIRE
    with _LOAD_LOCK:
        _LOADED.clear()


def installed():
    """:returns: whether :func:`install` is in effect."""
    return ironic_task_manager.acquire is acquire
