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

"""``os-brick-nvme-agent``: the daemon, its status table and the hook.

Usage::

    os-brick-nvme-agent [run] [--detach] [--config-file FILE ...]
    os-brick-nvme-agent status [--config-file FILE ...]
    os-brick-nvme-agent hook install|remove|status [--dir SITE_DIR]

Without ``--config-file`` the agent reads
``/etc/os-brick-nvme-agent/agent.conf`` when it exists.
"""

import errno
import fcntl
import functools
import os
import signal
import sys
import time

COMMANDS = ('run', 'status', 'hook')


def split_command(argv):
    """(command, rest): the first word if it is a command, else 'run'."""
    if argv and argv[0] in COMMANDS:
        return argv[0], list(argv[1:])
    return 'run', list(argv)


def detach():
    """Become a daemon: new session, fork, the parent exits at once.

    The os-brick hook starts us in a new session already; the fork makes
    the daemon a non-leader that can never acquire a terminal, and lets the
    hook reap its child at once.
    """
    if os.getsid(0) != os.getpid():
        os.setsid()
    if os.fork() > 0:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def load_conf(argv, conf=None):
    from oslo_config import cfg
    from oslo_log import log as logging

    from os_brick_nvme_agent import hook
    from os_brick_nvme_agent import opts
    conf = cfg.CONF if conf is None else conf
    logging.register_options(conf)
    opts.register_opts(conf)
    default = hook.config_file()
    conf(argv, project='os-brick-nvme-agent',
         default_config_files=[default] if os.path.exists(default) else [])
    return conf


def acquire_pid_lock(state_dir, attempts=20, wait=None):
    """Hold the single-instance lock; None if another agent holds it.

    A checker (the os-brick hook, ``status``) holds a shared lock for an
    instant; a few short retries keep such a check from turning away the
    only agent that is starting.
    """
    from os_brick_nvme_agent import hook
    wait = wait or time.sleep
    # Readable by the services whose hook checks the lock (e.g. nova).
    os.makedirs(state_dir, mode=0o755, exist_ok=True)
    fd = os.open(hook.pid_file(state_dir), os.O_RDWR | os.O_CREAT, 0o644)
    for attempt in range(attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            if attempt == attempts - 1:
                os.close(fd)
                return None
            wait(0.05)
    os.ftruncate(fd, 0)
    os.write(fd, b'%d\n' % os.getpid())
    return fd


def build_service(conf):
    from os_brick_nvme_agent import executor
    from os_brick_nvme_agent.host import snapshot
    from os_brick_nvme_agent.host import watcher
    from os_brick_nvme_agent import privileged
    from os_brick_nvme_agent.privileged import commands
    from os_brick_nvme_agent import provisioners
    from os_brick_nvme_agent import service
    from os_brick_nvme_agent import state
    group = conf.nvme_agent
    if group.privsep_in_process:
        privileged.default.set_client_mode(False)
    snap = functools.partial(snapshot.read_host_state, group.root_dir)
    return service.AgentService(
        conf, provisioner=provisioners.load(group.provisioner, conf),
        executor=executor.Executor(conf, commands, snap),
        store=state.StateStore(os.path.join(group.state_dir, 'state.json')),
        snapshot=snap,
        watcher=watcher.Watcher(group.root_dir, group.poll_interval))


def run(argv, conf=None):
    detach_requested = '--detach' in argv
    argv = [arg for arg in argv if arg != '--detach']
    if detach_requested:
        detach()
    from oslo_log import log as logging
    conf = load_conf(argv, conf)
    logging.setup(conf, 'os-brick-nvme-agent')
    log = logging.getLogger(__name__)
    if not conf.nvme_agent.enabled:
        log.info('[nvme_agent] enabled is false: nothing to do')
        return 0
    lock_fd = acquire_pid_lock(conf.nvme_agent.state_dir)
    if lock_fd is None:
        log.info('Another NVMe-oF healing agent is running')
        return 0
    from os_brick_nvme_agent import exception
    from os_brick_nvme_agent import service
    try:
        agent = build_service(conf)
    except (exception.ProvisionerNotFound, exception.ProvisionerError) as exc:
        # A configuration mistake: one clear line naming the option, no
        # traceback, and a non-zero exit the init system can see.
        log.error('Cannot start the NVMe-oF healing agent: %s', exc)
        os.close(lock_fd)
        return 2
    launcher = service.service.Launcher(conf)
    launcher.launch_service(agent)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_args: launcher.stop())
    # No terminal, nothing to reload: a stray SIGHUP must not kill it.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    launcher.wait()
    log.info('NVMe-oF healing agent stopped')
    os.close(lock_fd)
    return 0


