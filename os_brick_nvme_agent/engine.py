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

"""The healing engine: observed host state + replica sets -> actions.

:func:`reconcile` is a pure function. It compares each MD array that
os-brick assembled with the replica set the provisioner gives for the same
volume and returns the actions that move the host towards "every replica
of the set is an in-sync leg of the array", along with the updated
:class:`~os_brick_nvme_agent.state.AgentState`. It does no I/O, so the
service can save the new state (and its pending actions) before carrying
the actions out; because every decision is taken again from what is
observed, repeating a step after a crash is harmless.

Per replica of a managed volume:

* in sync: nothing to do; if the agent had reported it FAULTY and has not
  asked for a replacement, report it AVAILABLE again;
* rebuilding or spare: md is working on it; wait;
* faulty, missing or absent: remember since when. While no replacement
  has been asked for, try to bring it back: reconnect its subsystem if no
  controller exists, and once a namespace device is live, remove the
  faulty member and re-add the device (bitmap resync) or add it if it was
  never a member. Report it FAULTY to the provisioner until the
  provisioner shows it marked, and once it has been out of sync for
  ``grace_period`` seconds, ask for its replacement.

Legs whose subsystem left the set (a replaced replica) are removed and
their controllers disconnected; an in-sync one only once the set is whole
again, or one at a time to make room for a newcomer waiting as a spare.
The last in-sync leg is never failed nor removed, and arrays or volumes
missing from the mapping, or mapped to None, are left exactly as they are.
See doc/source/contributor/nvme-agent-engine.rst for the finer points.
"""

import dataclasses
from typing import Mapping, Optional

from os_brick_nvme_agent import model
from os_brick_nvme_agent import state as state_mod

__all__ = ['EngineConfig', 'reconcile', 'grace_wait']

_LS = model.LegState
_RS = model.ReplicaState
# Order of preference when several legs carry the same subsystem NQN.
_LEG_RANK = {_LS.IN_SYNC: 0, _LS.REBUILDING: 1, _LS.SPARE: 2,
             _LS.FAULTY: 3, _LS.MISSING: 4}
_SYNCING = (_LS.REBUILDING, _LS.SPARE)


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """Timing knobs of the engine, all in seconds."""

    grace_period: float = 300.0     # out of sync this long -> replace
    report_interval: float = 60.0   # repeat an unacknowledged report
    request_interval: float = 300.0  # repeat an unanswered replacement
    connect_interval: float = 30.0  # between reconnect attempts
    # Re-adds of a flapping leg before it is left to the grace period.
    max_rejoins: int = 3


@dataclasses.dataclass(frozen=True)
class _View:
    """What one volume's decisions need to see of the host."""

    volume_id: str
    array: model.Array
    host: model.HostState
    replica_set: model.ReplicaSet

    def legs_for(self, nqn):
        return [leg for leg in self.array.legs if leg.subsysnqn == nqn]

    def best_leg(self, replica):
        legs = [leg for leg in self.legs_for(replica.nqn)
                if not (leg.ns_uuid and replica.ns_uuid
                        and leg.ns_uuid != replica.ns_uuid)]
        return min(legs, key=lambda leg: _LEG_RANK[leg.state], default=None)

    def controllers(self, nqn):
        return [c for c in self.host.controllers if c.subsysnqn == nqn]

    def live_device(self, nqn):
        devices = sorted(dev for c in self.controllers(nqn)
                         if c.state == 'live' for dev in c.namespaces)
        return devices[0] if devices else None

    def set_nqns(self):
        return {replica.nqn for replica in self.replica_set.replicas}

    def nqn_in_any_array(self, nqn):
        return any(leg.subsysnqn == nqn
                   for array in self.host.arrays for leg in array.legs)


