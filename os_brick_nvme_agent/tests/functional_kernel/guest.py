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

"""Boot a Debian kernel under qemu (TCG) and run one job inside it.

The kernel and initramfs come from ``tools/kernel/build.py``.  Every
:meth:`Guest.run` boots a fresh guest that runs a shell script from a
read-write 9p share (the *work directory*) and powers off; the script's
exit code comes back as ``<job>.rc`` in that directory and the serial
console is kept in ``console.log``.  The host's ``/`` is shared read-only
as well, so a job can ``chroot /host`` and run a virtualenv's python with
the project on its path; inside the chroot the work directory has the same
path as on the host.

Run by hand::

    python -m os_brick_nvme_agent.tests.functional_kernel.guest job.sh
"""

import argparse
import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import fixtures

REPO = pathlib.Path(__file__).resolve().parents[3]
KERNEL_DIR_ENV = 'OS_BRICK_NVME_AGENT_KERNEL_DIR'
CACHE_ENV = 'OS_BRICK_NVME_AGENT_KERNEL_CACHE'
VENV_ENV = 'OS_BRICK_NVME_AGENT_GUEST_PYTHON'
QEMU = 'qemu-system-x86_64'


class GuestUnavailable(Exception):
    """qemu or the built kernel is missing on this machine."""


@dataclasses.dataclass
class GuestResult:
    rc: int
    console: str
    elapsed: float

    @property
    def ok(self):
        return self.rc == 0


def kernel_dir():
    """Directory holding ``vmlinux`` and ``initramfs.cpio``."""
    explicit = os.environ.get(KERNEL_DIR_ENV)
    if explicit:
        path = pathlib.Path(explicit)
    else:
        cache = pathlib.Path(os.environ.get(CACHE_ENV) or
                             REPO / '.kernel-cache')
        current = cache / 'current'
        if not current.exists():
            raise GuestUnavailable(
                'no kernel built: run "python3 tools/kernel/build.py"')
        path = pathlib.Path(current.read_text().strip())
    for name in ('vmlinux', 'initramfs.cpio'):
        if not (path / name).is_file():
            raise GuestUnavailable('%s missing in %s' % (name, path))
    return path


def guest_python():
    """The python a job runs inside the chroot (host path, same in guest).

    Defaults to the interpreter running this module, so the guest sees the
    same virtualenv as the test runner.
    """
    return os.environ.get(VENV_ENV) or sys.executable


def qemu_command(kdir, workdir, job, timeout, memory=1024, smp=2,
                 share_root=True):
    """The argv that boots the guest on ``job`` (pure)."""
    append = ('console=ttyS0 panic=-1 quiet loglevel=4 rsjob=%s rswork=%s '
              'rstimeout=%d' % (job, workdir, timeout))
    argv = [QEMU, '-accel', 'tcg,thread=multi', '-cpu', 'max',
            '-smp', str(smp), '-m', str(memory), '-display', 'none',
            '-no-reboot', '-monitor', 'none',
            '-serial', 'file:%s' % os.path.join(workdir, 'console.log'),
            '-kernel', str(kdir / 'vmlinux'),
            '-initrd', str(kdir / 'initramfs.cpio'),
            '-append', append,
            '-virtfs', 'local,path=%s,mount_tag=work,security_model=none,'
                       'multidevs=remap' % workdir]
    if share_root:
        argv += ['-virtfs', 'local,path=/,mount_tag=hostroot,'
                            'security_model=none,readonly=on,multidevs=remap']
    return argv


def compile_bytecode(python=None):
    """Byte-compile the guest python's packages and the project on the host.

    pip compiles ``.pyc`` files at install time, as distribution packages
    do; uv (which builds the tox environments) does not, and the guest
    sees the host's ``/`` read-only, so every python process in the guest
    (the scenarios, the agent's launcher, the agent) would compile its
    imports from source under TCG. That made the launcher overrun the
    hook's 60 s limit on a busy machine. Natively this takes seconds, and
    nothing once the files are compiled.
    """
    python = python or guest_python()
    paths = subprocess.run(
        [python, '-c', 'import sysconfig; p = sysconfig.get_paths(); '
         'print(p["purelib"]); print(p["platlib"])'],
        capture_output=True, text=True, check=True).stdout.split()
    subprocess.run([python, '-m', 'compileall', '-q', '-j', '0']
                   + sorted(set(paths)) + [str(REPO / 'os_brick_nvme_agent')],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   check=False)


class Guest(fixtures.Fixture):
    """A work directory plus the means to boot guests on it.

    :param workdir: directory to share; a fresh temporary one by default
        (removed on cleanup unless ``keep`` is set).
    """

    def __init__(self, workdir=None, keep=False, memory=1024, smp=2):
        super().__init__()
        self.workdir = workdir
        self.keep = keep
        self.memory = memory
        self.smp = smp
        self._proc = None

    def setUp(self):
        # Checked before fixtures' setUp, which would wrap the exception in
        # MultipleExceptions and hide it from ``except GuestUnavailable``.
        if shutil.which(QEMU) is None:
            raise GuestUnavailable('%s is not installed' % QEMU)
        self.kdir = kernel_dir()
        super().setUp()

    def _setUp(self):
        if self.workdir is None:
            self.workdir = tempfile.mkdtemp(prefix='nvme-agent-guest-')
            if not self.keep:
                self.addCleanup(shutil.rmtree, self.workdir, True)
        self.workdir = os.path.realpath(self.workdir)
        self.addCleanup(self._kill)

    def _kill(self):
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def path(self, *parts):
        return os.path.join(self.workdir, *parts)

    def run(self, script, timeout=600, name='job.sh'):
        """Boot a guest running ``script`` (shell text); wait for poweroff.

        :param timeout: seconds the job may run in the guest; qemu is
            killed 60 s after that if it has not powered off.
        :returns: :class:`GuestResult`; ``rc`` is -1 when the guest never
            reported the job's exit code (crash, timeout, kernel panic).
        """
        job = self.path(name)
        for stale in (job + '.rc', self.path('console.log')):
            if os.path.exists(stale):
                os.unlink(stale)
        with open(job, 'w') as stream:
            stream.write(script)
        argv = qemu_command(self.kdir, self.workdir, name, timeout,
                            self.memory, self.smp)
        start = time.monotonic()
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL,
                                      stderr=open(self.path('qemu.err'), 'w'))
        try:
            self._proc.wait(timeout + 60)
        except subprocess.TimeoutExpired:
            pass
        finally:
            self._kill()
        elapsed = time.monotonic() - start
        return GuestResult(self._rc(job), self._console(), elapsed)

    def _rc(self, job):
        try:
            with open(job + '.rc') as stream:
                return int(stream.read().strip())
        except (OSError, ValueError):
            return -1

    def _console(self):
        try:
            with open(self.path('console.log'), errors='replace') as stream:
                return stream.read()
        except OSError:
            return ''


def main(argv=None):
    parser = argparse.ArgumentParser(description='Run a job in the guest.')
    parser.add_argument('script', help='shell script to run in the guest')
    parser.add_argument('--workdir', help='directory shared with the guest '
                        '(kept); a temporary one by default (removed)')
    parser.add_argument('--timeout', type=int, default=600)
    args = parser.parse_args(argv)
    with open(args.script) as stream:
        script = stream.read()
    with Guest(workdir=args.workdir, keep=bool(args.workdir)) as guest:
        result = guest.run(script, timeout=args.timeout)
        sys.stdout.write(result.console)
    print('rc=%d elapsed=%.1fs' % (result.rc, result.elapsed))
    return 0 if result.ok else 1


if __name__ == '__main__':
    sys.exit(main())
