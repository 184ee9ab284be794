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

"""Make ``os_brick.initiator.connectors.nvmeof_agent`` importable.

os-brick's NVMe-oF connector imports that module if it exists and calls
``NVMeOFAgent.ensure_running(connector)`` after assembling a replicated
volume. ``os_brick.initiator.connectors`` is a regular package we do not
own, so the module is provided by a meta path finder that maps exactly
that name onto :mod:`os_brick_nvme_agent.hook`. A ``.pth`` file at the
root of site-packages (:data:`PTH_NAME`, content :data:`PTH_LINE`)
installs the finder at interpreter start.

This module is imported by every Python process of the environment: it
imports nothing beyond ``sys`` until os-brick asks for the module.
"""

import sys

TARGET = 'os_brick.initiator.connectors.nvmeof_agent'
PTH_NAME = 'os-brick-nvme-agent-hook.pth'
# One line: a .pth line starting with 'import' is executed by site.py. The
# try keeps interpreters quiet if the package is removed but the file is not.
PTH_LINE = ('import sys; exec("try:\\n from os_brick_nvme_agent import '
            '_hook_loader\\nexcept ImportError:\\n pass\\nelse:\\n '
            '_hook_loader.install()")\n')


class _AgentLoader(object):
    """Loader that fills the module with the hook's public names."""

    def create_module(self, spec):
        return None  # default module creation

    def exec_module(self, module):
        from os_brick_nvme_agent import hook
        module.NVMeOFAgent = hook.NVMeOFAgent
        module.__doc__ = hook.__doc__


class AgentFinder(object):
    """Meta path finder answering only for :data:`TARGET`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        import importlib.util
        return importlib.util.spec_from_loader(fullname, _AgentLoader())

    def invalidate_caches(self):
        pass


def install(meta_path=None):
    """Append the finder to ``sys.meta_path`` once.

    It goes last, so a real ``nvmeof_agent`` module shipped by os-brick
    itself would still win.
    """
    meta_path = sys.meta_path if meta_path is None else meta_path
    if not any(isinstance(finder, AgentFinder) for finder in meta_path):
        meta_path.append(AgentFinder())


def uninstall(meta_path=None):
    meta_path = sys.meta_path if meta_path is None else meta_path
    meta_path[:] = [finder for finder in meta_path
                    if not isinstance(finder, AgentFinder)]