def reconcile(host: model.HostState,
              replica_sets: Mapping[str, Optional[model.ReplicaSet]],
              state: state_mod.AgentState, now: float,
              config: EngineConfig):
    """Decide the next actions for every array os-brick built.

    :param host: the observed host.
    :param replica_sets: volume id (the array's MD name) -> the
        provisioner's answer; None or a missing key means "do not touch".
    :param state: what the agent remembers.
    :param now: wall-clock seconds.
    :param config: timing knobs.
    :returns: ``(actions, new_state)``.
    """
    actions = []
    new_state = _forget_gone_volumes(host, state)
    for array, volume_id in _managed_arrays(host, replica_sets):
        replica_set = replica_sets[volume_id]
        record = (new_state.volume(volume_id)
                  or state_mod.VolumeRecord(volume_id))
        if replica_set.generation < record.generation:
            continue        # stale answer: trust what we saw before
        view = _View(volume_id, array, host, replica_set)
        volume_actions, record = _reconcile_volume(
            view, record, now, volume_config(replica_set, config))
        actions.extend(volume_actions)
        new_state = new_state.with_volume(record)
    return actions, new_state


def volume_config(replica_set, config):
    """The volume's own grace period, when its provisioner gives one."""
    grace = getattr(replica_set, 'grace_period', None)
    if grace is None or grace == config.grace_period:
        return config
    return dataclasses.replace(config, grace_period=float(grace))


def grace_wait(state, now, config):
    """Seconds until the next running grace period ends, or None.

    Only the replicas whose grace period is still running count; one that
    ran out already is paced by ``request_interval``, not by this wait.
    Each volume's own grace period (recorded from its replica set) is
    used where it has one.
    """
    waits = []
    for volume in state.volumes:
        grace = (config.grace_period if volume.grace_period is None
                 else volume.grace_period)
        waits.extend(rec.faulty_since + grace - now
                     for rec in volume.replicas
                     if rec.faulty_since is not None
                     and rec.faulty_since + grace > now)
    return min(waits) if waits else None


def _volume_key(md_name, replica_sets):
    if md_name is None:
        return None
    if md_name in replica_sets:
        return md_name
    # mdadm prefixes the name with "<homehost>:" on some hosts.
    short = md_name.split(':', 1)[-1]
    return short if short in replica_sets else None


def _managed_arrays(host, replica_sets):
    """Yield (array, volume_id) for arrays we may touch."""
    keys = [_volume_key(a.md_name, replica_sets) for a in host.arrays]
    for array, key in zip(host.arrays, keys):
        if key is None or keys.count(key) != 1 or array.level != 'raid1':
            continue        # unknown, ambiguous or not os-brick's kind
        if _usable(replica_sets[key], key):
            yield array, key


def _usable(replica_set, volume_id):
    """A replica set we can act on; anything else is left alone."""
    if not isinstance(replica_set, model.ReplicaSet):
        return False
    replicas = replica_set.replicas
    ids = [r.id for r in replicas]
    nqns = [r.nqn for r in replicas]
    return (replica_set.volume_id == volume_id and bool(replicas)
            and len(set(ids)) == len(ids) and len(set(nqns)) == len(nqns)
            and all(isinstance(r, model.Replica) and r.nqn and r.portals
                    for r in replicas))


def _forget_gone_volumes(host, state):
    names = set()
    for array in host.arrays:
        if array.md_name:
            names.update({array.md_name, array.md_name.split(':', 1)[-1]})
    for volume in state.volumes:
        if volume.volume_id not in names:
            state = state.without_volume(volume.volume_id)
    return state


def _reconcile_volume(view, record, now, config):
    join, tell = [], []
    records = []
    retiring = set(record.retiring)
    first_sight = not record.replicas
    for replica in view.replica_set.replicas:
        rec = record.replica(replica.id)
        if rec is None:
            # Replicas listed when the volume is first seen were meant to
            # be legs; ones that show up later are newcomers.
            rec = state_mod.ReplicaRecord(replica.id, replica.nqn, now,
                                          newcomer=not first_sight)
        elif rec.nqn != replica.nqn:
            retiring.add(rec.nqn)
            rec = dataclasses.replace(rec, nqn=replica.nqn)
        host_acts, prov_acts, rec = _reconcile_replica(
            view, replica, rec, now, config)
        join.extend(host_acts)
        tell.extend(prov_acts)
        records.append(rec)
    current = {r.id for r in view.replica_set.replicas}
    retiring.update(r.nqn for r in record.replicas
                    if r.replica_id not in current)
    # Faulty leftovers go first (a re-add may need the old member gone);
    # healthy legs are retired last, after the newcomers were added.
    (early, late), retiring = _retire(view, retiring)
    actions = early + join + tell + late
    record = dataclasses.replace(
        record, generation=view.replica_set.generation,
        replicas=tuple(records), retiring=tuple(sorted(retiring)),
        pending=tuple(actions),
        grace_period=getattr(view.replica_set, 'grace_period', None))
    return actions, record


