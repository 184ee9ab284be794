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

"""Every change the plugin makes to code of its host (cinder, oslo).

This module is the one place where cinder_resilience replaces an attribute
of cinder or of an oslo library.  Each patch is a :class:`HostPatch`:

* ``install(...)`` replaces the attributes and records, per attribute, the
  object it replaced and whether the target held it itself (an instance
  attribute) or inherited it (a class attribute seen through an instance);
* ``uninstall()`` restores exactly that record: the original value put back,
  or the instance attribute removed so the class one shows through again;
* ``PINS`` names each upstream object the patch relies on with the
  parameters it must have.  ``install`` checks them and refuses with
  :class:`~cinder_resilience.exception.HostPatchMismatch` when an upgrade
  changed one, and the unit tests check them against the installed packages.

Patches here:

``EXTERNAL_LOCKS``
    ``oslo_concurrency.lockutils.external_lock``: cinder's external locks
    (prefix ``cinder-``) served by a distributed lock.
``CINDER_COORDINATOR``
    the name ``coordination`` (tooz.coordination) in the module
    ``cinder.coordination``: when the one ``cinder.coordination.COORDINATOR``
    instance connects, it gets a tooz-driver look-alike backed by our
    coordinator.  Every lock cinder and its drivers take through
    ``cinder.coordination`` (``synchronized``, ``COORDINATOR.get_lock``,
    ``synchronized_remove``) then goes through ours, while cinder's own
    methods run unchanged.  See
    :mod:`cinder_resilience.coordination_service`.
"""

import inspect
import threading

from oslo_log import log as logging

from cinder_resilience import exception

LOG = logging.getLogger(__name__)

#: Marker of "the target did not hold the attribute itself".
_INHERITED = object()


def resolve(dotted):
    """Return the object named ``package.module.attr[.attr...]``."""
    parts = dotted.split('.')
    for cut in range(len(parts), 0, -1):
        try:
            obj = __import__('.'.join(parts[:cut]),
                             fromlist=['_'] if cut > 1 else [])
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def parameters_of(func):
    """Parameters of ``func`` as text, without annotations.

    ``(name, lock_file_prefix=None, lock_path=None)``: what a caller or a
    replacement relies on; annotations may change freely.
    """
    sig = inspect.signature(func)
    params = [p.replace(annotation=inspect.Parameter.empty,
                        default=_Default.of(p.default))
              for p in sig.parameters.values()]
    return str(sig.replace(parameters=params,
                           return_annotation=inspect.Signature.empty))


class _Default(object):
    """Renders a non-literal default by its type: ``<Coordinator>``."""

    LITERALS = (type(None), bool, int, float, str, bytes, tuple, frozenset)

    def __init__(self, value):
        self.value = value

    @classmethod
    def of(cls, value):
        if value is inspect.Parameter.empty or isinstance(value,
                                                          cls.LITERALS):
            return value
        return cls(value)

    def __repr__(self):
        return '<%s>' % type(self.value).__name__


def check_pins(pins):
    """Raise HostPatchMismatch unless every pinned object is as expected.

    :param pins: ``{dotted name: parameters text}``; a value of None only
                 requires the object to exist.
    """
    for dotted, expected in sorted(pins.items()):
        try:
            obj = resolve(dotted)
        except (ImportError, AttributeError) as exc:
            raise exception.HostPatchMismatch(name=dotted,
                                              reason='missing (%s)' % exc)
        if expected is None:
            continue
        actual = parameters_of(obj)
        if actual != expected:
            raise exception.HostPatchMismatch(
                name=dotted, reason='parameters are %s, expected %s'
                % (actual, expected))


class Replacement(object):
    """One attribute of one object replaced, and how to put it back."""

    def __init__(self, target, attribute, new):
        self.target = target
        self.attribute = attribute
        self.new = new
        own = getattr(target, '__dict__', {})
        self.original = own.get(attribute, _INHERITED)
        self.replaced = getattr(target, attribute, None)

    def apply(self):
        setattr(self.target, self.attribute, self.new)

    def restore(self):
        """Put the original back; warn if someone replaced ours meanwhile."""
        current = getattr(self.target, self.attribute, None)
        if current is not self.new:
            LOG.warning('%(attr)s of %(target)r was replaced by someone else '
                        'while patched; restoring the original anyway',
                        {'attr': self.attribute, 'target': self.target})
        if self.original is _INHERITED:
            try:
                delattr(self.target, self.attribute)
            except AttributeError:
                pass
        else:
            setattr(self.target, self.attribute, self.original)

    def __repr__(self):
        return '<Replacement %s.%s: %r -> %r>' % (
            getattr(self.target, '__name__', type(self.target).__name__),
            self.attribute, self.replaced, self.new)


class HostPatch(object):
    """Base of the patches: subclasses fill ``PINS`` and ``_replacements``.

    ``replacements`` is the record of the installed patch (empty when it is
    not installed).
    """

    #: ``{dotted name: parameters}`` of the upstream objects relied on.
    PINS = {}

    def __init__(self, name):
        self.name = name
        self.replacements = []
        self._lock = threading.Lock()

    @property
    def installed(self):
        return bool(self.replacements)

    def install(self, *args, **kwargs):
        """Replace the host attributes (a reinstall replaces the first)."""
        check_pins(self.PINS)
        with self._lock:
            self._undo()
            replacements = self._replacements(*args, **kwargs)
            for replacement in replacements:
                replacement.apply()
            self.replacements = replacements
        LOG.debug('Host patch %(name)s installed: %(record)s',
                  {'name': self.name, 'record': replacements})

    def uninstall(self):
        """Restore every replaced attribute; a no-op when not installed."""
        with self._lock:
            self._undo()

    def _undo(self):
        for replacement in reversed(self.replacements):
            replacement.restore()
        if self.replacements:
            LOG.debug('Host patch %s uninstalled', self.name)
        self.replacements = []

    def _replacements(self, *args, **kwargs):
        raise NotImplementedError()

    def __repr__(self):
        return '<HostPatch %s installed=%s>' % (self.name, self.installed)


