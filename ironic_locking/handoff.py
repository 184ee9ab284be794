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

"""First come, first served hand-off of node reservations in one process.

ironic's hash ring routes every RPC and periodic task for a node to the
conductor that owns it, so nearly all waiting for a node lock happens
between threads of one process. :class:`Registry` keeps, per node, the
threads that want its reservation in arrival order and whether a task of
this process holds it. Only the thread at the head of a line has *the
turn*: it alone queries the database; the others wait on an event. When the
local holder releases the node, the head is woken at once, so the node is
never left idle while a waiter of this process sleeps out a poll interval.

The registry only orders threads and wakes them; the database reservation
stays the single source of truth. A waiter that is woken still reserves
through ``Node.reserve``, and a holder in another conductor (or one this
registry does not know about) is waited for by polling, which the task
manager does.
"""

import collections
import threading

__all__ = ['Ticket', 'Registry', 'REGISTRY']


class Ticket(object):
    """One thread's place in a node's line.

    :ivar key: the node key of the line the ticket is in.
    :ivar event: set when the thread should try to reserve now.
    """

    __slots__ = ('key', 'event')

    def __init__(self, key):
        self.key = key
        self.event = threading.Event()


class _Line(object):
    """Waiters of one node, and whether a task of this process holds it."""

    __slots__ = ('held', 'queue', 'aliases')

    def __init__(self):
        self.held = False
        self.queue = collections.deque()
        self.aliases = set()

    def idle(self):
        return not self.held and not self.queue


class Registry(object):
    """Lines of waiters per node, keyed by node UUID (aliases: its ID)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._lines = {}
        self._aliases = {}

    def _key(self, node_id):
        return self._aliases.get(node_id, node_id)

    def _line(self, key):
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = _Line()
        return line

    def _drop_if_idle(self, key):
        line = self._lines.get(key)
        if line is not None and line.idle():
            del self._lines[key]
            for alias in line.aliases:
                self._aliases.pop(alias, None)

    def _give_turn(self, line):
        if line.queue and not line.held:
            line.queue[0].event.set()

    def _remove(self, ticket):
        line = self._lines.get(ticket.key)
        if line is None or ticket not in line.queue:
            return
        was_head = line.queue[0] is ticket
        line.queue.remove(ticket)
        if was_head:
            self._give_turn(line)
        self._drop_if_idle(ticket.key)

    def arrive(self, node_id):
        """Queue a new lock request; its event is set if it may try now.

        :param node_id: the node's UUID or database ID, as requested.
        :returns: a :class:`Ticket`.
        """
        with self._lock:
            ticket = Ticket(self._key(node_id))
            line = self._line(ticket.key)
            line.queue.append(ticket)
            if len(line.queue) == 1 and not line.held:
                ticket.event.set()
            return ticket

    def requeue(self, ticket, key):
        """Move ``ticket`` to the line of ``key`` (the node's UUID).

        A request made by database ID learns the UUID from its first
        failure; the line of the UUID is the one a holder releases.
        """
        with self._lock:
            if self._key(key) == ticket.key:
                return
            self._remove(ticket)
            ticket.key = self._key(key)
            line = self._line(ticket.key)
            # The ticket comes from a failed attempt: whether it is first
            # or not, nothing has changed that it should be woken for.
            line.queue.append(ticket)

    def position(self, ticket):
        """:returns: ``(place in line from 0, node held here)``."""
        with self._lock:
            line = self._lines.get(ticket.key)
            if line is None or ticket not in line.queue:
                return 0, False
            return line.queue.index(ticket), line.held

    def acquired(self, ticket, uuid, aliases=()):
        """A task of this process reserved the node.

        :param ticket: the request's ticket, or None if it never queued.
        :param uuid: the node's UUID.
        :param aliases: other keys the node is requested by (its ID).
        """
        with self._lock:
            line = self._line(uuid)
            # Held before the ticket leaves: the next one keeps waiting.
            line.held = True
            if ticket is not None:
                self._remove(ticket)
            for alias in aliases:
                if alias is not None and alias != uuid:
                    line.aliases.add(alias)
                    self._aliases[alias] = uuid

    def released(self, uuid):
        """The local holder released the node: the head may try now."""
        with self._lock:
            line = self._lines.get(uuid)
            if line is None:
                return
            line.held = False
            self._give_turn(line)
            self._drop_if_idle(uuid)

    def leave(self, ticket):
        """The request gave up or failed: let the next one have the turn."""
        with self._lock:
            self._remove(ticket)

    def nodes(self):
        """:returns: the keys of the lines in use (for tests and reports)."""
        with self._lock:
            return set(self._lines)


# One per process: the conductor's threads share it.
REGISTRY = Registry()
