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

GROUP = 'conductor'

STRATEGY_FIXED = 'fixed'
STRATEGY_JITTERED = 'jittered-exponential'

OPTS = [
    cfg.StrOpt('task_manager',
               default='retrying',
               help='Name of the task manager the resilient ironic commands '
                    '(ironic-resilient, ironic-conductor-resilient) use, '
                    'looked up in the "ironic_locking.task_managers" entry '
                    'point namespace. "retrying" waits out a short-lived '
                    'node reservation as configured below; "default" is '
                    'ironic\'s own task manager, unchanged. Read once, at '
                    'the first lock request of the process.'),
    cfg.StrOpt('node_locked_retry_strategy',
               default=STRATEGY_JITTERED,
               choices=[
                   (STRATEGY_FIXED,
                    'Up to node_locked_retry_attempts attempts, '
                    'node_locked_retry_interval seconds apart: ironic\'s '
                    'own behaviour.'),
                   (STRATEGY_JITTERED,
                    'Waits start at node_locked_retry_initial_wait, double '
                    'after each attempt up to node_locked_retry_max_wait '
                    'and are jittered; the attempts stop once the total '
                    'patience of node_locked_retry_attempts x '
                    'node_locked_retry_interval seconds is spent.'),
               ],
               help='How the retrying task manager spaces its attempts to '
                    'reserve a locked node. Both take their limits from '
                    'ironic\'s two options; the jittered one looks sooner '
                    'and more often, keeps concurrent waiters out of step, '
                    'and gives up only when attempts x interval seconds '
                    'have passed.'),
    cfg.FloatOpt('node_locked_retry_initial_wait',
                 default=0.05,
                 min=0.001,
                 max=60.0,
                 help='First wait, in seconds, of the jittered-exponential '
                      'strategy. Each later wait doubles, up to '
                      'node_locked_retry_max_wait. Ignored by the fixed '
                      'strategy.'),
    cfg.FloatOpt('node_locked_retry_max_wait',
                 default=0.5,
                 min=0.001,
                 max=60.0,
                 help='Longest single wait, in seconds, of the '
                      'jittered-exponential strategy (and never more than '
                      'node_locked_retry_interval). Keeping it below the '
                      'interval lets a request that has waited a while '
                      'still look often enough not to lose the node to '
                      'requests that arrived after it. Ignored by the '
                      'fixed strategy.'),
    cfg.FloatOpt('node_locked_retry_deadline',
                 default=0.0,
                 min=0.0,
                 max=86400.0,
                 help='Absolute limit, in seconds, on the time a lock '
                      'request may spend waiting for a locked node, '
                      'whatever the strategy and attempt count. 0 means no '
                      'limit beyond the strategy\'s own. Does not apply to '
                      'requests ironic makes "patient" (those wait until '
                      'the node is free, as in ironic).'),
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
