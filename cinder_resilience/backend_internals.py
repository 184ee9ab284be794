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

"""Every read of a private attribute of tooz or of its client libraries.

tooz gives no public way to get a redis lock's owner token, an etcd lock's
lease and key, or the kazoo client and lock znode; fencing tokens and lease
refreshes need them.  Each read goes through one accessor class per backend
here, and a missing attribute raises ``BackendInternalsChanged`` naming it
instead of an AttributeError deep in a lease keeper.  The unit tests read
every accessor from real tooz objects, so an upgrade that drops one fails a
test.

The ``*_errors()`` functions list, per backend, the client-library errors
that mean "the backend cannot be reached"; ``translated`` turns them into
``tooz.coordination.ToozConnectionError`` at one edge.
"""

import base64
import contextlib

from tooz import coordination as tooz_coordination

from cinder_resilience import exception


def _private(obj, *path):
    """Read ``obj.a.b...``; BackendInternalsChanged if a step is gone."""
    for attribute in path:
        try:
            obj = getattr(obj, attribute)
        except AttributeError:
            raise exception.BackendInternalsChanged(
                owner=type(obj).__module__ + '.' + type(obj).__name__,
                attribute=attribute)
    return obj


class RedisInternals(object):
    """Private reads of tooz's redis driver and redis-py's lock."""

    @staticmethod
    def client(driver):
        """redis-py client of a started tooz RedisDriver."""
        return _private(driver, '_client')

    @staticmethod
    def owner_token(lock):
        """redis-py's random token stored as the value of our lock key."""
        return _private(lock, '_lock', 'local', 'token')


class EtcdInternals(object):
    """Private reads of tooz's etcd3gw lock."""

    @staticmethod
    def key(lock):
        return _private(lock, '_key')

    @staticmethod
    def owner_value(lock):
        """The value tooz writes under the key: our lock's uuid."""
        return base64.b64decode(_private(lock, '_uuid'))

    @staticmethod
    def lease(lock):
        """etcd3gw Lease of the held lock (None when not held)."""
        return _private(lock, '_lease')


class KazooInternals(object):
    """Private reads of tooz's zookeeper driver and kazoo's lock."""

    @staticmethod
    def client(driver):
        """KazooClient of a tooz KazooDriver."""
        return _private(driver, '_coord')

    @staticmethod
    def lock_node(lock):
        """Path of the znode kazoo created for our acquisition."""
        recipe = _private(lock, '_lock')
        node = _private(recipe, 'node') or ''
        return _private(recipe, 'path').rstrip('/') + '/' + node


def redis_errors():
    from redis import exceptions
    return (exceptions.ConnectionError, exceptions.TimeoutError)


def etcd_errors():
    from etcd3gw import exceptions
    return (exceptions.ConnectionFailedError,
            exceptions.ConnectionTimeoutError, exceptions.Etcd3Exception)


def kazoo_errors():
    from kazoo import exceptions
    return (exceptions.ConnectionLoss, exceptions.ConnectionClosedError,
            exceptions.SessionExpiredError, exceptions.OperationTimeoutError)


@contextlib.contextmanager
def translated(errors):
    """Turn ``errors`` (a backend's ``*_errors()``) to ToozConnectionError.

    Like tooz's ``_translate_failures``: only the listed client-library
    errors are translated; anything else goes through unchanged (an
    empty tuple translates nothing).
    """
    try:
        yield
    except errors as exc:
        raise tooz_coordination.ToozConnectionError(
            '%s: %s' % (type(exc).__name__, exc)) from exc
