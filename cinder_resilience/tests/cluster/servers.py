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

"""Processes of the cluster environment: RabbitMQ, MariaDB and a base.

Each runs on 127.0.0.1, on free ports, in its own session (so a kill reaches
the whole process group) with its work dir under the deployment's root.
RabbitMQ and MariaDB drop to their system users (``rabbitmq``, ``mysql``),
so their dirs are handed to those users. RabbitMQ gets its own epmd on a
free port (``ERL_EPMD_PORT``), killed when the broker stops, so that no
other broker on the machine is disturbed.
"""

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time

from cinder_resilience.tests.functional import servers as coord_servers
from cinder_resilience.tests import waiting

free_port = coord_servers.free_port
port_open = coord_servers.port_open


wait_until = waiting.wait_until


def missing_binaries(names):
    """The names in ``names`` that are not on PATH (sbin included)."""
    path = os.environ.get('PATH', '') + ':/usr/sbin:/sbin'
    return [n for n in names if shutil.which(n, path=path) is None]


class Process(object):
    """One long-running process; subclasses give command, env, ready()."""

    name = None
    start_timeout = 120.0

    def __init__(self, workdir):
        self.workdir = workdir
        self.process = None
        self.killed = False
        os.makedirs(workdir, exist_ok=True)

    @property
    def log_file(self):
        return os.path.join(self.workdir, '%s.out' % self.name)

    def command(self):
        raise NotImplementedError

    def env(self):
        return dict(os.environ)

    def ready(self):
        return True

    def start(self, wait=True):
        with open(self.log_file, 'ab') as out:
            self.process = subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=self.env(), cwd=self.workdir,
                start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=None):
        def ready_or_dead():
            if self.process.poll() is not None:
                raise RuntimeError('%s exited (rc %s) at start; see %s' % (
                    self.name, self.process.returncode, self.log_file))
            return self.ready()
        wait_until(ready_or_dead, timeout or self.start_timeout, self.name)

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def _signal(self, sig):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def stop(self, timeout=15.0):
        """SIGTERM the group, SIGKILL it after ``timeout`` s.

        :returns: seconds the process took to exit; ``killed`` tells whether
                  it needed the SIGKILL
        """
        if not self.alive():
            return 0.0
        began = time.monotonic()
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.killed = True
            self.kill()
        return time.monotonic() - began

    def kill(self):
        """SIGKILL the whole process group, no chance to clean up."""
        if self.process is None:
            return
        self._signal(signal.SIGKILL)
        self.process.wait()


class RabbitMQ(Process):
    """rabbitmq-server with a unique node name and its own epmd."""

    name = 'rabbitmq'

    def __init__(self, workdir):
        super().__init__(workdir)
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = 'cluster%d%s@localhost' % (
            os.getpid(), secrets.token_hex(3))
        self.password = secrets.token_hex(8)
        plugins = os.path.join(workdir, 'enabled_plugins')
        with open(plugins, 'w') as f:
            f.write('[].\n')
        for sub in ('mnesia', 'log'):
            os.makedirs(os.path.join(workdir, sub), exist_ok=True)
        _give_to(workdir, 'rabbitmq')

    @property
    def url(self):
        return 'rabbit://guest:guest@127.0.0.1:%d/' % self.port

    def env(self):
        env = dict(os.environ)
        env.update(
            RABBITMQ_NODE_IP_ADDRESS='127.0.0.1',
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_MNESIA_BASE=os.path.join(self.workdir, 'mnesia'),
            RABBITMQ_LOG_BASE=os.path.join(self.workdir, 'log'),
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.workdir,
                                                       'enabled_plugins'),
            RABBITMQ_PID_FILE=os.path.join(self.workdir, 'rabbitmq.pid'),
            RABBITMQ_CONFIG_FILE=os.path.join(self.workdir, 'rabbitmq'),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS='127.0.0.1')
        return env

    def command(self):
        return ['rabbitmq-server']

    def ready(self):
        return port_open(self.port)

    def stop(self, timeout=30.0):
        if self.alive():
            subprocess.run(['rabbitmqctl', '-n', self.node, 'stop'],
                           env=self.env(), capture_output=True,
                           timeout=timeout, check=False)
        took = super().stop(timeout)
        # The script may exit before the VM has halted.
        wait_until(lambda: not port_open(self.dist_port), timeout,
                   'rabbitmq halt')
        # The epmd of this broker (no other node uses its port). It
        # refuses to die while the node is still registered.
        wait_until(self._kill_epmd, timeout, 'epmd exit', interval=0.5)
        return took

    def _kill_epmd(self):
        subprocess.run(['epmd', '-kill'], env=self.env(),
                       capture_output=True, timeout=10, check=False)
        return not port_open(self.epmd_port)


class MariaDB(Process):
    """mariadbd with a fresh data dir and one database for cinder."""

    name = 'mariadb'

    def __init__(self, workdir, database='cinder', user='cinder'):
        super().__init__(workdir)
        self.port = free_port()
        self.database = database
        self.user = user
        self.password = secrets.token_hex(12)
        self.socket = os.path.join(workdir, 'mysqld.sock')
        _give_to(workdir, 'mysql')
        run(['mariadb-install-db', '--no-defaults',
             '--datadir=%s' % os.path.join(workdir, 'data'),
             '--user=mysql', '--skip-test-db',
             '--auth-root-authentication-method=socket'], timeout=120)

    @property
    def url(self):
        return 'mysql+pymysql://%s:%s@127.0.0.1:%d/%s?charset=utf8' % (
            self.user, self.password, self.port, self.database)

    def command(self):
        return ['mariadbd', '--no-defaults',
                '--datadir=%s' % os.path.join(self.workdir, 'data'),
                '--port=%d' % self.port, '--bind-address=127.0.0.1',
                '--socket=%s' % self.socket, '--user=mysql',
                '--skip-name-resolve', '--innodb-buffer-pool-size=64M',
                '--innodb-flush-log-at-trx-commit=0',
                '--max-connections=500',
                '--log-error=%s' % os.path.join(self.workdir, 'error.log')]

    def ready(self):
        return port_open(self.port) and self._sql('SELECT 1', check=False)

    def _sql(self, statement, check=True):
        result = subprocess.run(
            ['mariadb', '--no-defaults', '-S', self.socket, '-uroot',
             '-e', statement], capture_output=True, timeout=30, check=False)
        if check and result.returncode:
            raise RuntimeError('mariadb: %s' % result.stderr.decode())
        return result.returncode == 0

    def create_database(self):
        self._sql("CREATE DATABASE %s; CREATE USER '%s'@'127.0.0.1' "
                  "IDENTIFIED BY '%s'; GRANT ALL ON %s.* TO '%s'@'127.0.0.1';"
                  % (self.database, self.user, self.password, self.database,
                     self.user))


def run(argv, timeout, **kwargs):
    """Run a set-up command; its output is in the error if it fails."""
    result = subprocess.run(argv, capture_output=True, timeout=timeout,
                            check=False, **kwargs)
    if result.returncode:
        raise RuntimeError('%s failed (rc %d): %s' % (
            ' '.join(argv[:3]), result.returncode,
            (result.stdout + result.stderr).decode(errors='replace')[-2000:]))
    return result


def _give_to(path, user):
    """chown ``path`` (recursively) to ``user``; parents become 0755."""
    shutil.chown(path, user, user)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            shutil.chown(os.path.join(root, name), user, user)
    os.chmod(path, 0o755)
