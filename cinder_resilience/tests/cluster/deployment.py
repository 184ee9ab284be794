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

"""A whole active-active cinder deployment on 127.0.0.1.

``Deployment`` starts RabbitMQ, MariaDB (schema by ``cinder-manage db
sync``), redis as the tooz backend, cinder-api (noauth) and
cinder-scheduler; ``add_cluster`` then names one backend served by a
cluster, and ``Cluster.add_member`` starts cinder-volume members into it
(``cluster = NAME``, distinct ``host``), by default with our manager and
``driver.ClusterTestDriver``. Each cluster has its own backend name and
volume type, so several clusters share one deployment without seeing each
other's work.

Use it as a fixture (``useFixture``) or by hand (``start()``/``stop()``).
``stop()`` stops every process it started, also after a failed start.
"""

import functools
import json
import os
import shutil
import sys
import tempfile

import fixtures

from cinder_resilience.tests.cluster import client as cinder_client
from cinder_resilience.tests.cluster import servers
from cinder_resilience.tests.functional import cinder_service
from cinder_resilience.tests.functional import servers as coord_servers
from cinder_resilience.tests import waiting

OURS = 'cinder_resilience.manager.VolumeManager'
UPSTREAM = 'cinder.volume.manager.VolumeManager'
DRIVER = 'cinder_resilience.tests.cluster.driver.ClusterTestDriver'
BINARIES = ('rabbitmq-server', 'rabbitmqctl', 'epmd', 'mariadbd',
            'mariadb-install-db', 'mariadb', 'redis-server')

#: Short heartbeats so that a dead member shows down within seconds.
TIMING = {'report_interval': 1, 'periodic_interval': 2,
          'service_down_time': 8, 'heartbeat': 1.0,
          'dead_member_cleanup_interval': 5}

_LOG_LEVELS = ('amqp=WARN', 'amqplib=WARN', 'sqlalchemy=WARN',
               'oslo_messaging=INFO', 'stevedore=WARN', 'urllib3=WARN',
               'oslo_policy=INFO', 'oslo.privsep.daemon=INFO',
               'keystonemiddleware=WARN', 'routes.middleware=WARN',
               'cinder.volume.volume_utils=INFO')


venv_script = cinder_service.venv_script


def missing():
    """Why the deployment cannot run here, or None."""
    absent = servers.missing_binaries(BINARIES)
    if absent:
        return ('cluster environment needs %s (bindep.txt, profile '
                'cluster)' % ', '.join(absent))
    return None


def _ini(sections):
    lines = []
    for section, options in sections.items():
        lines.append('[%s]' % section)
        lines.extend('%s = %s' % (k, v) for k, v in options.items()
                     if v is not None)
        lines.append('')
    return '\n'.join(lines)


