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

"""Build a bootable kernel + initramfs for the real-kernel agent tests.

Steps, each cached under the cache directory (``.kernel-cache/`` in the
repository root unless ``OS_BRICK_NVME_AGENT_KERNEL_CACHE`` says otherwise):

1. ``apt-get download`` the Debian kernel image package that
   ``linux-image-amd64`` depends on and unpack it with ``dpkg-deb -x``;
2. pull the compressed payload out of the bzImage and decompress it to the
   ELF ``vmlinux`` that qemu boots directly through its PVH entry point;
3. write a ``newc`` initramfs holding busybox, mdadm, nvme-cli with their
   shared libraries, the kernel modules the tests need (dependencies read
   from each module's ``.modinfo`` section, since the package ships no
   ``modules.dep``) and ``tools/kernel/init``.

Usage: ``python3 tools/kernel/build.py [--cache DIR] [--force]``; it prints
the cache directory on its last line.  Only the Python standard library is
used, so it runs before any virtualenv exists.
"""

import argparse
import lzma
import os
import pathlib
import re
import shutil
import struct
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
META_PACKAGE = 'linux-image-amd64'

# Modules loaded at boot, in this order after their dependencies.
MODULES = (
    'virtio_pci', '9pnet_virtio', '9p', 'configfs', 'crc32c_generic',
    'nvme-core', 'nvme-fabrics', 'nvme-tcp', 'nvmet', 'nvmet-tcp',
    'md-mod', 'raid1',
)
BINARIES = ('/usr/sbin/mdadm', '/usr/sbin/nvme')
BUSYBOX = '/bin/busybox'


def cache_dir(explicit=None):
    path = explicit or os.environ.get('OS_BRICK_NVME_AGENT_KERNEL_CACHE')
    return pathlib.Path(path or REPO / '.kernel-cache').resolve()


def _apt_update():
    """Refresh apt's package lists (a fresh machine may have none)."""
    subprocess.run(['apt-get', 'update', '-q'], check=True)


def _find_kernel_package():
    out = subprocess.run(['apt-cache', 'depends', META_PACKAGE],
                         capture_output=True, text=True).stdout
    match = re.search(r'Depends:\s*(linux-image-[0-9][^\s]*-amd64)', out)
    return match.group(1) if match else None


def kernel_package():
    """Name of the versioned image package behind the meta package."""
    package = _find_kernel_package()
    if package is None:
        _apt_update()
        package = _find_kernel_package()
    if package is None:
        raise SystemExit('cannot find the kernel package behind %s in the '
                         'apt package lists' % META_PACKAGE)
    return package


def _download(package, debs):
    """apt-get download, once more after an update if the lists are old."""
    if subprocess.run(['apt-get', 'download', package], cwd=debs).returncode:
        _apt_update()
        subprocess.run(['apt-get', 'download', package], cwd=debs,
                       check=True)


def fetch_kernel(cache):
    """Download and unpack the kernel package; return (release, root)."""
    package = kernel_package()
    release = package[len('linux-image-'):]
    root = cache / 'pkg' / release
    if (root / 'boot').is_dir():
        return release, root
    debs = cache / 'debs'
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(package + '_*.deb')):
        _download(package, debs)
    deb = sorted(debs.glob(package + '_*.deb'))[-1]
    tmp = root.with_name(root.name + '.tmp')
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    subprocess.run(['dpkg-deb', '-x', str(deb), str(tmp)], check=True)
    tmp.rename(root)
    return release, root


def extract_vmlinux(bzimage):
    """Return the ELF kernel held compressed inside a bzImage.

    The x86 boot protocol header gives the number of setup sectors (byte
    0x1f1) and, from protocol 2.08, the offset and length of the compressed
    payload inside the protected-mode part (0x248, 0x24c).
    """
    data = pathlib.Path(bzimage).read_bytes()
    if data[0x202:0x206] != b'HdrS':
        raise ValueError('%s is not a bzImage' % bzimage)
    setup_sects = data[0x1f1] or 4
    offset, length = struct.unpack_from('<II', data, 0x248)
    start = (setup_sects + 1) * 512 + offset
    payload = data[start:start + length]
    if payload.startswith(b'\xfd7zXZ'):
        decomp = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elif payload.startswith(b'\x1f\x8b'):
        import zlib
        decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
    else:
        raise ValueError('unsupported payload compression %r' % payload[:6])
    elf = decomp.decompress(payload)
    if not elf.startswith(b'\x7fELF'):
        raise ValueError('payload of %s is not an ELF image' % bzimage)
    return elf


