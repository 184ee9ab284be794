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

"""Options of the NVMe-oF healing agent (its own config file).

The agent reads ``[nvme_agent]`` from its own file (by default
``/etc/os-brick-nvme-agent/agent.conf``), never from nova.conf or
cinder.conf. :func:`list_opts` also gathers the options each provisioner
plugin declares (``CONFIG_GROUP``/``CONFIG_OPTS``) for the generator.
"""

import importlib

from oslo_config import cfg

GROUP = 'nvme_agent'
PRIVSEP_GROUP = 'privsep_nvme_agent'

# Provisioner modules whose CONFIG_OPTS are published by list_opts().
PROVISIONER_MODULES = ('kioxia', 'nvmet', 'static')

AGENT_OPTS = [
    cfg.BoolOpt('enabled', default=False,
                help='Run the healing agent. When false the os-brick hook '
                     'does nothing and the daemon exits at once.'),
    cfg.StrOpt('provisioner', default='static',
               help='Name of the provisioner plugin (entry point in the '
                    'os_brick_nvme_agent.provisioners namespace) that '
                    'knows the replicas of each volume.'),
    cfg.FloatOpt('poll_interval', default=10.0, min=0.05, max=3600.0,
                 help='Seconds between two reconcile passes when the kernel '
                      'sends no change notification (periodic fallback), '
                      'and between two pulls of the provisioner.'),
    cfg.BoolOpt('watch_md_events', default=True,
                help='Wake up on the kernel\'s change notifications of '
                     '/proc/mdstat and the md sysfs attributes. When '
                     'false the agent wakes only every poll_interval '
                     '(polling mode; detection takes up to that long).'),
    cfg.FloatOpt('grace_period', default=120.0, min=0.0, max=86400.0,
                 help='Seconds a faulty replica may stay faulty before the '
                      'agent asks the provisioner to replace it. A leg that '
                      'comes back within this time is re-added instead.'),
    cfg.FloatOpt('report_interval', default=60.0, min=0.0, max=86400.0,
                 help='Seconds between two reports of the same replica state '
                      'while the provisioner does not show it.'),
    cfg.FloatOpt('request_interval', default=300.0, min=0.0, max=86400.0,
                 help='Seconds between two replacement requests for the same '
                      'replica while no replacement shows up.'),
    cfg.FloatOpt('connect_interval', default=30.0, min=0.0, max=86400.0,
                 help='Seconds between two attempts to reconnect a replica '
                      'that has no controller on the host.'),
    cfg.StrOpt('state_dir', default='/var/lib/os-brick-nvme-agent',
               help='Directory holding the agent state file, its pid file '
                    'and lock.'),
    cfg.StrOpt('root_dir', default='/',
               help='Prefix under which /proc, /sys and /dev are read. '
                    'Only tests and the simulated host change it.'),
    cfg.IntOpt('ctrl_loss_tmo', default=60, min=-1, max=86400,
               help='--ctrl-loss-tmo given to nvme connect for replacement '
                    'replicas: seconds the kernel keeps reconnecting before '
                    'failing I/O (-1 keeps trying for ever, which hides a '
                    'dead leg from md).'),
    cfg.IntOpt('fast_io_fail_tmo', default=5, min=-1, max=86400,
               help='Seconds after losing its target before a controller '
                    'behind a leg of a managed array fails queued I/O '
                    'instead of holding it; the agent writes it to the '
                    'controller\'s sysfs file on every pass. os-brick '
                    'connects with --ctrl-loss-tmo -1, so without it I/O '
                    'to a lost target waits for ever: md never fails the '
                    'leg, writes to the array hang, and so would mdadm on '
                    'that leg. -1 leaves the kernel\'s value alone.'),
    cfg.FloatOpt('command_timeout', default=60.0, min=1.0, max=3600.0,
                 help='Seconds a privileged mdadm/nvme command may run.'),
    cfg.FloatOpt('provisioner_backoff_initial', default=1.0, min=0.01,
                 max=3600.0,
                 help='First wait after the provisioner is unreachable; it '
                      'doubles (with jitter) on every further failure.'),
    cfg.FloatOpt('provisioner_backoff_max', default=300.0, min=0.01,
                 max=86400.0,
                 help='Longest wait between two attempts to reach an '
                      'unreachable provisioner.'),
    cfg.StrOpt('python',
               help='Python interpreter the os-brick hook uses to start '
                    'the daemon. Defaults to the interpreter of the process '
                    'that runs os-brick.'),
    cfg.StrOpt('start_method', default='auto',
               choices=[('auto', 'systemd where systemd is PID 1, else '
                                 'detach'),
                        ('systemd', 'systemctl start <systemd_unit>'),
                        ('detach', 'run the launcher, which detaches the '
                                   'agent into its own session and '
                                   'cgroup')],
               help='How the os-brick hook starts the agent.'),
    cfg.StrOpt('systemd_unit', default='os-brick-nvme-agent.service',
               regex=r'^[A-Za-z0-9:_.@-]+\.service$',
               help='Unit the os-brick hook starts where systemd runs the '
                    'host (start_method auto or systemd).'),
    cfg.StrOpt('cgroup', default='os-brick-nvme-agent',
               regex=r'^([A-Za-z0-9_.-]+)?$',
               help='cgroup v2 group (directly under the root of the '
                    'hierarchy) a detached agent moves into, so that '
                    'stopping the service that started it does not stop '
                    'it. Empty: stay in the caller\'s cgroup.'),
    cfg.IntOpt('journal_max_events', default=1000, min=10, max=1000000,
               help='Events the journal (<state_dir>/events.jsonl) keeps; '
                    'older ones are dropped.'),
    cfg.StrOpt('metrics_file',
               help='When set, the agent writes its metrics to this file '
                    'in the node_exporter textfile format after every '
                    'pass (e.g. /var/lib/node_exporter/textfile/'
                    'os_brick_nvme_agent.prom).'),
    cfg.BoolOpt('privsep_in_process', default=False,
                help='Run privileged commands inside the agent process '
                     'instead of a privsep daemon. Only for tests and the '
                     'simulated host, where the commands are unprivileged '
                     'fakes.'),
]


