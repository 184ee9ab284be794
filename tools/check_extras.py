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

"""Install each extra alone from the built wheel and run what it ships.

Usage: python tools/check_extras.py [--keep] [cinder|ironic|os-brick|docs ...]

``tox -e extras`` runs this. The sdist and the wheel are built once (pbr,
with the os-brick ``.pth`` hook that build_hooks.py adds); then, for each
of ``[cinder]``, ``[ironic]`` and ``[os-brick]``, a fresh virtualenv gets
the wheel with that extra and nothing else, and the extra's console
scripts and entry points are run there: tox installs every extra together
and would hide a dependency that only one extra lacks. Every console
script of the wheel is installed with every extra; one whose host project
is missing must say so in one line naming the extra to install. ``docs``
builds the documentation in a virtualenv holding only
doc/requirements.txt and the wheel.

Installs go through uv (fast from its cache); two groups (an extra, the
docs) are checked at a time. Prints one PASS/FAIL line per check and
closes with ``check_extras: N passed, N failed``; exits 1 when a check
failed.
"""

import concurrent.futures
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

REPO = pathlib.Path(__file__).resolve().parents[1]
EXTRAS = ('cinder', 'ironic', 'os-brick')
# The host project each package plugs into: its import name and its extra.
HOSTS = {'cinder_resilience': ('cinder', 'cinder'),
         'ironic_locking': ('ironic', 'ironic'),
         'os_brick_nvme_agent': ('os_brick', 'os-brick')}
PACKAGE_OF_EXTRA = {extra: pkg for pkg, (_mod, extra) in HOSTS.items()}
TIMEOUT = 300
#: Groups (an extra, the docs) checked at the same time.
JOBS = 2

CINDER_PROBE = '''
import tempfile
from cinder import objects
objects.register_all()  # as cinder-volume does before loading a manager
from cinder.volume import manager as upstream
from oslo_config import cfg
from cinder_resilience import coordination, manager
assert issubclass(manager.VolumeManager, upstream.VolumeManager)
conf = cfg.ConfigOpts()
conf([])
with tempfile.TemporaryDirectory() as locks:
    coordinator = coordination.Coordinator(conf=conf,
                                           backend_url='file://' + locks)
    coordinator.start()
    try:
        with coordinator.get_lock('check-extras') as lock:
            assert lock.fencing_token is not None
    finally:
        coordinator.stop()
print('manager and coordination work')
'''

IRONIC_PROBE = '''
from ironic.conductor import task_manager as upstream
from stevedore import driver
from ironic_locking import loader
ours = driver.DriverManager('ironic_locking.task_managers', 'retrying').driver
assert issubclass(ours, upstream.TaskManager), ours
assert loader.load_task_manager('default') is upstream.TaskManager
print('task managers load through stevedore')
'''

OS_BRICK_PROBE = '''
from os_brick.initiator.connectors import nvmeof_agent
from stevedore import extension
def failed(manager, entrypoint, exc):
    raise exc
names = extension.ExtensionManager(
    'os_brick_nvme_agent.provisioners',
    on_load_failure_callback=failed).names()
assert sorted(names) == ['kioxia', 'nvmet', 'static'], names
assert callable(nvmeof_agent.NVMeOFAgent.ensure_running)
print('hook importable, provisioners', sorted(names))
'''

PROBES = {'cinder': CINDER_PROBE, 'ironic': IRONIC_PROBE,
          'os-brick': OS_BRICK_PROBE}


class Checks(object):
    """PASS/FAIL lines and their count; groups record from their threads."""

    def __init__(self):
        self.passed = 0
        self.failed = []
        self._lock = threading.Lock()
        self._local = threading.local()

    def begin(self):
        """Start the clock of the calling thread's group of checks."""
        self._local.last = time.monotonic()

    def record(self, name, error):
        now = time.monotonic()
        took = '(%.1fs)' % (now - getattr(self._local, 'last', now))
        self._local.last = now
        with self._lock:
            if error:
                self.failed.append(name)
                print('FAIL %s %s: %s' % (name, took, error), flush=True)
            else:
                self.passed += 1
                print('PASS %s %s' % (name, took), flush=True)


def run(argv, timeout=TIMEOUT, **kwargs):
    """(returncode, stdout and stderr together) of ``argv``."""
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as exc:
        return -1, '%s\ntimed out after %ss' % (exc.output or '', timeout)
    return proc.returncode, proc.stdout


def tail(text, lines=15):
    return '\n    '.join(text.strip().splitlines()[-lines:])