def _reconcile_replica(view, replica, rec, now, config):
    """Return (host actions, provisioner actions, record) for a replica."""
    leg = view.best_leg(replica)
    if leg is not None and leg.state is _LS.IN_SYNC:
        prov, rec = _in_sync(view, replica, rec, now, config)
        return [], prov, rec
    if leg is not None and leg.state in _SYNCING:
        return [], [], rec
    rec = dataclasses.replace(
        rec, faulty_since=now if rec.faulty_since is None
        else rec.faulty_since)
    host = []
    if (rec.requested_at is None and replica.state is not _RS.REPLACING
            and rec.rejoins < config.max_rejoins):
        host, rec = _rejoin(view, replica, rec, leg, now, config)
    if any(isinstance(a, (model.AddLeg, model.ReAddLeg)) for a in host):
        return host, [], rec    # it is back: no report, no replacement
    prov = []
    if (leg is not None or rec.was_member or not rec.newcomer
            or _elapsed(now, rec.first_seen) >= config.grace_period):
        prov, rec = _escalate(view, replica, rec, now, config)
    return host, prov, rec


def _in_sync(view, replica, rec, now, config):
    """A replica in sync: take back a FAULTY report we made, if any."""
    rec = dataclasses.replace(rec, was_member=True, faulty_since=None,
                              connect_at=None, rejoins=0)
    said = rec.reported_state
    if said is None or rec.requested_at is not None:
        return [], rec
    if replica.state is _RS.AVAILABLE:
        if (said == _RS.AVAILABLE.value
                and view.replica_set.generation > rec.reported_gen):
            # The provisioner answered after our last report: done.
            return [], dataclasses.replace(
                rec, reported_at=None, reported_state=None, reported_gen=0)
        if said == _RS.AVAILABLE.value:
            return [], rec
    elif said == _RS.AVAILABLE.value and not _due(
            rec.reported_at, now, config.report_interval):
        return [], rec
    return [_report(view, replica, _RS.AVAILABLE)], _reported(
        view, rec, _RS.AVAILABLE, now)


def _report(view, replica, state):
    return model.ReportReplicaState(view.volume_id, replica.id, state)


def _reported(view, rec, state, now):
    return dataclasses.replace(rec, reported_at=now,
                               reported_state=state.value,
                               reported_gen=view.replica_set.generation)


def _rejoin(view, replica, rec, leg, now, config):
    """Bring a replica (back) into the array while it is worth trying."""
    array = view.array.name
    device = view.live_device(replica.nqn)
    if device is not None and view.array.in_sync_legs():
        actions = []
        if leg is not None and leg.device and leg.state is _LS.FAULTY:
            actions.append(model.RemoveLeg(view.volume_id, array, leg.device))
        if leg is not None or rec.was_member:
            actions.append(model.ReAddLeg(view.volume_id, array, device))
        else:
            actions.append(model.AddLeg(view.volume_id, array, device))
        return actions, dataclasses.replace(rec, rejoins=rec.rejoins + 1)
    if view.controllers(replica.nqn):
        return [], rec      # (re)connecting, or nothing to copy from
    if not _due(rec.connect_at, now, config.connect_interval):
        return [], rec
    action = model.ConnectReplica(view.volume_id, replica)
    return [action], dataclasses.replace(rec, connect_at=now)


def _escalate(view, replica, rec, now, config):
    """Report a faulty replica and ask for its replacement in time."""
    actions = []
    if (replica.state in (_RS.AVAILABLE, _RS.UNKNOWN)
            and (rec.reported_state != _RS.FAULTY.value
                 or _due(rec.reported_at, now, config.report_interval))):
        actions.append(_report(view, replica, _RS.FAULTY))
        rec = _reported(view, rec, _RS.FAULTY, now)
    if (_elapsed(now, rec.faulty_since) >= config.grace_period
            and replica.state is not _RS.REPLACING
            and _due(rec.requested_at, now, config.request_interval)):
        actions.append(model.RequestReplacement(view.volume_id, replica.id))
        rec = dataclasses.replace(rec, requested_at=now)
    return actions, rec


