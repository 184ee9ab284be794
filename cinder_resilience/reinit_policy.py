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

"""Pure decisions of driver re-initialization: waits, options, errors.

Nothing here sleeps, logs or touches a driver; the manager feeds these
functions and acts on their answers, and the tests check them directly.
"""

import dataclasses

from oslo_config import cfg
from oslo_utils import importutils

from cinder_resilience import exception

_MAX_EXPONENT = 30


@dataclasses.dataclass(frozen=True)
class ReinitPolicy:
    """Validated re-initialization settings, read once at service start."""

    count: int
    max_interval: float
    jitter: float
    background: bool
    probe_interval: float
    permanent: tuple

    def counted_wait(self, attempt, rand):
        """Wait before counted retry ``attempt`` (0-based): 1, 2, 4, ... s."""
        return jittered(nominal_wait(attempt, self.max_interval),
                        self.max_interval, self.jitter, rand)

    def probe_wait(self, attempt, rand):
        """Wait before background probe number ``attempt``.

        The doubling of the counted waits goes on, capped at the probe
        interval.
        """
        return jittered(nominal_wait(attempt, self.probe_interval),
                        self.probe_interval, self.jitter, rand)


def nominal_wait(attempt, cap):
    """``2 ** attempt`` seconds, never more than ``cap``."""
    return float(min(2 ** min(attempt, _MAX_EXPONENT), cap))


def jittered(wait, cap, jitter, rand):
    """Spread ``wait`` by +/- ``jitter`` (``rand`` in [0, 1)), within cap.

    :param wait: nominal wait in seconds
    :param cap: the result never exceeds this
    :param jitter: relative spread, 0 keeps ``wait`` unchanged
    :param rand: a uniform random number in [0, 1)
    :returns: the wait to use, in seconds
    """
    spread = wait * jitter * (2.0 * rand - 1.0)
    return max(0.0, min(cap, wait + spread))


def resolve_exception_classes(names):
    """Import the exception classes named by dotted ``names``.

    :param names: iterable of ``module.ClassName`` strings
    :returns: tuple of exception classes
    :raises InvalidReinitOption: a name is not importable or not an
        exception class
    """
    classes = []
    for name in names:
        try:
            cls = importutils.import_class(name)
        except (ImportError, ValueError, AttributeError) as exc:
            raise _bad_option('reinit_driver_permanent_errors',
                              '%s cannot be imported (%s)' % (name, exc))
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise _bad_option('reinit_driver_permanent_errors',
                              '%s is not an exception class' % name)
        classes.append(cls)
    return tuple(classes)


def find_permanent(exc, classes):
    """Return the exception in ``exc``'s cause chain that is permanent.

    Drivers often wrap the original error (``raise X from err``), so the
    explicit cause and the implicit context are followed as well.

    :returns: the first matching exception, or None when none matches
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if classes and isinstance(exc, classes):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def load_policy(conf):
    """Read and validate the options; a bad value names its option.

    :param conf: a ConfigOpts with cinder's and this package's options
    :returns: ReinitPolicy
    :raises InvalidReinitOption: an option holds an unusable value
    """
    values = {}
    for name in ('reinit_driver_count', 'reinit_driver_max_interval',
                 'reinit_driver_jitter', 'reinit_driver_background',
                 'reinit_driver_probe_interval',
                 'reinit_driver_permanent_errors'):
        try:
            values[name] = getattr(conf, name)
        except (cfg.ConfigFileValueError, ValueError) as exc:
            raise _bad_option(name, exc)
    # cinder registers reinit_driver_count without bounds; ours need them.
    if not 0 <= values['reinit_driver_count'] <= 1000:
        raise _bad_option('reinit_driver_count',
                          'must be between 0 and 1000, got %s' %
                          values['reinit_driver_count'])
    return ReinitPolicy(
        count=values['reinit_driver_count'],
        max_interval=float(values['reinit_driver_max_interval']),
        jitter=values['reinit_driver_jitter'],
        background=values['reinit_driver_background'],
        probe_interval=float(values['reinit_driver_probe_interval']),
        permanent=resolve_exception_classes(
            values['reinit_driver_permanent_errors']))


def _bad_option(name, reason):
    return exception.InvalidReinitOption(group='DEFAULT', option=name,
                                         reason=reason)