def uv():
    found = shutil.which('uv')
    if found is None:
        raise SystemExit('check_extras: uv not found (tox installs it)')
    return found


def build(workdir):
    """Build the sdist and, from it, the wheel; return the wheel's path."""
    dist = os.path.join(workdir, 'dist')
    rc, out = run([uv(), 'build', '--out-dir', dist, str(REPO)])
    wheels = sorted(pathlib.Path(dist).glob('*.whl'))
    if rc != 0 or len(wheels) != 1:
        raise SystemExit('check_extras: build failed:\n    %s' % tail(out))
    return wheels[0]


def wheel_contents(wheel):
    """(top-level .pth names, {console script: package}) of the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        points = next(n for n in names if n.endswith('.dist-info/'
                                                     'entry_points.txt'))
        text = archive.read(points).decode()
    pth = [n for n in names if '/' not in n and n.endswith('.pth')]
    section = re.search(r'\[console_scripts\]\n(.*?)(\n\[|\Z)', text, re.S)
    scripts = dict(re.findall(r'^(\S+) = (\w+)', section.group(1), re.M))
    return pth, scripts


def make_venv(workdir, name, requirements):
    """A fresh virtualenv holding only ``requirements``; its bin dir."""
    venv = os.path.join(workdir, 'venv-' + name)
    rc, out = run([uv(), 'venv', '--quiet', '--python', sys.executable,
                   venv])
    if rc == 0:
        rc, out = run([uv(), 'pip', 'install', '--quiet', '--python',
                       os.path.join(venv, 'bin', 'python')] + requirements)
    return os.path.join(venv, 'bin'), (None if rc == 0 else tail(out))


def python(bindir):
    return os.path.join(bindir, 'python')


def has_module(bindir, module):
    rc, _out = run([python(bindir), '-c',
                    'import importlib.util, sys; '
                    'sys.exit(importlib.util.find_spec(%r) is None)'
                    % module])
    return rc == 0


def check_interpreter(bindir, pth_names):
    """The wheel's .pth files are installed and the interpreter is quiet."""
    rc, out = run([python(bindir), '-c',
                   'import sysconfig; print(sysconfig.get_path("purelib"))'])
    if rc != 0:
        return tail(out)
    missing = [name for name in pth_names
               if not os.path.isfile(os.path.join(out.strip(), name))]
    if missing or not pth_names:
        return 'not installed in %s: %s' % (out.strip(), missing or '.pth')
    rc, out = run([python(bindir), '-c', 'pass'])
    if rc != 0 or out.strip():
        return 'python -c pass says (rc %s):\n    %s' % (rc, tail(out))
    return None


def check_help(bindir, script):
    rc, out = run([os.path.join(bindir, script), '--help'])
    if rc != 0 or 'usage:' not in out:
        return 'rc %s:\n    %s' % (rc, tail(out))
    return None


def check_missing_host(bindir, script, extra):
    """The script's host is not installed: one line naming the extra."""
    rc, out = run([os.path.join(bindir, script), '--help'])
    lines = [line for line in out.splitlines() if line.strip()]
    if rc == 0 or len(lines) != 1 or '[%s]' % extra not in lines[0]:
        return ('expected a non-zero exit and one line naming the extra '
                '[%s]; got rc %s and %d lines:\n    %s'
                % (extra, rc, len(lines), tail(out)))
    return None


def check_genconfig(bindir, package):
    rc, out = run([os.path.join(bindir, 'oslo-config-generator'),
                   '--namespace', package])
    if rc != 0 or not re.search(r'^\[\w+\]$', out, re.M):
        return 'rc %s:\n    %s' % (rc, tail(out))
    return None


def check_probe(bindir, extra):
    rc, out = run([python(bindir), '-c', PROBES[extra]])
    return None if rc == 0 else 'rc %s:\n    %s' % (rc, tail(out))


AGENT_CONF = '''[DEFAULT]
log_file = {d}/agent.log
[nvme_agent]
enabled = true
provisioner = static
state_dir = {d}/state
root_dir = {d}/root
privsep_in_process = true
[provisioner_static]
path = {d}/replicas.yaml
'''


def agent_files(workdir):
    """A config for the agent over an empty host tree; its path."""
    top = os.path.join(workdir, 'agent')
    for sub in ('root', 'state'):
        os.makedirs(os.path.join(top, sub))
    with open(os.path.join(top, 'replicas.yaml'), 'w') as stream:
        stream.write('volumes: {}\n')
    conf = os.path.join(top, 'agent.conf')
    with open(conf, 'w') as stream:
        stream.write(AGENT_CONF.format(d=top))
    return conf, os.path.join(top, 'agent.log')