def register_opts(conf):
    """Register the agent options on ``conf`` (idempotent)."""
    conf.register_opts(AGENT_OPTS, group=GROUP)


def check(conf):
    """Read every ``[nvme_agent]`` option now, so a bad value fails at start.

    oslo.config checks a value from a file only when it is read.

    :raises oslo_config.cfg.Error: naming the option and the file.
    """
    group = getattr(conf, GROUP)
    for opt in AGENT_OPTS:
        getattr(group, opt.dest)
    if group.provisioner_backoff_initial > group.provisioner_backoff_max:
        raise cfg.Error('[nvme_agent] provisioner_backoff_initial (%s) is '
                        'greater than provisioner_backoff_max (%s)' % (
                            group.provisioner_backoff_initial,
                            group.provisioner_backoff_max))


def _provisioner_opts():
    result = []
    for name in PROVISIONER_MODULES:
        try:
            module = importlib.import_module(
                'os_brick_nvme_agent.provisioners.' + name)
        except ImportError:
            # A plugin whose module cannot be imported publishes no options;
            # the loader reports the real error when the plugin is chosen.
            continue
        group = getattr(module, 'CONFIG_GROUP', None)
        options = getattr(module, 'CONFIG_OPTS', None)
        if group and options:
            result.append((group, list(options)))
    return result


def _privsep_opts():
    # The privsep context registers these itself (section of the context in
    # os_brick_nvme_agent.privileged); listed here for the generator only.
    from oslo_privsep import priv_context
    return [(PRIVSEP_GROUP, list(priv_context.OPTS))]


def list_opts():
    """The ``oslo.config.opts`` entry point: every option of the agent."""
    return ([(GROUP, list(AGENT_OPTS))] + _privsep_opts() +
            _provisioner_opts())
