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

"""``os-brick-nvme-agent``: the daemon, its status, its journal, the hook.

Usage::

    os-brick-nvme-agent [run] [--detach] [--config-file FILE ...]
    os-brick-nvme-agent status [--config-file FILE ...]
    os-brick-nvme-agent events [--volume ID] [--last N] [--config-file ...]
    os-brick-nvme-agent hook install|remove|status [--dir SITE_DIR]

Without ``--config-file`` the agent reads
``/etc/os-brick-nvme-agent/agent.conf`` when it exists.

``run`` checks everything it can before it serves: the options, the log
destination, its dependencies, the state directory and the provisioner
plugin. A failure is one line on stderr (and in the log, once logging is
set up) and exit status 2; with ``--detach`` this happens before the
fork, so the caller (the os-brick hook) sees it.
"""

import importlib.util
import os
import signal
import sys

COMMANDS = ('run', 'status', 'events', 'hook')
EXTRA_HINT = ("os-brick-nvme-agent: os-brick is not installed: install "
              "openstack-resilience[os-brick]\n")


class StartError(Exception):
    """The agent cannot start; the message is the one line shown."""


def split_command(argv):
    """(command, rest): the first word if it is a command, else 'run'."""
    if argv and argv[0] in COMMANDS:
        return argv[0], list(argv[1:])
    return 'run', list(argv)


def load_conf(argv, conf=None):
    """Parse the command line and the config files.

    :raises StartError: a file is missing, unparsable, or an option of
        ``[nvme_agent]`` has an invalid value.
    """
    from oslo_config import cfg
    from oslo_log import log as logging

    from os_brick_nvme_agent import hook
    from os_brick_nvme_agent import opts
    conf = cfg.CONF if conf is None else conf
    logging.register_options(conf)
    opts.register_opts(conf)
    default = hook.config_file()
    try:
        conf(argv, project='os-brick-nvme-agent',
             default_config_files=[default] if os.path.exists(default)
             else [])
        opts.check(conf)
    except cfg.Error as exc:
        raise StartError(str(exc))
    return conf


def check_dependencies():
    """The daemon's libraries beyond the base requirements.

    :raises StartError: naming what to install.
    """
    for module in ('cotyledon', 'futurist'):
        if importlib.util.find_spec(module) is None:
            raise StartError(
                "oslo.service's threading backend is not installed (no "
                "module %s): install 'oslo.service[threading]>=4.2' or "
                "openstack-resilience[os-brick]" % module)
    from oslo_service import backend
    if not hasattr(backend, 'BackendType') or not hasattr(
            backend.BackendType, 'THREADING'):
        raise StartError("oslo.service is older than 4.2 and has no "
                         "threading backend: install "
                         "'oslo.service[threading]>=4.2'")


def setup_logging(conf, detach):
    """Set up oslo.log; a detached agent must log somewhere."""
    from oslo_log import log as logging
    if detach and not (conf.log_file or conf.use_syslog or
                       conf.use_journal):
        raise StartError('a detached agent has no terminal: set [DEFAULT] '
                         'log_file, use_syslog or use_journal in the agent '
                         'config file')
    try:
        logging.setup(conf, 'os-brick-nvme-agent')
    except OSError as exc:
        raise StartError('cannot open the log (%s): %s' % (
            conf.log_file or 'syslog', exc))


def build_service(conf):
    from os_brick_nvme_agent import daemon
    return daemon.build_service(conf)


def acquire_pid_lock(state_dir, attempts=20, wait=None):
    """Take the single-instance lock and record our pid in it.

    ``run`` records the launcher's pid here, before it forks, and the
    daemon's pid after.

    :returns: the lock's file descriptor, or None when another agent
        holds it.
    """
    from os_brick_nvme_agent import pidlock
    fd = pidlock.acquire(state_dir, attempts, wait)
    if fd is not None:
        pidlock.write_pid(fd)
    return fd


def prepare(argv, conf=None):
    """Everything ``run`` checks before it serves.

    :returns: (conf, lock fd or None, service or None).
    :raises StartError: on the first problem found.
    """
    detach = '--detach' in argv
    conf = load_conf([arg for arg in argv if arg != '--detach'], conf)
    setup_logging(conf, detach)
    group = conf.nvme_agent
    if not group.enabled:
        return conf, None, None
    check_dependencies()
    from os_brick_nvme_agent import exception
    try:
        lock_fd = acquire_pid_lock(group.state_dir)
    except OSError as exc:
        raise StartError('[nvme_agent] state_dir %s: %s' % (
            group.state_dir, exc))
    if lock_fd is None:
        return conf, None, None
    try:
        return conf, lock_fd, build_service(conf)
    except (exception.ProvisionerNotFound,
            exception.ProvisionerError) as exc:
        os.close(lock_fd)
        raise StartError(str(exc))
    except Exception:
        os.close(lock_fd)
        raise


def _fail(message, err):
    from oslo_log import log as logging
    logging.getLogger(__name__).error(
        'Cannot start the NVMe-oF healing agent: %s', message)
    err.write('os-brick-nvme-agent: error: %s\n' % message)
    return 2


def run(argv, conf=None, err=None):
    err = err or sys.stderr
    try:
        conf, lock_fd, agent = prepare(argv, conf)
    except StartError as exc:
        return _fail(str(exc), err)
    from oslo_log import log as logging
    log = logging.getLogger(__name__)
    if agent is None:
        log.info('[nvme_agent] enabled is false: nothing to do'
                 if not conf.nvme_agent.enabled
                 else 'Another NVMe-oF healing agent is running')
        return 0
    if '--detach' in argv:
        from os_brick_nvme_agent import daemonize
        daemonize.move_out(conf.nvme_agent.cgroup)
        daemonize.detach()
        from os_brick_nvme_agent import pidlock
        pidlock.write_pid(lock_fd)
    return serve(conf, agent, lock_fd, log)


def serve(conf, agent, lock_fd, log):
    from oslo_service import systemd

    from os_brick_nvme_agent import service
    launcher = service.service.Launcher(conf)
    launcher.launch_service(agent)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_args: launcher.stop())
    # No terminal, nothing to reload: a stray SIGHUP must not kill it.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    systemd.notify_once()   # Type=notify units: started and checked
    launcher.wait()
    log.info('NVMe-oF healing agent stopped')
    os.close(lock_fd)
    return 0


def _conf_or_fail(argv, err):
    try:
        return load_conf(argv)
    except StartError as exc:
        err.write('os-brick-nvme-agent: error: %s\n' % exc)
        return None


def main(argv=None, err=None):
    err = err or sys.stderr
    if importlib.util.find_spec('os_brick') is None:
        err.write(EXTRA_HINT)
        return 2
    command, rest = split_command(sys.argv[1:] if argv is None else argv)
    if command == 'hook':
        from os_brick_nvme_agent import hook_install
        return hook_install.command(rest)
    if command == 'run':
        return run(rest, err=err)
    from os_brick_nvme_agent.cmd import status
    conf = _conf_or_fail(_without_values(rest, ('--volume', '--last')), err)
    if conf is None:
        return 2
    if command == 'status':
        return status.command(conf)
    return status.events_command(conf, rest)


def _without_values(argv, names):
    """argv without ``NAME VALUE`` pairs for the given option names."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        else:
            out.append(arg)
    return out


if __name__ == '__main__':
    sys.exit(main())