# The status table -----------------------------------------------------------

def read_state(path):
    """(AgentState or None, note) without modifying the file."""
    from os_brick_nvme_agent import state
    try:
        with open(path, encoding='utf-8') as handle:
            return state.loads(handle.read()), ''
    except FileNotFoundError:
        return None, 'no state file yet (%s)' % path
    except (OSError, ValueError) as exc:
        return None, 'state file unreadable: %s' % exc


def _age(now, since):
    return '-' if since is None else '%ds' % max(0, now - since)


def leg_rows(host, agent_state, now):
    """One row per leg: array, volume, slot, device, state, NQN, replica."""
    rows = []
    for array in host.arrays:
        volume_id = (array.md_name or '').split(':', 1)[-1]
        record = agent_state.volume(volume_id) if agent_state else None
        by_nqn = {r.nqn: r for r in (record.replicas if record else ())}
        for leg in sorted(array.legs, key=lambda item: (
                item.slot is None, item.slot or 0)):
            rec = by_nqn.get(leg.subsysnqn)
            rows.append((array.name, array.md_name or '-',
                         '-' if leg.slot is None else str(leg.slot),
                         leg.device or '-', leg.state.value,
                         leg.subsysnqn or '-',
                         rec.replica_id if rec else '-',
                         _age(now, rec.faulty_since) if rec else '-'))
    return rows


def pending_rows(agent_state):
    from os_brick_nvme_agent import state
    rows = []
    for record in (agent_state.volumes if agent_state else ()):
        for item in record.pending:
            action = state.action_from_dict(item)
            detail = {k: v for k, v in item.items()
                      if k not in ('type', 'volume_id', 'replica')}
            if 'replica' in item:
                detail['replica'] = item['replica'].get('id')
            rows.append((record.volume_id, type(action).__name__,
                         ' '.join('%s=%s' % kv for kv in sorted(
                             detail.items()))))
    return rows


def table(header, rows):
    widths = [max(len(str(cell)) for cell in column)
              for column in zip(header, *rows)]
    lines = ['  '.join(str(cell).ljust(width)
                       for cell, width in zip(row, widths)).rstrip()
             for row in [header] + list(rows)]
    return '\n'.join(lines) + '\n'


def render_status(host, agent_state, now, running, note=''):
    text = 'agent: %s\n' % ('running' if running else 'not running')
    if note:
        text += 'state: %s\n' % note
    text += '\n' + table(('ARRAY', 'VOLUME', 'SLOT', 'DEVICE', 'LEG STATE',
                          'NQN', 'REPLICA', 'OUT FOR'),
                         leg_rows(host, agent_state, now))
    pending = pending_rows(agent_state)
    text += '\npending actions: %s\n' % (len(pending) or 'none')
    if pending:
        text += table(('VOLUME', 'ACTION', 'DETAIL'), pending)
    return text


def status(argv, out=sys.stdout, conf=None):
    from os_brick_nvme_agent import hook
    from os_brick_nvme_agent.host import snapshot
    conf = load_conf(argv, conf)
    group = conf.nvme_agent
    agent_state, note = read_state(os.path.join(group.state_dir,
                                                'state.json'))
    host = snapshot.read_host_state(group.root_dir)
    out.write(render_status(host, agent_state, time.time(),
                            hook.is_running(group.state_dir), note))
    return 0


def hook_command(argv, out=sys.stdout):
    from os_brick_nvme_agent import hook
    if not argv or argv[0] not in ('install', 'remove', 'status'):
        out.write('usage: os-brick-nvme-agent hook install|remove|status '
                  '[--dir SITE_DIR]\n')
        return 2
    directory = argv[argv.index('--dir') + 1] if '--dir' in argv else None
    if argv[0] == 'install':
        out.write('installed %s\n' % hook.install_pth(directory))
    elif argv[0] == 'remove':
        path = hook.remove_pth(directory)
        out.write('removed %s\n' % path if path else 'not installed\n')
    else:
        path, importable = hook.hook_status(directory)
        out.write('pth file: %s\nos_brick.initiator.connectors.nvmeof_agent '
                  'importable: %s\n' % (path or 'absent',
                                        'yes' if importable else 'no'))
        return 0 if importable else 1
    return 0


def main(argv=None):
    command, rest = split_command(sys.argv[1:] if argv is None else argv)
    if command == 'status':
        return status(rest)
    if command == 'hook':
        return hook_command(rest)
    return run(rest)


if __name__ == '__main__':
    sys.exit(main())
