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

"""Assemble the agent's service from its configuration.

Used by ``os-brick-nvme-agent run`` (before it detaches, so that a
provisioner that fails to load or a bad provisioner option stops the
start with one line) and by tools that drive the service directly.
"""

import functools
import os

from oslo_config import cfg

from os_brick_nvme_agent import exception


def build_service(conf, commands=None):
    """An :class:`~os_brick_nvme_agent.service.AgentService` for ``conf``.

    :param commands: the executor's privileged command set; the privsep
        entrypoints unless a benchmark on a simulated host passes its own.
    :raises ProvisionerNotFound: no plugin of the configured name.
    :raises ProvisionerError: the plugin failed to load, or one of its
        options has an invalid value.
    """
    from os_brick_nvme_agent import executor
    from os_brick_nvme_agent.host import snapshot
    from os_brick_nvme_agent.host import watcher
    from os_brick_nvme_agent import journal
    from os_brick_nvme_agent import privileged
    from os_brick_nvme_agent.privileged import commands as privsep_commands
    from os_brick_nvme_agent import provisioners
    from os_brick_nvme_agent import service
    from os_brick_nvme_agent import state
    group = conf.nvme_agent
    if group.privsep_in_process:
        privileged.default.set_client_mode(False)
    provisioner = provisioners.load(group.provisioner, conf)
    check_plugin_options(provisioner)
    snap = functools.partial(snapshot.read_host_state, group.root_dir)
    return service.AgentService(
        conf, provisioner=provisioner,
        executor=executor.Executor(conf, commands or privsep_commands,
                                   snap),
        store=state.StateStore(os.path.join(group.state_dir, 'state.json')),
        snapshot=snap,
        watcher=watcher.Watcher(group.root_dir, group.poll_interval,
                                events=group.watch_md_events),
        journal=journal.Journal(journal.path(group.state_dir),
                                group.journal_max_events))


def check_plugin_options(provisioner):
    """Read every option of the plugin's group now (values are lazy)."""
    if not provisioner.CONFIG_GROUP:
        return
    try:
        for opt in provisioner.CONFIG_OPTS:
            getattr(provisioner.options, opt.dest)
    except cfg.Error as exc:
        raise exception.ProvisionerError(str(exc))