def modinfo_depends(ko_path):
    """Module names a .ko depends on, read from its .modinfo section."""
    data = pathlib.Path(ko_path).read_bytes()
    shoff, = struct.unpack_from('<Q', data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', data, 0x3a)

    def section(index):
        base = shoff + index * shentsize
        name, = struct.unpack_from('<I', data, base)
        off, size = struct.unpack_from('<QQ', data, base + 0x18)
        return name, data[off:off + size]

    _, names = section(shstrndx)
    for index in range(shnum):
        name_off, body = section(index)
        name = names[name_off:names.index(b'\0', name_off)]
        if name == b'.modinfo':
            for entry in body.split(b'\0'):
                if entry.startswith(b'depends='):
                    deps = entry[len(b'depends='):].decode()
                    return [d for d in deps.split(',') if d]
    return []


def module_order(modroot, wanted):
    """Resolve ``wanted`` to .ko paths, dependencies first."""
    index = {}
    for ko in modroot.rglob('*.ko'):
        index[ko.stem.replace('-', '_')] = ko
    order, seen = [], set()

    def visit(name):
        key = name.replace('-', '_')
        if key in seen:
            return
        seen.add(key)
        if key not in index:
            raise SystemExit('module %s not found under %s' % (name, modroot))
        for dep in modinfo_depends(index[key]):
            visit(dep)
        order.append(index[key])

    for name in wanted:
        visit(name)
    return order


def shared_libraries(binary):
    """Absolute paths of the shared libraries ``binary`` loads (via ldd)."""
    out = subprocess.run(['ldd', binary], check=True, capture_output=True,
                         text=True).stdout
    libs = []
    for line in out.splitlines():
        match = re.search(r'(/\S+)\s+\(0x', line)
        if match:
            libs.append(match.group(1))
    return libs


class Cpio(object):
    """A minimal writer for the ``newc`` format the kernel unpacks."""

    def __init__(self, stream):
        self.stream = stream
        self.ino = 1
        self.dirs = set()

    def _entry(self, name, mode, body=b''):
        name_b = name.encode() + b'\0'
        header = '070701' + ''.join('%08X' % v for v in (
            self.ino, mode, 0, 0, 1, 0, len(body), 0, 0, 0, 0,
            len(name_b), 0))
        self.ino += 1
        self.stream.write(header.encode() + name_b)
        self.stream.write(b'\0' * (-(110 + len(name_b)) % 4))
        self.stream.write(body)
        self.stream.write(b'\0' * (-len(body) % 4))

    def mkdir(self, name):
        name = name.strip('/')
        if not name or name in self.dirs:
            return
        self.mkdir(os.path.dirname(name))
        self.dirs.add(name)
        self._entry(name, 0o040755)

    def file(self, name, body, mode=0o644):
        name = name.strip('/')
        self.mkdir(os.path.dirname(name))
        self._entry(name, 0o100000 | mode, body)

    def symlink(self, name, target):
        name = name.strip('/')
        self.mkdir(os.path.dirname(name))
        self._entry(name, 0o120777, target.encode())

    def close(self):
        self._entry('TRAILER!!!', 0)


def write_initramfs(path, release, modroot):
    modules = module_order(modroot, MODULES)
    libs = sorted({lib for b in BINARIES for lib in shared_libraries(b)})
    tmp = path.with_name(path.name + '.tmp')
    with open(tmp, 'wb') as stream:
        cpio = Cpio(stream)
        for name in ('dev', 'proc', 'sys', 'run', 'tmp', 'mnt', 'host',
                     'etc/nvme', 'sbin', 'usr/bin', 'usr/sbin'):
            cpio.mkdir(name)
        cpio.file('bin/busybox', pathlib.Path(BUSYBOX).read_bytes(), 0o755)
        cpio.symlink('bin/sh', 'busybox')
        for binary in BINARIES:
            cpio.file(binary, pathlib.Path(binary).read_bytes(), 0o755)
        for lib in libs:
            real = os.path.realpath(lib)
            cpio.file(lib, pathlib.Path(real).read_bytes(), 0o755)
        dest = 'lib/modules/%s/' % release
        for ko in modules:
            cpio.file(dest + ko.name, ko.read_bytes())
        cpio.file(dest + 'load.order',
                  ''.join(ko.name + '\n' for ko in modules).encode())
        cpio.file('init', (HERE / 'init').read_bytes(), 0o755)
        cpio.close()
    os.replace(tmp, path)
    return modules


def build(cache, force=False):
    """Build (or reuse) vmlinux + initramfs; return their paths."""
    release, root = fetch_kernel(cache)
    out = cache / 'out' / release
    out.mkdir(parents=True, exist_ok=True)
    vmlinux, initrd = out / 'vmlinux', out / 'initramfs.cpio'
    if force or not vmlinux.exists():
        tmp = vmlinux.with_name('vmlinux.tmp')
        bzimage = root / 'boot' / ('vmlinuz-' + release)
        tmp.write_bytes(extract_vmlinux(bzimage))
        os.replace(tmp, vmlinux)
    inputs = [HERE / 'init', pathlib.Path(__file__).resolve()]
    stale = (not initrd.exists() or any(
        p.stat().st_mtime > initrd.stat().st_mtime for p in inputs))
    if force or stale:
        write_initramfs(initrd, release, root / 'lib' / 'modules' / release)
    (cache / 'current').write_text('%s\n' % out)
    return vmlinux, initrd


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cache', help='cache directory')
    parser.add_argument('--force', action='store_true',
                        help='rebuild vmlinux and initramfs')
    args = parser.parse_args(argv)
    vmlinux, initrd = build(cache_dir(args.cache), args.force)
    print(vmlinux)
    print(initrd)
    print(vmlinux.parent)
    return 0


if __name__ == '__main__':
    sys.exit(main())
