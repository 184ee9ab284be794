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

"""Carry out the engine's host actions through the privileged commands.

:class:`Executor` maps each host action (connect a replica, add, re-add,
fail or remove a leg, disconnect a controller) onto one privileged
command and raises :class:`~os_brick_nvme_agent.exception.HostCommandFailed`
when it fails. Before failing or removing a leg it re-reads the host and
refuses (:class:`~os_brick_nvme_agent.exception.UnsafeAction`) if that
leg is the last in-sync one: the engine never asks for it, and this
second check costs one sysfs read.
"""

from oslo_log import log as logging

from os_brick_nvme_agent import exception
from os_brick_nvme_agent import model

LOG = logging.getLogger(__name__)

HOST_ACTIONS = (model.ConnectReplica, model.AddLeg, model.ReAddLeg,
                model.FailLeg, model.RemoveLeg, model.DisconnectController)


def _already_connected(exit_code, stdout, stderr):
    # nvme-cli reports an existing connection as EALREADY (114), 70 in
    # old versions, or exit code 1 with 'already connected' in the text.
    return exit_code in (70, 114) or (
        exit_code == 1 and 'already connected' in (stdout + stderr))


def last_in_sync(host, array_name, device):
    """True when ``device`` is the only in-sync leg of ``array_name``."""
    for array in host.arrays:
        if array.name == array_name:
            in_sync = array.in_sync_legs()
            return len(in_sync) == 1 and in_sync[0].device == device
    return False


class Executor(object):
    """Apply host actions.

    :param conf: the agent's ConfigOpts (``[nvme_agent]`` registered).
    :param commands: the privileged command module (tests inject one).
    :param snapshot: callable returning a fresh :class:`model.HostState`.
    """

    def __init__(self, conf, commands, snapshot):
        self.conf = conf
        self.commands = commands
        self.snapshot = snapshot
        self._handlers = {
            model.ConnectReplica: self._connect,
            model.AddLeg: self._mdadm('add'),
            model.ReAddLeg: self._mdadm('re-add'),
            model.FailLeg: self._guarded('fail'),
            model.RemoveLeg: self._guarded('remove'),
            model.DisconnectController: self._disconnect,
        }

    def handles(self, action):
        return type(action) in self._handlers

    def apply(self, action):
        """Carry out one host action.

        :raises HostCommandFailed: the command ran and failed.
        :raises UnsafeAction: the action would drop the last in-sync leg.
        :raises InvalidArgument: an argument failed validation.
        """
        handler = self._handlers.get(type(action))
        if handler is None:
            raise exception.NVMeAgentException(
                'not a host action: %r' % (action,))
        LOG.info('Applying %s', action)
        handler(action)

    @staticmethod
    def _check(argv_hint, result):
        exit_code, stdout, stderr = result
        if exit_code != 0:
            raise exception.HostCommandFailed(argv_hint, exit_code, stdout,
                                              stderr)
        return stdout

    def _mdadm(self, operation):
        def run(action):
            self._check(['mdadm', '--' + operation, action.array,
                         action.device],
                        self.commands.mdadm_manage(operation, action.array,
                                                   action.device))
        return run

    def _guarded(self, operation):
        run = self._mdadm(operation)

        def guarded(action):
            if last_in_sync(self.snapshot(), action.array, action.device):
                raise exception.UnsafeAction(
                    'refusing to %s %s: last in-sync leg of %s' % (
                        operation, action.device, action.array))
            run(action)
        return guarded

    def _connect(self, action):
        replica = action.replica
        errors = []
        for portal in replica.portals:
            result = self.commands.nvme_connect(
                portal.transport, portal.address, portal.port, replica.nqn,
                self.conf.nvme_agent.ctrl_loss_tmo)
            if result[0] == 0 or _already_connected(*result):
                return
            LOG.warning('nvme connect to %s at %s:%s failed: %s',
                        replica.nqn, portal.address, portal.port,
                        (result[2] or result[1]).strip())
            errors.append(result)
        exit_code, stdout, stderr = errors[-1] if errors else (1, '', '')
        raise exception.HostCommandFailed(
            ['nvme', 'connect', '-n', replica.nqn], exit_code, stdout,
            stderr or 'no portal could be connected')

    def _disconnect(self, action):
        self._check(['nvme', 'disconnect', '-n', action.nqn],
                    self.commands.nvme_disconnect(action.nqn))
