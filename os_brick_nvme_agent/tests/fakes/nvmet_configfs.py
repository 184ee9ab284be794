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

"""nvmet configfs imitated in a plain directory, for tests.

On a real configfs the kernel creates a directory's attribute files and
default sub-directories when it is made, and drops them when it is
removed. :class:`SimulatedConfigFS` does the same in a temporary tree so
that :class:`~os_brick_nvme_agent.provisioners.nvmet.NvmetProvisioner`
runs its real code against it. The attribute names are those of the Linux
6.1 nvmet target (``drivers/nvme/target/configfs.c``).
"""

import os
import shutil

from os_brick_nvme_agent.provisioners import nvmet

SUBSYSTEM_ATTRS = {'attr_allow_any_host': '0', 'attr_serial': '1234abcd',
                   'attr_version': '1.3', 'attr_model': 'Linux',
                   'attr_cntlid_min': '1', 'attr_cntlid_max': '65519',
                   'attr_pi_enable': '0', 'attr_qid_max': '128'}
SUBSYSTEM_DIRS = ('namespaces', 'allowed_hosts')
NAMESPACE_ATTRS = {'device_path': '', 'device_uuid': '', 'device_nguid': '',
                   'enable': '0', 'buffered_io': '0', 'ana_grpid': '1',
                   'resv_enable': '0', 'revalidate_size': ''}
PORT_ATTRS = {'addr_trtype': '', 'addr_adrfam': '', 'addr_traddr': '',
              'addr_trsvcid': '', 'addr_treq': 'not specified',
              'addr_tsas': 'none', 'param_inline_data_size': '-1'}
PORT_DIRS = ('subsystems', 'referrals', 'ana_groups')


def make_root(root):
    """Lay out an empty nvmet tree as ``modprobe nvmet`` leaves it."""
    for name in ('subsystems', 'ports', 'hosts'):
        os.makedirs(os.path.join(root, name), exist_ok=True)
    return root


class SimulatedConfigFS(nvmet.ConfigFS):
    """ConfigFS whose mkdir/rmdir behave like the kernel's."""

    def _kind(self, parts):
        if len(parts) == 2 and parts[0] == 'subsystems':
            return SUBSYSTEM_ATTRS, SUBSYSTEM_DIRS
        if len(parts) == 4 and parts[0] == 'subsystems' and \
                parts[2] == 'namespaces':
            return NAMESPACE_ATTRS, ()
        if len(parts) == 2 and parts[0] == 'ports':
            return PORT_ATTRS, PORT_DIRS
        return {}, ()

    def mkdir(self, *parts):
        if self.exists(*parts):
            return
        super().mkdir(*parts)
        attrs, dirs = self._kind(parts)
        for name, value in attrs.items():
            with open(self.path(*parts, name), 'w') as f:
                f.write(value + '\n')
        for name in dirs:
            os.mkdir(self.path(*parts, name))

    def rmdir(self, *parts):
        if not self.exists(*parts):
            return
        attrs, dirs = self._kind(parts)
        for name in dirs:
            if os.listdir(self.path(*parts, name)):
                raise OSError(16, 'Device or resource busy',
                              self.path(*parts, name))
        if parts[0] == 'subsystems' and len(parts) == 2:
            for port in self.listdir('ports'):
                if self.exists('ports', port, 'subsystems', parts[1]):
                    raise OSError(16, 'Device or resource busy',
                                  self.path(*parts))
        for name in attrs:
            os.unlink(self.path(*parts, name))
        for name in dirs:
            os.rmdir(self.path(*parts, name))
        super().rmdir(*parts)

    def write(self, value, *parts):
        if not os.path.isfile(self.path(*parts)):
            raise OSError(2, 'No such attribute', self.path(*parts))
        if parts[0] == 'ports' and parts[-1].startswith('addr_') and \
                self.listdir('ports', parts[1], 'subsystems'):
            raise OSError(13, 'Permission denied (port enabled)',
                          self.path(*parts))
        super().write(value, *parts)


def remove_tree(root):
    shutil.rmtree(root, ignore_errors=True)
