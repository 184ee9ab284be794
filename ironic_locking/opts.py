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

"""Configuration options of ironic_locking.

Every option lives in ironic's own ``[conductor]`` group, next to the two
options it builds on. ironic already registers and owns
``node_locked_retry_attempts`` and ``node_locked_retry_interval``; this
module reuses them and never registers a rival of either.
"""

from oslo_config import cfg
from oslo_log import log as logging

from ironic_locking import exception

LOG = logging.getLogger(__name__)

GROUP = 'conductor'

STRATEGY_FIXED = 'fixed'
STRATEGY_JITTERED = 'jittered'

OPTS = [
    cfg.StrOpt('task_manager',
               default='retrying',
               help='Name of the task manager the resilient ironic commands '
                    '(ironic-resilient, ironic-conductor-resilient) use, '
                    'looked up in the "ironic_locking.task_managers" entry '
                    'point namespace. "retrying" hands a released node to '
                    'the next waiter of the same conductor at once and '
                    'polls holders in other conductors as configured '
                    'below; "default" is ironic\'s own task manager, '
                    'unchanged. Loaded when the service starts: a name '
                    'that is not installed stops it.'),
    cfg.StrOpt('node_locked_retry_strategy',
               default=STRATEGY_JITTERED,
               choices=[
                   (STRATEGY_FIXED,
                    'Polls exactly node_locked_retry_interval seconds '
                    'apart: ironic\'s own schedule.'),
                   (STRATEGY_JITTERED,
                    'Each poll waits between half and all of '
                    'node_locked_retry_interval, at random, and the last '
                    'attempt is made when ironic\'s would be, after '
                    '(attempts - 1) x interval seconds.'),
               ],
               help='How the retrying task manager spaces its attempts to '
                    'reserve a node that a task of another conductor '
                    'holds. Both keep ironic\'s number of attempts and '
                    'its total wait; the jittered one keeps waiters of '
                    'different conductors out of step. A node held in the '
                    'same conductor is handed to the next waiter when it '
                    'is released, whatever the strategy.'),
    cfg.FloatOpt('node_locked_retry_deadline',
                 default=0.0,
                 min=0.0,
                 max=86400.0,
                 help='Absolute limit, in seconds, on the time a lock '
                      'request may spend waiting for a locked node, '
                      'whatever the strategy and attempt count. 0 means no '
                      'limit beyond ironic\'s own (attempts - 1) x '
                      'interval. Does not apply to requests ironic makes '
                      '"patient" (those wait until the node is free, as in '
                      'ironic).'),
]


def register_opts(conf):
    """Register the options of ironic_locking on ``conf``.

    :param conf: an oslo.config ``ConfigOpts`` (usually ironic's CONF).
    """
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    """Options for oslo-config-generator and the sphinx extension.

    :returns: a list of ``(group, options)`` pairs.
    """
    return [(GROUP, list(OPTS))]


def _value(conf, name):
    """An option of ``[conductor]``, its parse error as a one-liner."""
    try:
        return getattr(conf.conductor, name)
    except (cfg.Error, ValueError) as error:
        raise exception.ConfigurationError(
            '[%s] %s: %s' % (GROUP, name, error)) from error


def check(conf):
    """Refuse values the retrying task manager cannot work with.

    ironic itself accepts any integer for its two options; a negative
    count or interval would only fail at the first locked node.

    :param conf: ironic's CONF, with these options registered.
    :raises: ConfigurationError naming the first bad option.
    """
    for name in [opt.name for opt in OPTS]:
        _value(conf, name)
    attempts = _value(conf, 'node_locked_retry_attempts')
    if attempts < 0:
        raise exception.ConfigurationError(
            '[%s] node_locked_retry_attempts = %d: must be 0 or more (0 and '
            '1 both mean a single attempt)' % (GROUP, attempts))
    if attempts == 0:
        LOG.warning('[%s] node_locked_retry_attempts = 0: lock requests '
                    'make a single attempt; retrying is disabled', GROUP)
    interval = _value(conf, 'node_locked_retry_interval')
    if interval < 0:
        raise exception.ConfigurationError(
            '[%s] node_locked_retry_interval = %d: must be 0 or more' %
            (GROUP, interval))
