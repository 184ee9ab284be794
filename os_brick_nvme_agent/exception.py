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

"""Exceptions of the NVMe-oF healing agent.

Every error the agent raises derives from :class:`NVMeAgentException`.
Errors coming from outside (REST calls, subprocesses, files) are translated
into these classes at the edge that talks to the outside.
"""

__all__ = [
    'NVMeAgentException',
    'ProvisionerUnavailable',
    'MalformedReply',
    'InvalidArgument',
    'ProvisionerNotFound',
    'ProvisionerError',
    'UnknownVolume',
    'UnknownReplica',
    'HostCommandFailed',
    'UnsafeAction',
]


class NVMeAgentException(Exception):
    """Base class of every error raised by the agent."""


class ProvisionerUnavailable(NVMeAgentException):
    """The provisioner cannot be reached now; back off and touch nothing."""


class MalformedReply(NVMeAgentException):
    """The provisioner answered something the agent cannot use."""


class InvalidArgument(NVMeAgentException):
    """A privileged-command argument failed validation."""


class ProvisionerNotFound(NVMeAgentException):
    """No provisioner plugin is installed under the configured name."""


class ProvisionerError(NVMeAgentException):
    """The provisioner refused or failed an operation it understood."""


class UnknownVolume(ProvisionerError):
    """The provisioner does not know the volume named in a request."""


class UnknownReplica(ProvisionerError):
    """The provisioner does not know the replica named in a request."""


class HostCommandFailed(NVMeAgentException):
    """A privileged mdadm/nvme command ran and failed."""

    def __init__(self, argv, exit_code, stdout='', stderr=''):
        self.argv = list(argv)
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        super().__init__('%s exited with %s: %s' % (
            ' '.join(self.argv), exit_code, (stderr or stdout).strip()))


class UnsafeAction(NVMeAgentException):
    """An action would fail or remove the last in-sync leg of an array."""