class CinderProcess(servers.Process):
    """One cinder service (api, scheduler or volume) with its own conf."""

    def __init__(self, workdir, binary, sections):
        super().__init__(workdir)
        self.name = binary
        self.conf_file = os.path.join(workdir, 'cinder.conf')
        sections['DEFAULT']['log_file'] = os.path.join(workdir,
                                                       binary + '.log')
        with open(self.conf_file, 'w') as f:
            f.write(_ini(sections))

    def command(self):
        return [venv_script(self.name), '--config-file', self.conf_file]

    def log(self):
        try:
            with open(os.path.join(self.workdir, self.name + '.log'),
                      errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''


class Deployment(fixtures.Fixture):
    """RabbitMQ, MariaDB, redis, cinder-api and cinder-scheduler."""

    def __init__(self, timing=None, extra_conf=None):
        super().__init__()
        self.timing = dict(TIMING, **(timing or {}))
        self.extra_conf = extra_conf or {}
        self.root = None
        self.rabbit = self.mariadb = self.redis = None
        self.api = self.scheduler = None
        self.client = None
        self.clusters = []

    def _setUp(self):
        self.addCleanup(self.stop)
        self.start()

    @property
    def events_file(self):
        return os.path.join(self.root, 'events.jsonl')

    def start(self):
        # Not under the test's nested temp dir (oslotest): that one is
        # private to root and removed after the first test.
        self.root = tempfile.mkdtemp(prefix='cinder-cluster-',
                                     dir=os.environ.get('TMPDIR') or '/tmp')
        os.chmod(self.root, 0o755)
        try:
            self._start_infrastructure()
            self._start_control_plane()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_infrastructure(self):
        self.rabbit = servers.RabbitMQ(os.path.join(self.root, 'rabbitmq'))
        self.rabbit.start(wait=False)
        self.mariadb = servers.MariaDB(os.path.join(self.root, 'mariadb'))
        self.mariadb.start()
        self.mariadb.create_database()
        self.redis = coord_servers.RedisServer()
        self.redis.start()
        self.rabbit.wait_ready()

    def _start_control_plane(self):
        api_port = servers.free_port()
        api = self.conf('api', {'osapi_volume_listen_port': api_port})
        servers.run([venv_script('cinder-manage'), '--config-file',
                     api.conf_file, 'db', 'sync'], timeout=600)
        self.api = api.start(wait=False)
        self.client = cinder_client.CinderClient(api_port)
        self.scheduler = self.conf('scheduler', {}, 'cinder-scheduler')
        self.scheduler.start(wait=False)
        servers.wait_until(self.client.ready, 120, 'cinder-api')

    def conf(self, name, default, binary='cinder-api', sections=None):
        """A CinderProcess named ``name`` with the common configuration."""
        workdir = os.path.join(self.root, name)
        os.makedirs(os.path.join(workdir, 'locks'), exist_ok=True)
        timing = self.timing
        common = {
            'DEFAULT': dict({
                'host': name, 'state_path': workdir,
                'transport_url': self.rabbit.url,
                'auth_strategy': 'noauth',
                'api_paste_config': os.path.join(
                    sys.prefix, 'etc', 'cinder', 'api-paste.ini'),
                'osapi_volume_listen': '127.0.0.1',
                'osapi_volume_workers': 1,
                'report_interval': timing['report_interval'],
                'periodic_interval': timing['periodic_interval'],
                'service_down_time': timing['service_down_time'],
                'debug': 'false',
                'quota_volumes': -1,
                'quota_snapshots': -1,
                'quota_gigabytes': -1,
                'default_log_levels': ','.join(_LOG_LEVELS),
            }, **default),
            'database': {'connection': self.mariadb.url},
            'coordination': {'backend_url': self.redis.url,
                             'heartbeat': timing['heartbeat']},
            'oslo_concurrency': {'lock_path': os.path.join(workdir,
                                                           'locks')},
            'oslo_messaging_notifications': {'driver': 'noop'},
        }
        for section, options in self.extra_conf.items():
            common.setdefault(section, {}).update(options)
        for section, options in (sections or {}).items():
            common.setdefault(section, {}).update(options)
        return CinderProcess(workdir, binary, common)

    def add_cluster(self, name, **kwargs):
        cluster = Cluster(self, name, **kwargs)
        self.clusters.append(cluster)
        return cluster

    def events(self):
        """Every event the drivers recorded, oldest first."""
        try:
            with open(self.events_file) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def stop(self):
        """Stop everything started; safe to call twice or after failure."""
        for cluster in self.clusters:
            cluster.stop()
        for proc in (self.api, self.scheduler, self.rabbit, self.mariadb):
            if proc is not None:
                proc.stop()
        if self.redis is not None:
            self.redis.cleanup_all()
        if self.root and not os.environ.get('RESILIENCE_KEEP_CLUSTER'):
            shutil.rmtree(self.root, ignore_errors=True)


class Cluster(object):
    """One backend served by clustered cinder-volume members."""

    def __init__(self, deployment, name, op_seconds=1.0, capacity=1):
        self.deployment = deployment
        self.name = name
        self.backend = name + 'be'
        self.op_seconds = op_seconds
        self.capacity = capacity
        self.members = {}
        self.volume_type = deployment.client.create_type(name + '-type',
                                                         self.backend)

    @property
    def client(self):
        return self.deployment.client

    def add_member(self, name, manager=OURS, backend_up=True, wait=True,
                   options=None):
        """Start cinder-volume ``name`` in this cluster.

        :param backend_up: False to start with the backend down; bring it
                           up with ``backend_up(name)``
        :param wait: wait until the driver is up and the scheduler knows
                     the cluster's pool
        """
        host = '%s-%s' % (self.name, name)
        flag = os.path.join(self.deployment.root, host + '.up')
        if backend_up:
            open(flag, 'w').close()
        proc = self.deployment.conf(host, dict({
            'enabled_backends': self.backend,
            'cluster': self.name,
            'volume_manager': manager,
            'reinit_driver_probe_interval': 2,
            'reinit_driver_jitter': 0.1,
            'dead_member_cleanup_interval':
                self.deployment.timing['dead_member_cleanup_interval'],
        }, **(options or {})), 'cinder-volume', sections={self.backend: {
            'volume_driver': DRIVER,
            'volume_backend_name': self.backend,
            'cluster_test_op_seconds': self.op_seconds,
            'cluster_test_capacity': self.capacity,
            'cluster_test_up_flag': flag,
            'cluster_test_events': self.deployment.events_file}})
        proc.conf_host = host
        proc.host = '%s@%s' % (host, self.backend)
        proc.flag = flag
        self.members[name] = proc
        proc.start(wait=False)
        if wait:
            self.wait_member(name)
        return proc

    def backend_up(self, name):
        open(self.members[name].flag, 'w').close()

    def member_events(self, name, event=None, op=None):
        """Events of member ``name``, optionally of one kind."""
        host = self.members[name].host.partition('@')[0]
        return [e for e in self.deployment.events()
                if e['host'] == host and event in (None, e['event']) and
                op in (None, e['op'])]

    def setup_done(self, name):
        return bool(self.member_events(name, 'setup'))

    def setup_failures(self, name):
        return len(self.member_events(name, 'setup-failed'))

    def wait_member(self, name, timeout=180):
        """Wait until the member's driver is set up and schedulable."""
        proc = self.members[name]
        pool = '%s@%s#%s' % (self.name, self.backend, self.backend)

        def ready():
            if not proc.alive():
                raise RuntimeError('%s exited; see %s' % (proc.host,
                                                          proc.workdir))
            return (self.setup_done(name) and
                    pool in self.client.pools() and
                    self.service_state(name) == 'up')
        servers.wait_until(ready, timeout, proc.host, interval=0.5)

    def service_state(self, name):
        host = self.members[name].host
        for service in self.client.services():
            if service['host'] == host:
                return service['state']
        return None

    def create(self, count=1, wait=True, timeout=300, **kwargs):
        """Create ``count`` volumes; with ``wait``, until they settle."""
        ids = [self.client.create_volume(self.volume_type, **kwargs)
               for _ in range(count)]
        if wait:
            self.client.wait_settled(ids, timeout)
        return ids

    def volumes(self, ids):
        return self.client.volumes(ids)

    def stop(self):
        for proc in self.members.values():
            proc.stop()


#: Polls every 0.5 s: each poll reads the API or the events file.
wait_for = functools.partial(waiting.wait_for, interval=0.5)
