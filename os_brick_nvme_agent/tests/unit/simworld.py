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

"""A small simulated host + provisioner that applies the engine's actions.

It behaves like the kernel and mdadm where the engine's safety depends on
it: a device that is an active member cannot be removed without being
failed first, a device must exist to be added, ``nvme connect`` fails while
the target is down. It also checks the engine's invariants as it goes and
raises :class:`InvariantViolation` when one is broken.
"""

import dataclasses
import itertools

from os_brick_nvme_agent import model

LS = model.LegState
RS = model.ReplicaState
PORTAL = (model.Portal('tcp', '192.0.2.1', 4420),)


class InvariantViolation(AssertionError):
    pass


class ActionFailed(Exception):
    """A command failed the way the real one would (not an engine bug)."""


class ConnectFailed(ActionFailed):
    pass


@dataclasses.dataclass
class SimLeg:
    device: str
    nqn: str
    state: LS


@dataclasses.dataclass
class SimArray:
    name: str
    md_name: str
    legs: list
    raid_disks: int = 2
    broken: bool = False        # lost its last good copy: operator's job


@dataclasses.dataclass
class SimReplica:
    id: str
    nqn: str
    state: RS = RS.AVAILABLE


@dataclasses.dataclass
class SimVolume:
    generation: int
    replicas: list
    requests: list = dataclasses.field(default_factory=list)


