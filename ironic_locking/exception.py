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

"""Exceptions of ironic_locking.

A lock request that cannot be satisfied still raises ironic's own
:class:`ironic.common.exception.NodeLocked` (so ironic's API keeps answering
HTTP 409 and the class survives ironic's RPC layers); the classes here cover
the plugin's own failures.
"""

__all__ = [
    'IronicLockingException',
    'TaskManagerNotFound',
    'ConfigurationError',
]


class IronicLockingException(Exception):
    """Base class of every error raised by ironic_locking itself."""


class TaskManagerNotFound(IronicLockingException):
    """No task manager is installed under the configured name."""


class ConfigurationError(IronicLockingException):
    """An option has a value the plugin cannot work with.

    The message is one line that names the option, ready to be printed
    when the service refuses to start.
    """
