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

"""The privileged commands: mdadm, nvme and one sysfs write, validated.

Every function here runs in the privsep daemon. It validates each
argument itself, builds an argument list (never a shell string) around
the executable named in the agent's configuration, and returns
``(exit code, stdout, stderr)``; deciding what a failure means is left to
the unprivileged caller (:mod:`os_brick_nvme_agent.executor`).
"""

import os
import subprocess

from oslo_config import cfg

from os_brick_nvme_agent import opts
from os_brick_nvme_agent import privileged
from os_brick_nvme_agent.privileged import validate

MDADM_OPERATIONS = {'fail': '--fail', 'remove': '--remove', 'add': '--add',
                    're-add': '--re-add'}


def _conf():
    opts.register_opts(cfg.CONF)
    return cfg.CONF.nvme_agent


def _execute(argv):
    """Run ``argv`` without a shell; the root-only execution boundary."""
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True,
                              timeout=_conf().command_timeout, check=False)
    except subprocess.TimeoutExpired:
        return 124, '', 'timed out after %ss' % _conf().command_timeout
    except OSError as exc:
        return 127, '', str(exc)
    return proc.returncode, proc.stdout, proc.stderr


def mdadm_manage_argv(operation, array, device):
    if operation not in MDADM_OPERATIONS:
        validate.reject('mdadm operation', operation)
    if operation == 'remove':
        member = validate.removable_device(device)
    else:
        member = validate.member_device(device)
    return [_conf().mdadm_path, '--manage', validate.md_device(array),
            MDADM_OPERATIONS[operation], member]


def fast_io_fail_tmo_path(ctrl):
    """sysfs file of controller ``ctrl``'s fast_io_fail_tmo under root_dir."""
    return os.path.join(_conf().root_dir, 'sys/class/nvme-fabrics/ctl',
                        validate.controller(ctrl), 'fast_io_fail_tmo')


def mdadm_detail_argv(array):
    return [_conf().mdadm_path, '--detail', '--export',
            validate.md_device(array)]


def nvme_connect_argv(transport, address, port, nqn, ctrl_loss_tmo):
    return [_conf().nvme_path, 'connect',
            '-t', validate.transport(transport),
            '-a', validate.address(address),
            '-s', validate.port(port),
            '-n', validate.nqn(nqn),
            '--ctrl-loss-tmo=' + validate.ctrl_loss_tmo(ctrl_loss_tmo)]


def nvme_disconnect_argv(nqn):
    return [_conf().nvme_path, 'disconnect', '-n', validate.nqn(nqn)]


@privileged.default.entrypoint
def mdadm_manage(operation, array, device):
    """mdadm --manage /dev/<array> --<operation> /dev/<device>."""
    return _execute(mdadm_manage_argv(operation, array, device))


@privileged.default.entrypoint
def mdadm_detail(array):
    """mdadm --detail --export /dev/<array>."""
    return _execute(mdadm_detail_argv(array))


@privileged.default.entrypoint
def nvme_connect(transport, address, port, nqn, ctrl_loss_tmo):
    """nvme connect -t T -a A -s P -n NQN --ctrl-loss-tmo=N."""
    return _execute(nvme_connect_argv(transport, address, port, nqn,
                                      ctrl_loss_tmo))


@privileged.default.entrypoint
def nvme_disconnect(nqn):
    """nvme disconnect -n NQN."""
    return _execute(nvme_disconnect_argv(nqn))


@privileged.default.entrypoint
def write_fast_io_fail_tmo(ctrl, seconds):
    """echo <seconds> > /sys/class/nvme-fabrics/ctl/<ctrl>/fast_io_fail_tmo."""
    value = validate.fast_io_fail_tmo(seconds)
    path = fast_io_fail_tmo_path(ctrl)
    try:
        # No O_CREAT: a controller that vanished must not leave a file.
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, (value + '\n').encode('ascii'))
        finally:
            os.close(fd)
    except OSError as exc:
        return 1, '', '%s: %s' % (path, exc)
    return 0, '', ''
