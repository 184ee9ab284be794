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

"""The per-node lines of one process: order, turns and wake-ups."""

import threading

from oslotest import base

from ironic_locking import handoff

NODE = '1be26c0b-03f2-4d2e-ae87-c02d7f33c123'


class RegistryTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.registry = handoff.Registry()

    def test_first_arrival_has_the_turn(self):
        ticket = self.registry.arrive(NODE)
        self.assertTrue(ticket.event.is_set())
        self.assertEqual((0, False), self.registry.position(ticket))

    def test_later_arrivals_queue_without_the_turn(self):
        first = self.registry.arrive(NODE)
        second = self.registry.arrive(NODE)
        third = self.registry.arrive(NODE)
        self.assertFalse(second.event.is_set())
        self.assertEqual((1, False), self.registry.position(second))
        self.assertEqual((2, False), self.registry.position(third))
        # An arrival does not wake the head (it may be polling).
        first.event.clear()
        self.registry.arrive(NODE)
        self.assertFalse(first.event.is_set())

    def test_release_wakes_the_next_in_arrival_order(self):
        first = self.registry.arrive(NODE)
        tickets = [self.registry.arrive(NODE) for _ in range(3)]
        self.registry.acquired(first, NODE)
        woken = []
        for ticket in tickets:
            self.assertEqual(0, sum(t.event.is_set() for t in tickets))
            self.registry.released(NODE)
            woken.append([t.event.is_set() for t in tickets].index(True))
            ticket.event.clear()
            self.registry.acquired(ticket, NODE)
        self.assertEqual([0, 1, 2], woken)
        self.registry.released(NODE)
        self.assertEqual(set(), self.registry.nodes())

    def test_arrival_while_held_waits(self):
        holder = self.registry.arrive(NODE)
        self.registry.acquired(holder, NODE)
        ticket = self.registry.arrive(NODE)
        self.assertFalse(ticket.event.is_set())
        self.assertEqual((0, True), self.registry.position(ticket))

    def test_leaving_head_passes_the_turn(self):
        first = self.registry.arrive(NODE)
        second = self.registry.arrive(NODE)
        self.registry.leave(first)
        self.assertTrue(second.event.is_set())

    def test_leaving_behind_changes_nothing_for_the_head(self):
        first = self.registry.arrive(NODE)
        first.event.clear()
        second = self.registry.arrive(NODE)
        self.registry.leave(second)
        self.assertFalse(first.event.is_set())
        self.registry.leave(first)
        self.assertEqual(set(), self.registry.nodes())

    def test_leaving_twice_is_harmless(self):
        ticket = self.registry.arrive(NODE)
        self.registry.acquired(ticket, NODE)
        self.registry.leave(ticket)
        self.assertEqual((0, False), self.registry.position(ticket))

    def test_database_id_is_an_alias_once_known(self):
        holder = self.registry.arrive(NODE)
        self.registry.acquired(holder, NODE, aliases=(42,))
        ticket = self.registry.arrive(42)
        self.assertEqual(NODE, ticket.key)
        self.registry.released(NODE)
        self.assertTrue(ticket.event.is_set())
        self.registry.acquired(ticket, NODE)
        self.registry.released(NODE)
        self.assertEqual(set(), self.registry.nodes())
        self.assertEqual(42, self.registry.arrive(42).key)

    def test_requeue_moves_to_the_uuid_line(self):
        holder = self.registry.arrive(NODE)
        self.registry.acquired(holder, NODE)
        by_id = self.registry.arrive(42)
        by_id.event.clear()
        self.registry.requeue(by_id, NODE)
        self.assertEqual((0, True), self.registry.position(by_id))
        self.assertFalse(by_id.event.is_set())
        self.registry.released(NODE)
        self.assertTrue(by_id.event.is_set())

    def test_release_of_unknown_node_is_harmless(self):
        self.registry.released('other')
        self.assertEqual(set(), self.registry.nodes())

    def test_threads_are_served_in_arrival_order(self):
        holder = self.registry.arrive(NODE)
        self.registry.acquired(holder, NODE)
        order, lock = [], threading.Lock()
        tickets = [self.registry.arrive(NODE) for _ in range(5)]

        def waiter(index, ticket):
            # No timeout: the releases below are what ends each wait.
            ticket.event.wait()
            with lock:
                order.append(index)
            self.registry.acquired(ticket, NODE)
            self.registry.released(NODE)

        threads = [threading.Thread(target=waiter, args=(i, t))
                   for i, t in reversed(list(enumerate(tickets)))]
        for thread in threads:
            thread.start()
        self.registry.released(NODE)
        for thread in threads:
            thread.join()
        self.assertEqual([0, 1, 2, 3, 4], order)
        self.assertEqual(set(), self.registry.nodes())