class ExternalLockRouting(HostPatch):
    """Route oslo.concurrency external locks of one prefix to a coordinator.

    ``cinder.utils.synchronized(name, external=True)`` ends in
    ``lockutils.lock``, which builds the file lock through
    ``lockutils.external_lock(name, lock_file_prefix, lock_path)`` at call
    time: replacing that module function reaches functions decorated at
    import time.  Other prefixes (os-brick's...) keep their lock files.
    """

    PINS = {
        'oslo_concurrency.lockutils.external_lock':
            '(name, lock_file_prefix=None, lock_path=None)',
        'oslo_concurrency.lockutils.lock':
            '(name, lock_file_prefix=None, external=False, lock_path=None, '
            'do_log=True, semaphores=None, delay=0.01, fair=False, '
            'blocking=True)',
    }

    @property
    def coordinator(self):
        """The coordinator locks are routed to, or None."""
        return self.replacements[0].new.routed_to if self.installed else None

    def _replacements(self, coordinator, prefix):
        from oslo_concurrency import lockutils

        from cinder_resilience import external_locks
        original = lockutils.external_lock

        def external_lock(name, lock_file_prefix=None, lock_path=None):
            if lock_file_prefix == prefix and coordinator.started:
                return external_locks.ExternalLock(coordinator.get_lock(name))
            return original(name, lock_file_prefix, lock_path)

        external_lock.routed_to = coordinator
        return [Replacement(lockutils, 'external_lock', external_lock)]


class ToozForCinder(object):
    """What ``cinder.coordination`` sees as ``tooz.coordination``.

    ``get_coordinator`` called for the member id of ``COORDINATOR`` returns
    ``make_driver(backend_url, member_id)``; any other call, and every other
    attribute, is tooz's own, looked up at call time.
    """

    def __init__(self, tooz_module, upstream, make_driver):
        self._tooz = tooz_module
        self._upstream = upstream
        self.make_driver = make_driver

    def get_coordinator(self, backend_url, member_id, *args, **kwargs):
        upstream = self._upstream
        mine = (upstream.prefix + upstream.agent_id).encode('ascii')
        if member_id == mine:
            return self.make_driver(backend_url, member_id)
        return self._tooz.get_coordinator(backend_url, member_id, *args,
                                          **kwargs)

    def __getattr__(self, name):
        return getattr(self._tooz, name)


class CinderCoordinatorRouting(HostPatch):
    """Serve ``cinder.coordination.COORDINATOR`` from our coordinator.

    ``synchronized`` bound ``coordinator=COORDINATOR`` at import time, so
    whatever replaces cinder's locks must act on that one instance.  Its
    ``start()`` asks ``coordination.get_coordinator(url, member_id)`` for a
    tooz driver, and its ``get_lock``/``stop`` only call that driver.  This
    patch rebinds the module global ``coordination`` of
    ``cinder.coordination`` to a ``ToozForCinder`` that hands that instance
    (and only it: other Coordinator objects get tooz's driver) a driver
    backed by our coordinator.  No method of cinder is replaced, so
    cinder's lock names, keys, ``started`` and ``_file_path`` (used by
    ``synchronized_remove``) are cinder's own, and a test that mocks a
    method of ``cinder.coordination.Coordinator`` still mocks it.
    """

    PINS = {
        'cinder.coordination.COORDINATOR': None,
        # cinder.coordination does ``from tooz import coordination``.
        'cinder.coordination.coordination': None,
        'tooz.coordination.get_coordinator':
            '(backend_url, member_id, characteristics=None, **kwargs)',
        'cinder.coordination.Coordinator.__init__':
            "(self, agent_id=None, prefix='')",
        'cinder.coordination.Coordinator.start': '(self)',
        'cinder.coordination.Coordinator.stop': '(self)',
        'cinder.coordination.Coordinator.get_lock': '(self, name)',
        'cinder.coordination.Coordinator.remove_lock': '(self, glob_name)',
        'cinder.coordination.synchronized':
            '(*lock_names, blocking=True, coordinator=<Coordinator>)',
        'cinder.coordination.synchronized_remove':
            '(glob_name, coordinator=<Coordinator>)',
    }

    def _replacements(self, make_driver):
        from cinder import coordination as cinder_coordination
        from tooz import coordination as tooz_coordination
        shim = ToozForCinder(tooz_coordination,
                             cinder_coordination.COORDINATOR, make_driver)
        return [Replacement(cinder_coordination, 'coordination', shim)]


EXTERNAL_LOCKS = ExternalLockRouting('external-locks')
CINDER_COORDINATOR = CinderCoordinatorRouting('cinder-coordinator')

#: Every patch of this module, in installation order.
PATCHES = (EXTERNAL_LOCKS, CINDER_COORDINATOR)


def uninstall_all():
    """Undo every installed patch (last installed first)."""
    for patch in reversed(PATCHES):
        patch.uninstall()
