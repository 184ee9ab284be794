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

"""Build steps pbr runs for this distribution (setup.cfg [global] commands).

Only the build uses this module; it is not part of any installed package.

``BuildPyWithHook`` adds ``os-brick-nvme-agent-hook.pth`` at the root of
the wheel, so that installing ``openstack-resilience`` puts it at the root
of site-packages. The file installs the meta path finder that makes
``os_brick.initiator.connectors.nvmeof_agent`` importable (see
``os_brick_nvme_agent/_hook_loader.py``). Editable installs do not carry
top-level files; there ``os-brick-nvme-agent hook install`` writes the same
file.
"""

import os

from setuptools.command import build_py


def _hook_file():
    # Imported late: the package's __init__ is empty and _hook_loader only
    # needs the standard library, so this works in an isolated build.
    from os_brick_nvme_agent import _hook_loader
    return _hook_loader.PTH_NAME, _hook_loader.PTH_LINE


class BuildPyWithHook(build_py.build_py):
    """build_py that also writes the os-brick hook's .pth file."""

    command_name = 'build_py'

    def run(self):
        super().run()
        name, line = _hook_file()
        with open(os.path.join(self.build_lib, name), 'w') as pth:
            pth.write(line)

    def get_outputs(self, include_bytecode=True):
        name, _line = _hook_file()
        return (super().get_outputs(include_bytecode)
                + [os.path.join(self.build_lib, name)])