class SimWorld(object):
    """Host arrays, controllers, targets and a provisioner, in memory."""

    def __init__(self, volumes=('vol-a',), legs=2, grace=100.0):
        """:param legs: legs per array, or a dict volume -> legs."""
        self.grace = grace
        self.now = 1000.0
        self._ids = itertools.count(1)
        self.targets = {}           # nqn -> up
        self.controllers = {}       # nqn -> [name, state, device or None]
        self.arrays = {}
        self.volumes = {}
        self.born = {}              # nqn -> when the replica was created
        self.nqn_of = {}            # replica id -> nqn, ever
        self.seen_in_sync = {}      # nqn -> last pass that saw it in sync
        self.log = []
        for n, volume_id in enumerate(volumes):
            count = legs.get(volume_id, 2) if isinstance(legs, dict) \
                else legs
            self._build_volume('md%d' % (127 - n), volume_id, count)
        # Arrays the engine must never touch.
        self._build_foreign('md100', 'foreign-array', 2)
        self._build_foreign('md101', 'unknown-volume', 2)

    # Construction -------------------------------------------------------

    def _new_replica(self):
        n = next(self._ids)
        nqn = 'nqn.2014-08.org.example:replica-%d' % n
        self.targets[nqn] = True
        self.born[nqn] = self.now
        self.nqn_of['r%d' % n] = nqn
        return SimReplica('r%d' % n, nqn)

    def _connect(self, nqn):
        n = next(self._ids)
        self.controllers[nqn] = ['nvme%d' % n, 'live', 'nvme%dn1' % n]
        return 'nvme%dn1' % n

    def _build_volume(self, name, volume_id, legs):
        replicas = [self._new_replica() for _ in range(legs)]
        self.volumes[volume_id] = SimVolume(1, replicas)
        members = [SimLeg(self._connect(r.nqn), r.nqn, LS.IN_SYNC)
                   for r in replicas]
        self.arrays[name] = SimArray(name, volume_id, members, legs)

    def _build_foreign(self, name, md_name, legs):
        nqns = [self._new_replica().nqn for _ in range(legs)]
        members = [SimLeg(self._connect(nqn), nqn, LS.IN_SYNC)
                   for nqn in nqns]
        self.arrays[name] = SimArray(name, md_name, members, legs)

    def foreign_names(self):
        return {'md100', 'md101'}

    def foreign_nqns(self):
        return {leg.nqn for name in self.foreign_names()
                for leg in self.arrays[name].legs}

    # Observation -----------------------------------------------------------

    def host_state(self):
        arrays = tuple(self._observe_array(a) for a in
                       sorted(self.arrays.values(), key=lambda a: a.name))
        controllers = tuple(
            model.Controller(name, nqn, 'tcp', 'traddr=192.0.2.1', state,
                             (device,) if device else ())
            for nqn, (name, state, device) in sorted(self.controllers.items()))
        return model.HostState(arrays, controllers)

    def _observe_array(self, array):
        legs = []
        devices = {ctrl[2] for ctrl in self.controllers.values()}
        for slot, leg in enumerate(array.legs):
            in_slot = leg.state in (LS.IN_SYNC, LS.REBUILDING)
            # Once its controller is deleted, nothing tells which
            # subsystem a member's device belonged to.
            nqn = leg.nqn if leg.device in devices else None
            legs.append(model.Leg(leg.device, slot if in_slot else None,
                                  leg.state, nqn))
        active = sum(1 for leg in array.legs
                     if leg.state in (LS.IN_SYNC, LS.REBUILDING))
        legs.extend(model.Leg(None, None, LS.MISSING)
                    for _ in range(max(0, array.raid_disks - active)))
        return model.Array(array.name, array.md_name, 'uuid-' + array.name,
                           'raid1', array.raid_disks,
                           array.raid_disks - active, 'clean', 'idle',
                           tuple(legs))

    def replica_sets(self):
        sets = {volume_id: self.replica_set(volume_id)
                for volume_id in self.volumes}
        sets['unknown-volume'] = None
        return sets

    def replica_set(self, volume_id):
        volume = self.volumes[volume_id]
        return model.ReplicaSet(volume_id, volume.generation, tuple(
            model.Replica(r.id, r.nqn, PORTAL, r.state)
            for r in volume.replicas))

    # Faults and the world moving on --------------------------------------

    def array_of(self, volume_id):
        for array in self.arrays.values():
            if array.md_name == volume_id:
                return array
        raise KeyError(volume_id)

    def io_error(self, array_name, index):
        array = self.arrays[array_name]
        if array.legs:
            self._fail(array, array.legs[index % len(array.legs)])

    def _fail(self, array, leg):
        """md's error handler: it never fails the last in-sync member."""
        in_sync = [m for m in array.legs if m.state is LS.IN_SYNC]
        if in_sync == [leg]:
            array.broken = True
            return
        if leg.state is not LS.FAULTY:
            self._set_leg_state(leg, LS.FAULTY)

    def target_down(self, nqn):
        self.targets[nqn] = False
        if nqn in self.controllers:
            self.controllers[nqn][1] = 'connecting'
        for array in self.arrays.values():
            for leg in array.legs:
                if leg.nqn == nqn:
                    self._fail(array, leg)

    def controller_lost(self, nqn):
        """ctrl-loss-tmo expired: the kernel deletes the controller."""
        ctrl = self.controllers.get(nqn)
        if ctrl and ctrl[1] == 'connecting':
            del self.controllers[nqn]

    def target_up(self, nqn):
        if nqn not in self.targets:
            return
        self.targets[nqn] = True
        if nqn in self.controllers and self.controllers[nqn][1] != 'live':
            self.controllers[nqn][1] = 'live'

    def resync_done(self):
        for array in self.arrays.values():
            if array.broken:
                continue        # nothing good to copy from
            for leg in array.legs:
                if leg.state is LS.REBUILDING:
                    self._set_leg_state(leg, LS.IN_SYNC)
            self._promote_spares(array)

    def _set_leg_state(self, leg, state):
        leg.state = state

    def observe(self, host):
        """Note what an agent pass saw: which replicas were in sync."""
        for array in host.arrays:
            for leg in array.legs:
                if leg.state is LS.IN_SYNC:
                    self.seen_in_sync[leg.subsysnqn] = self.now

    def _promote_spares(self, array):
        for leg in array.legs:
            active = sum(1 for m in array.legs
                         if m.state in (LS.IN_SYNC, LS.REBUILDING))
            if leg.state is LS.SPARE and active < array.raid_disks:
                self._set_leg_state(leg, LS.REBUILDING)

    def provisioner_migrates(self, volume_id, index):
        """The provisioner replaces a replica on its own (a migration)."""
        volume = self.volumes[volume_id]
        volume.requests.append(volume.replicas[index % len(
            volume.replicas)].id)
        self.provisioner_replace()

    def provisioner_replace(self):
        for volume in self.volumes.values():
            for replica_id in volume.requests:
                ids = [r.id for r in volume.replicas]
                if replica_id in ids:
                    volume.replicas = [r for r in volume.replicas
                                       if r.id != replica_id]
                    volume.replicas.append(self._new_replica())
                    volume.generation += 1
            volume.requests.clear()

    # Applying the engine's actions ---------------------------------------

    def apply(self, action):
        """Carry out one action as the executor/provisioner would.

        :raises ConnectFailed: like a failing ``nvme connect``.
        :raises InvariantViolation: the action breaks a rule.
        """
        self.log.append(action)
        self._check_not_foreign(action)
        handler = getattr(self, '_do_' + type(action).__name__)
        handler(action)

    def _check_not_foreign(self, action):
        if action.volume_id not in self.volumes:
            raise InvariantViolation('action on unmanaged volume: %r'
                                     % (action,))
        array = getattr(action, 'array', None)
        if array is not None and (array in self.foreign_names() or
                                  self.arrays[array].md_name !=
                                  action.volume_id):
            raise InvariantViolation('action on a foreign array: %r'
                                     % (action,))
        nqn = getattr(action, 'nqn', None)
        if nqn in self.foreign_nqns():
            raise InvariantViolation('disconnects a foreign controller: %r'
                                     % (action,))

    def _do_ReportReplicaState(self, action):
        # Like the real plugins, the provisioner has recorded the state
        # when the call returns.
        volume = self.volumes[action.volume_id]
        for replica in volume.replicas:
            if replica.id == action.replica_id and \
                    replica.state is not action.state:
                replica.state = action.state
                volume.generation += 1

    def _do_RequestReplacement(self, action):
        # The agent may only give up on a replica no pass has seen in
        # sync for the whole grace period (a leg back within the grace
        # period is re-added, not replaced). A request for a replica the
        # provisioner already dropped (decided on a stale answer) is a
        # no-op for it, but must respect the same rule.
        nqn = self.nqn_of.get(action.replica_id)
        since = max(self.seen_in_sync.get(nqn, 0.0), self.born.get(nqn, 0.0))
        if nqn is None or self.now - since < self.grace:
            raise InvariantViolation(
                'replacement requested for a replica seen in sync at %s '
                '(now %s, grace %s): %r'
                % (since, self.now, self.grace, action))
        self.volumes[action.volume_id].requests.append(action.replica_id)

    def _do_ConnectReplica(self, action):
        nqn = action.replica.nqn
        if nqn in self.controllers:
            return
        if not self.targets.get(nqn):
            raise ConnectFailed(nqn)
        self._connect(nqn)

    def _device_nqn(self, device):
        for nqn, (_, state, dev) in self.controllers.items():
            if dev == device and state == 'live':
                return nqn
        raise InvariantViolation('no live device %s' % device)

    def _do_AddLeg(self, action):
        array = self.arrays[action.array]
        nqn = self._device_nqn(action.device)
        for other in self.arrays.values():
            if any(leg.device == action.device for leg in other.legs):
                raise InvariantViolation('%s already a member' % action.device)
        if any(leg.nqn == nqn for leg in array.legs):
            raise ActionFailed('mdadm: %s: a member of that replica is '
                               'still in %s' % (action.device, array.name))
        leg = SimLeg(action.device, nqn, LS.SPARE)
        array.legs.append(leg)
        self._promote_spares(array)

    _do_ReAddLeg = _do_AddLeg

    def _find_leg(self, action):
        for leg in self.arrays[action.array].legs:
            if leg.device == action.device:
                return leg
        return None

    def _check_not_last_in_sync(self, action, leg):
        in_sync = [m for m in self.arrays[action.array].legs
                   if m.state is LS.IN_SYNC]
        if leg.state is LS.IN_SYNC and len(in_sync) <= 1:
            raise InvariantViolation('fails/removes the last in-sync leg: %r'
                                     % (action,))

    def _do_FailLeg(self, action):
        leg = self._find_leg(action)
        if leg is None:
            return
        self._check_not_last_in_sync(action, leg)
        self._set_leg_state(leg, LS.FAULTY)
        self._promote_spares(self.arrays[action.array])

    def _do_RemoveLeg(self, action):
        if action.device == 'detached':
            # mdadm removes the faulty members whose device is gone.
            devices = {ctrl[2] for ctrl in self.controllers.values()}
            array = self.arrays[action.array]
            array.legs = [m for m in array.legs
                          if m.device in devices or m.state is not LS.FAULTY]
            return
        leg = self._find_leg(action)
        if leg is None:
            return
        self._check_not_last_in_sync(action, leg)
        if leg.state in (LS.IN_SYNC, LS.REBUILDING):
            raise InvariantViolation('mdadm: %s is busy (not failed): %r'
                                     % (action.device, action))
        self.arrays[action.array].legs.remove(leg)

    def _do_DisconnectController(self, action):
        ctrl = self.controllers.get(action.nqn)
        device = ctrl[2] if ctrl else None
        for array in self.arrays.values():
            if device and any(leg.device == device for leg in array.legs):
                raise InvariantViolation('disconnects a controller still '
                                         'backing a leg: %r' % (action,))
        self.controllers.pop(action.nqn, None)

    # Convergence ---------------------------------------------------------

    def converged(self):
        """True when every managed array is whole and nothing is stray.

        An array that lost its last good copy cannot heal by itself and is
        left out (the invariants still held for every action on it).
        """
        for volume_id, volume in self.volumes.items():
            array = self.array_of(volume_id)
            if array.broken:
                continue
            nqns = sorted(r.nqn for r in volume.replicas)
            legs = sorted(m.nqn for m in array.legs)
            if legs != nqns or any(m.state is not LS.IN_SYNC
                                   for m in array.legs):
                return False
            if any(r.state is not RS.AVAILABLE for r in volume.replicas):
                return False
        wanted = {m.nqn for a in self.arrays.values() for m in a.legs}
        for volume_id, volume in self.volumes.items():
            if self.array_of(volume_id).broken:
                wanted.update(r.nqn for r in volume.replicas)
        return set(self.controllers) <= wanted