def read(path):
    try:
        with open(path, errors='replace') as stream:
            return stream.read()
    except FileNotFoundError:
        return ''


def wait_started(proc, log, timeout=120):
    """None once the agent logs its start, else why it did not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(r'agent started', read(log)):
            return None
        if proc.poll() is not None:
            return 'exited with %s:\n    %s' % (proc.returncode,
                                                tail(read(log)))
        time.sleep(0.5)
    return 'no start logged in %ss:\n    %s' % (timeout, tail(read(log)))


def check_agent(bindir, workdir):
    """The daemon starts in the foreground, shows in status, stops clean."""
    agent = os.path.join(bindir, 'os-brick-nvme-agent')
    conf, log = agent_files(workdir)
    proc = subprocess.Popen([agent, 'run', '--config-file', conf],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        error = wait_started(proc, log)
        if error is None:
            rc, out = run([agent, 'status', '--config-file', conf])
            if rc != 0 or 'agent: running' not in out:
                error = 'status rc %s:\n    %s' % (rc, tail(out))
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session
            proc.wait()
    if error is None and (proc.returncode != 0 or
                          re.search(r' ERROR |Traceback', read(log))):
        error = 'stop rc %s:\n    %s' % (proc.returncode, tail(read(log)))
    return error


def check_docs(checks, workdir, wheel):
    """doc/requirements.txt and the wheel alone build the docs with -W."""
    checks.begin()
    bindir, error = make_venv(workdir, 'docs', [
        '-r', str(REPO / 'doc' / 'requirements.txt'), str(wheel)])
    checks.record('docs: venv with doc/requirements.txt and the wheel',
                  error)
    if error:
        return
    out_dir = os.path.join(workdir, 'docs-html')
    rc, out = run([os.path.join(bindir, 'sphinx-build'), '-W', '--keep-going',
                   '-E', '-q', '-d', os.path.join(workdir, 'doctrees'),
                   '-b', 'html', str(REPO / 'doc' / 'source'), out_dir])
    checks.record('docs: sphinx-build -W', None if rc == 0 else
                  'rc %s:\n    %s' % (rc, tail(out, 30)))


def check_extra(checks, workdir, wheel, extra):
    checks.begin()
    pth_names, scripts = wheel_contents(wheel)
    bindir, error = make_venv(workdir, extra, ['%s[%s]' % (wheel, extra)])
    checks.record('%s: venv with only [%s]' % (extra, extra), error)
    if error:
        return
    checks.record('%s: .pth hook installed, interpreter quiet' % extra,
                  check_interpreter(bindir, pth_names))
    for script, package in sorted(scripts.items()):
        host, host_extra = HOSTS[package]
        if has_module(bindir, host):
            checks.record('%s: %s --help' % (extra, script),
                          check_help(bindir, script))
        else:
            checks.record('%s: %s without %s: one line naming [%s]'
                          % (extra, script, host, host_extra),
                          check_missing_host(bindir, script, host_extra))
    package = PACKAGE_OF_EXTRA[extra]
    checks.record('%s: oslo-config-generator --namespace %s'
                  % (extra, package), check_genconfig(bindir, package))
    checks.record('%s: entry points and imports' % extra,
                  check_probe(bindir, extra))
    if extra == 'os-brick':
        checks.record('%s: agent starts, shows in status, stops' % extra,
                      check_agent(bindir, workdir))


def main(argv):
    keep = '--keep' in argv
    names = [arg for arg in argv if arg != '--keep'] or list(EXTRAS) + [
        'docs']
    unknown = set(names) - set(EXTRAS + ('docs',))
    if unknown:
        raise SystemExit('check_extras: unknown %s; choose from %s, docs'
                         % (', '.join(sorted(unknown)), ', '.join(EXTRAS)))
    workdir = tempfile.mkdtemp(prefix='check-extras-')
    checks = Checks()
    began = time.monotonic()
    try:
        wheel = build(workdir)
        print('built %s in %.0fs' % (wheel.name, time.monotonic() - began))
        with concurrent.futures.ThreadPoolExecutor(JOBS) as pool:
            jobs = [pool.submit(check_docs, checks, workdir, wheel)
                    if name == 'docs' else
                    pool.submit(check_extra, checks, workdir, wheel, name)
                    for name in names]
            for job in jobs:
                job.result()
    finally:
        if keep:
            print('kept %s' % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print('check_extras: %d passed, %d failed (%.0fs)'
          % (checks.passed, len(checks.failed), time.monotonic() - began))
    return 1 if checks.failed or not checks.passed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
