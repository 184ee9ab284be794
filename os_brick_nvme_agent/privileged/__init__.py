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

"""The privsep context of the agent.

Only the functions in :mod:`os_brick_nvme_agent.privileged.commands` run
with privileges, and only with CAP_SYS_ADMIN (mdadm, nvme connect and
disconnect need it). The daemon starts the privileged helper with
``[privsep_nvme_agent] helper_command`` (by default ``sudo
privsep-helper``); with ``[nvme_agent] privsep_in_process = true`` (tests,
simulated host) the functions run in the agent's own process.
"""

from oslo_privsep import capabilities as caps
from oslo_privsep import priv_context

from os_brick_nvme_agent import opts

default = priv_context.PrivContext(
    __name__,
    cfg_section=opts.PRIVSEP_GROUP,
    pypath=__name__ + '.default',
    capabilities=[caps.CAP_SYS_ADMIN],
)
