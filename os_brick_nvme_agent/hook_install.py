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

"""Install, remove and check the hook's ``.pth`` file.

A wheel of this distribution carries the file already (see
``build_hooks.py``); editable installs do not, and there
``os-brick-nvme-agent hook install`` writes it. Nothing here runs inside
the host service.
"""

import os
import subprocess
import sys
import sysconfig

from os_brick_nvme_agent import _hook_loader

__all__ = ['site_dir', 'install_pth', 'remove_pth', 'hook_status',
           'command']

USAGE = 'usage: os-brick-nvme-agent hook install|remove|status [--dir DIR]\n'


def site_dir():
    return sysconfig.get_paths()['purelib']


def install_pth(directory=None):
    path = os.path.join(directory or site_dir(), _hook_loader.PTH_NAME)
    tmp = path + '.tmp'
    with open(tmp, 'w') as handle:
        handle.write(_hook_loader.PTH_LINE)
    os.replace(tmp, path)
    return path


def remove_pth(directory=None):
    path = os.path.join(directory or site_dir(), _hook_loader.PTH_NAME)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return None
    return path


def hook_status(directory=None, python=None):
    """(pth path or None, importable in a fresh interpreter: bool)."""
    path = os.path.join(directory or site_dir(), _hook_loader.PTH_NAME)
    # A fresh interpreter processes the .pth files of its site-packages;
    # another directory is processed as a site directory explicitly.
    probe = subprocess.run(
        [python or sys.executable, '-c',
         'import importlib, site, sys\n'
         'if sys.argv[1]:\n'
         '    site.addsitedir(sys.argv[1])\n'
         'mod = importlib.import_module(%r)\n'
         'sys.exit(0 if hasattr(mod, "NVMeOFAgent") else 1)'
         % _hook_loader.TARGET, directory or ''],
        stdin=subprocess.DEVNULL, capture_output=True, check=False)
    return (path if os.path.exists(path) else None), probe.returncode == 0


def command(argv, out=sys.stdout):
    """``os-brick-nvme-agent hook install|remove|status [--dir DIR]``."""
    if not argv or argv[0] not in ('install', 'remove', 'status'):
        out.write(USAGE)
        return 2
    directory = argv[argv.index('--dir') + 1] if '--dir' in argv else None
    if argv[0] == 'install':
        out.write('installed %s\n' % install_pth(directory))
    elif argv[0] == 'remove':
        path = remove_pth(directory)
        out.write('removed %s\n' % path if path else 'not installed\n')
    else:
        path, importable = hook_status(directory)
        out.write('pth file: %s\n%s importable: %s\n' % (
            path or 'absent', _hook_loader.TARGET,
            'yes' if importable else 'no'))
        return 0 if importable else 1
    return 0
