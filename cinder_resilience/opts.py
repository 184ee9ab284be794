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

"""Configuration options of cinder_resilience.

Options are grouped per configuration section in ``_GROUPS``; another
feature adds its section with one more ``(group, options)`` entry there.

The driver re-initialization options live in ``[DEFAULT]``, next to cinder's
own ``reinit_driver_count`` and ``volume_manager`` which they extend.
``reinit_driver_count`` itself is registered by cinder and reused here, never
registered again.
"""

import copy

from oslo_config import cfg
from oslo_config import types

#: Exceptions that no amount of waiting will fix: a missing module or a bad
#: configuration value stays broken until an operator acts.
DEFAULT_PERMANENT_ERRORS = [
    'builtins.ImportError',
    'oslo_config.cfg.Error',
    'cinder.exception.InvalidConfigurationValue',
    'cinder.exception.ConfigNotFound',
]

_DOTTED_NAME = types.String(regex=r'^[A-Za-z_][A-Za-z0-9_]*'
                                  r'(\.[A-Za-z_][A-Za-z0-9_]*)*$')

REINIT_OPTS = [
    cfg.IntOpt('reinit_driver_max_interval',
               default=30, min=1, max=3600,
               help='Upper bound, in seconds, of the wait between two '
                    'counted attempts to initialize a volume driver that '
                    'failed to start. Waits grow 1 s, 2 s, 4 s, ... as with '
                    'reinit_driver_count and stop growing at this value. '
                    'Used with volume_manager = '
                    'cinder_resilience.manager.VolumeManager.'),
    cfg.FloatOpt('reinit_driver_jitter',
                 default=0.2, min=0.0, max=0.5,
                 help='Relative random spread applied to every wait between '
                      'driver initialization attempts (0.2 means +/-20%), so '
                      'that services of a cluster restarted together do not '
                      'hit a recovering backend in lock-step. A wait never '
                      'exceeds its cap. 0 disables the spread.'),
    cfg.BoolOpt('reinit_driver_background',
                default=True,
                help='After the reinit_driver_count counted attempts have '
                     'failed, keep probing the backend in the background '
                     'and bring the service up as soon as the driver '
                     'initializes, instead of staying down until a manual '
                     'restart.'),
    cfg.IntOpt('reinit_driver_probe_interval',
               default=30, min=1, max=3600,
               help='Upper bound, in seconds, of the wait between two '
                    'background probes (see reinit_driver_background). The '
                    'waits keep doubling after the counted attempts until '
                    'they reach this value. A backend that becomes ready is '
                    'noticed at most this long (plus one initialization) '
                    'later.'),
    cfg.ListOpt('reinit_driver_permanent_errors',
                item_type=_DOTTED_NAME,
                default=DEFAULT_PERMANENT_ERRORS,
                help='Dotted class names of exceptions that make a failed '
                     'driver start permanent: when do_setup or '
                     'check_for_setup_error still raises one of these (or an '
                     'exception caused by one) after the reinit_driver_count '
                     'counted retries, no background probing follows and one '
                     'ERROR is logged. Subclasses match. Every '
                     'name must be importable, otherwise the service refuses '
                     'to start. Add for instance '
                     'cinder.exception.NotAuthorized to treat rejected '
                     'credentials as permanent.'),
]

#: Cluster options of cinder_resilience.member_cleanup, in ``[DEFAULT]``
#: next to cinder's ``cluster`` and ``service_down_time``.
CLUSTER_OPTS = [
    cfg.BoolOpt('dead_member_cleanup',
                default=True,
                help='In an active-active cluster (cluster is set), have one '
                     'live member, elected through the coordination '
                     'backend, run cinder\'s workers cleanup for every member '
                     'that has sent no heartbeat for service_down_time: its '
                     'volumes and snapshots left creating or deleting end '
                     'in a clean state without an operator calling the '
                     'workers cleanup API. Used with volume_manager = '
                     'cinder_resilience.manager.VolumeManager.'),
    cfg.IntOpt('dead_member_cleanup_interval',
               default=30, min=1, max=3600,
               help='Seconds between two looks for dead cluster members '
                    '(see dead_member_cleanup). A dead member\'s work is '
                    'cleaned at most service_down_time plus this long after '
                    'its last heartbeat.'),
]

#: ``[coordination]`` options of cinder_resilience.coordination. cinder
#: registers ``backend_url`` in the same group; it is reused, not repeated.
COORDINATION_OPTS = [
    cfg.FloatOpt('heartbeat',
                 default=1.0, min=0.05, max=60.0,
                 help='Seconds between two lease refreshes of the held '
                      'distributed locks, on backends whose locks expire '
                      'unless refreshed (redis, etcd, memcached); file and '
                      'zookeeper need none and get no refresh thread. At '
                      'most a third of the backend lock timeout is used.'),
    cfg.FloatOpt('initial_reconnect_backoff',
                 default=0.1, min=0.01, max=60.0,
                 help='Seconds to wait before the first retry when the '
                      'coordination backend cannot be reached (at start or '
                      'while refreshing locks). Later waits grow with '
                      'random jitter up to max_reconnect_backoff.'),
    cfg.FloatOpt('max_reconnect_backoff',
                 default=60.0, min=0.1, max=3600.0,
                 help='Longest wait, in seconds, between two attempts to '
                      'reach the coordination backend. A held lock is still '
                      'reported lost when its lease runs out meanwhile.'),
    cfg.IntOpt('lease_heartbeats',
               default=2, min=2, max=60,
               help='Lease of a distributed lock, in heartbeats: a lock '
                    'whose holder died (SIGKILL, power loss, partition) '
                    'becomes free after about heartbeat x lease_heartbeats '
                    'seconds, rounded up to whole seconds. It is passed to '
                    'the backend as the lock_timeout option of redis and '
                    'etcd URLs and the session timeout option of zookeeper '
                    'URLs, unless backend_url already sets that option. '
                    'ZooKeeper servers bound session timeouts to between 2 '
                    'and 20 tickTime.'),
    cfg.BoolOpt('route_external_locks',
                default=False,
                help='Serve cinder\'s external (inter-process) locks, taken '
                     'with cinder.utils.synchronized(..., external=True), '
                     'from the coordination backend instead of lock files '
                     'in lock_path, so that they also exclude services on '
                     'other hosts. Takes effect when the volume manager is '
                     'cinder_resilience.manager.VolumeManager.'),
]

_GROUPS = [
    ('DEFAULT', REINIT_OPTS + CLUSTER_OPTS),
    ('coordination', COORDINATION_OPTS),
]


def register_opts(conf):
    """Register every option of this package on ``conf`` (idempotent)."""
    for group, opts in _GROUPS:
        conf.register_opts(opts, group=None if group == 'DEFAULT' else group)


def list_opts():
    """Entry point of ``oslo.config.opts`` for the generator and the docs."""
    return [(group, copy.deepcopy(opts)) for group, opts in _GROUPS]
