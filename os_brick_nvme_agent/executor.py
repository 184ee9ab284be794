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

A faulty leg is removed with ``mdadm --remove failed``, which finds the
array's faulty members through the array itself: naming the device makes
mdadm open it, and opening a leg whose target is lost can block.
:meth:`Executor.tune_controllers` gives the controllers behind the legs of
managed arrays the configured ``fast_io_fail_tmo``, so that md sees such a
leg fail at all.
"""

from oslo_log import log as logging

from os_brick_nvme_agent import exception
from os_brick_nvme_agent.host import fabrics
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


def leg_state(host, array_name, device):
    """State of member ``device`` of ``array_name`` in ``host``, or None."""
    for array in host.arrays:
        if array.name == array_name:
            for leg in array.legs:
                if leg.device == device:
                    return leg.state
    return None


def leg_controllers(host, md_names):
    """Names of the controllers behind the legs of the named arrays.

    :param md_names: metadata names (with or without the ``host:`` prefix)
        of the arrays the agent manages.
    :returns: sorted tuple of controller names ('nvme1', ...).
    """
    wanted = set(md_names)
    devices = set()
    for array in host.arrays:
        name = array.md_name
        if name and (name in wanted or name.split(':', 1)[-1] in wanted):
            devices.update(leg.device for leg in array.legs if leg.device)
    return tuple(sorted(ctrl.name for ctrl in host.controllers
                        if devices.intersection(ctrl.namespaces)))


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
            model.RemoveLeg: self._guarded('remove', self._remove_argument),
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
        def run(action, device=None):
            device = device or action.device
            self._check(['mdadm', '--' + operation, action.array, device],
                        self.commands.mdadm_manage(operation, action.array,
                                                   device))
        return run

    @staticmethod
    def _remove_argument(host, action):
        # 'failed' removes every faulty member without opening any; the
        # engine removes each faulty leg anyway before re-adding it or
        # letting it go, so none is kept that it wanted.
        state = leg_state(host, action.array, action.device)
        if state is model.LegState.FAULTY:
            return 'failed'
        return action.device

    def _guarded(self, operation, argument=None):
        run = self._mdadm(operation)

        def guarded(action):
            host = self.snapshot()
            if last_in_sync(host, action.array, action.device):
                raise exception.UnsafeAction(
                    'refusing to %s %s: last in-sync leg of %s' % (
                        operation, action.device, action.array))
            run(action, argument(host, action) if argument else None)
        return guarded

    def tune_controllers(self, host, md_names):
        """Set fast_io_fail_tmo on the controllers behind managed legs.

        Only a value that differs is written; a failure is logged and the
        next pass tries again.

        :returns: names of the controllers changed.
        """
        wanted = self.conf.nvme_agent.fast_io_fail_tmo
        if wanted == -1:
            return ()
        root = self.conf.nvme_agent.root_dir
        changed = []
        for ctrl in leg_controllers(host, md_names):
            current = fabrics.read_fast_io_fail_tmo(root, ctrl)
            if current is None or current == wanted:
                continue    # gone, unreadable, or already right
            exit_code, _out, err = self.commands.write_fast_io_fail_tmo(
                ctrl, wanted)
            if exit_code != 0:
                LOG.warning('Could not set fast_io_fail_tmo of %s: %s',
                            ctrl, err.strip())
                continue
            LOG.info('Set fast_io_fail_tmo of controller %s from %s to %s',
                     ctrl, current, wanted)
            changed.append(ctrl)
        return tuple(changed)

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