def _retire(view, retiring):
    """Retire legs that no replica of the set stands behind.

    :returns: ((early actions, late actions), NQNs still to disconnect).
    """
    early, late = [], []
    budget = _Budget(view)
    for leg in _surplus_legs(view):
        if leg.state is _LS.IN_SYNC:
            late.extend(_retire_in_sync(view, leg, budget))
        elif leg.state is _LS.FAULTY:
            early.extend(_retire_other(view, leg))
        else:
            late.extend(_retire_other(view, leg))
        if leg.subsysnqn is not None:
            retiring.add(leg.subsysnqn)
    return (early, late + _disconnect(view, retiring)), retiring


def _disconnect(view, retiring):
    """Disconnect retired subsystems once no array uses them."""
    actions = []
    set_nqns = view.set_nqns()
    for nqn in sorted(retiring):
        if nqn in set_nqns:
            retiring.discard(nqn)   # the provisioner uses it again
        elif view.nqn_in_any_array(nqn):
            continue                # remove the leg first
        elif view.controllers(nqn):
            actions.append(model.DisconnectController(view.volume_id, nqn))
        else:
            retiring.discard(nqn)
    return actions


def _surplus_legs(view):
    """Legs no replica stands behind.

    Those with an NQN outside the set, faulty duplicates of a replica's
    leg, and faulty legs whose device is gone (no NQN known any more).
    """
    chosen = {view.best_leg(r) for r in view.replica_set.replicas}
    set_nqns = view.set_nqns()
    surplus = []
    for leg in view.array.legs:
        if leg.device is None or leg in chosen:
            continue
        if leg.subsysnqn is None:
            if leg.state in (_LS.FAULTY, _LS.MISSING):
                surplus.append(leg)
        elif leg.subsysnqn not in set_nqns or leg.state is _LS.FAULTY:
            surplus.append(leg)
    return surplus


class _Budget(object):
    """How many in-sync legs may still be retired in this pass."""

    def __init__(self, view):
        self.in_sync = len(view.array.in_sync_legs())
        members = [leg for leg in view.array.in_sync_legs()
                   if leg.subsysnqn in view.set_nqns()]
        if members and _all_members_in_sync(view):
            self.allowed = self.in_sync - 1     # the set is whole
        elif _newcomer_blocked(view):
            self.allowed = 1                    # make room, one at a time
        else:
            self.allowed = 0    # keep redundancy until newcomers catch up

    def take(self):
        if self.allowed <= 0 or self.in_sync <= 1:
            return False        # never the last in-sync leg
        self.allowed -= 1
        self.in_sync -= 1
        return True


def _retire_in_sync(view, leg, budget):
    if not budget.take():
        return []
    return [model.FailLeg(view.volume_id, view.array.name, leg.device),
            model.RemoveLeg(view.volume_id, view.array.name, leg.device)]


def _retire_other(view, leg):
    if not view.array.in_sync_legs():
        return []           # leave a broken array as it is for the operator
    if leg.subsysnqn is None:
        # Its device went away with its controller: /dev/<name> no longer
        # exists, so name it the way mdadm does for such members.
        return [model.RemoveLeg(view.volume_id, view.array.name,
                                'detached')]
    actions = []
    if leg.state is not _LS.FAULTY:
        actions.append(model.FailLeg(view.volume_id, view.array.name,
                                     leg.device))
    actions.append(model.RemoveLeg(view.volume_id, view.array.name,
                                   leg.device))
    return actions


def _all_members_in_sync(view):
    for replica in view.replica_set.replicas:
        if replica.state is _RS.AVAILABLE:
            leg = view.best_leg(replica)
            if leg is None or leg.state is not _LS.IN_SYNC:
                return False
    return True


def _newcomer_blocked(view):
    """A member waits as a spare because retired legs fill every slot."""
    active = sum(1 for leg in view.array.legs
                 if leg.state in (_LS.IN_SYNC, _LS.REBUILDING))
    if active < view.array.raid_disks:
        return False
    return any(getattr(view.best_leg(r), 'state', None) is _LS.SPARE
               for r in view.replica_set.replicas)


def _elapsed(now, since):
    return max(0.0, now - since)


def _due(last, now, interval):
    return last is None or _elapsed(now, last) >= interval
