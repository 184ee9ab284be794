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
argument itself, builds an argument list (never a shell string) and
returns ``(exit code, stdout, stderr)``; deciding what a failure means is
left to the unprivileged caller (:mod:`os_brick_nvme_agent.executor`).

What runs as root is not chosen by the configuration, which the
unprivileged agent can pass to the helper: the executables are the fixed
names ``mdadm`` and ``nvme``, found on the privileged process's own
``PATH`` (sudo's ``secure_path`` when the helper is started through
sudo), and sysfs is always written under ``/``. Only when the functions
run in the agent's own process (``privsep_in_process``, used by the
simulated host), where no privilege is gained, is ``root_dir`` honoured.
"""

import os
import subprocess

from oslo_config import cfg

from os_brick_nvme_agent import opts
from os_brick_nvme_agent import privileged
from os_brick_nvme_agent.privileged import validate

MDADM = 'mdadm'
NVME = 'nvme'
MDADM_OPERATIONS = {'fail': '--fail', 'remove': '--remove', 'add': '--add',
                    're-add': '--re-add'}


def _conf():
    opts.register_opts(cfg.CONF)
    return cfg.CONF.nvme_agent


def in_privsep_daemon():
    """True inside ``privsep-helper``, which registers these options."""
    return 'privsep_context' in cfg.CONF


def sysfs_root():
    """Where /sys is: ``/`` in the privileged daemon, else ``root_dir``."""
    return '/' if in_privsep_daemon() else _conf().root_dir


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
    return [MDADM, '--manage', validate.md_device(array),
            MDADM_OPERATIONS[operation], member]


def fast_io_fail_tmo_path(ctrl):
    """sysfs file of controller ``ctrl``'s fast_io_fail_tmo."""
    return os.path.join(sysfs_root(), 'sys/class/nvme-fabrics/ctl',
                        validate.controller(ctrl), 'fast_io_fail_tmo')


def nvme_connect_argv(transport, address, port, nqn, ctrl_loss_tmo):
    return [NVME, 'connect',
            '-t', validate.transport(transport),
            '-a', validate.address(address),
            '-s', validate.port(port),
            '-n', validate.nqn(nqn),
            '--ctrl-loss-tmo=' + validate.ctrl_loss_tmo(ctrl_loss_tmo)]


def nvme_disconnect_argv(nqn):
    return [NVME, 'disconnect', '-n', validate.nqn(nqn)]


@privileged.default.entrypoint
def mdadm_manage(operation, array, device):
    """mdadm --manage /dev/<array> --<operation> /dev/<device>."""
    return _execute(mdadm_manage_argv(operation, array, device))


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
