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

"""Value types shared by the host layer, the provisioners and the engine.

Everything here is an immutable value: the host layer builds
:class:`HostState` from the kernel, a provisioner answers with a
:class:`ReplicaSet`, and the engine turns both into :class:`Action` objects
that the executor carries out. Nothing in this module touches the system.
"""

import dataclasses
import enum
from typing import Optional


class LegState(str, enum.Enum):
    """State of one member of an MD array, as the kernel reports it."""

    IN_SYNC = 'in_sync'        # active member holding current data
    REBUILDING = 'rebuilding'  # active slot, recovery in progress
    FAULTY = 'faulty'          # marked faulty by md (still listed)
    SPARE = 'spare'            # member without a slot (waiting to rebuild)
    MISSING = 'missing'        # slot empty: device removed or never found


class ReplicaState(str, enum.Enum):
    """State of a replica as the volume provisioner records it."""

    AVAILABLE = 'available'    # healthy, may be used as a leg
    FAULTY = 'faulty'          # reported faulty, not yet replaced
    REPLACING = 'replacing'    # provisioner is building its replacement
    UNKNOWN = 'unknown'        # provisioner gave a state we do not know


@dataclasses.dataclass(frozen=True)
class Controller:
    """An NVMe-oF controller from /sys/class/nvme-fabrics/ctl/<name>."""

    name: str                       # 'nvme1'
    subsysnqn: str
    transport: str                  # 'tcp', 'rdma', 'fc', 'loop'
    address: str                    # raw 'traddr=...,trsvcid=...' string
    state: str                      # 'live', 'connecting', 'deleting', ...
    # Added by agent-core: block devices of the namespaces reached through
    # this controller ('nvme1n1', ...); the engine needs them to add a newly
    # connected replica to its array.
    namespaces: tuple = ()          # tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Leg:
    """One member device of an MD array."""

    device: Optional[str]           # kernel name 'nvme1n1'; None if MISSING
    slot: Optional[int]             # RAID slot, None for a spare
    state: LegState
    subsysnqn: Optional[str] = None  # NQN of the controller behind device
    ns_uuid: Optional[str] = None   # namespace uuid (sysfs 'uuid'), if any


@dataclasses.dataclass(frozen=True)
class Array:
    """One MD array as observed on the host."""

    name: str                       # kernel name 'md127'
    md_name: Optional[str]          # metadata name (os-brick sets the alias)
    uuid: Optional[str]
    level: str                      # 'raid1'
    raid_disks: int
    degraded: int                   # md/degraded
    array_state: str                # md/array_state ('clean', 'active', ...)
    sync_action: str                # md/sync_action ('idle', 'recover', ...)
    legs: tuple = ()                # tuple[Leg, ...]

    def in_sync_legs(self):
        return tuple(leg for leg in self.legs
                     if leg.state is LegState.IN_SYNC)


@dataclasses.dataclass(frozen=True)
class HostState:
    """A consistent snapshot of the arrays and controllers on a host."""

    arrays: tuple = ()              # tuple[Array, ...]
    controllers: tuple = ()         # tuple[Controller, ...]

    def array_by_md_name(self, md_name):
        for array in self.arrays:
            if array.md_name == md_name:
                return array
        return None


@dataclasses.dataclass(frozen=True)
class Portal:
    """Where a replica's NVMe-oF subsystem listens."""

    transport: str                  # 'tcp' or 'rdma'
    address: str
    port: int


@dataclasses.dataclass(frozen=True)
class Replica:
    """One replica of a volume, as the provisioner describes it."""

    id: str
    nqn: str
    portals: tuple                  # tuple[Portal, ...]
    state: ReplicaState = ReplicaState.AVAILABLE
    ns_uuid: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class ReplicaSet:
    """The provisioner's view of a volume's replicas.

    ``generation`` increases every time the provisioner changes the set
    (a state change, a replacement); the engine uses it to tell a fresh
    answer from a stale one.
    """

    volume_id: str                  # the alias os-brick gave the MD array
    generation: int
    replicas: tuple = ()            # tuple[Replica, ...]
    # Seconds a replica of this volume may stay out of sync before it is
    # replaced, when the provisioner says (KumoScale maxReplicaDownTime);
    # None: [nvme_agent] grace_period.
    grace_period: Optional[float] = None


# Actions: what the engine decides, what the executor and the provisioner
# client carry out. Each one is idempotent when applied to the state it was
# decided on, and the engine only ever decides from observed state, so
# repeating an action after a crash is harmless.

@dataclasses.dataclass(frozen=True)
class Action:
    volume_id: str


@dataclasses.dataclass(frozen=True)
class ReportReplicaState(Action):
    """Tell the provisioner a replica's state (e.g. FAULTY)."""

    replica_id: str
    state: ReplicaState


@dataclasses.dataclass(frozen=True)
class RequestReplacement(Action):
    """Ask the provisioner to replace a replica that stayed faulty."""

    replica_id: str


@dataclasses.dataclass(frozen=True)
class ConnectReplica(Action):
    """Connect the host to a replica's subsystem (nvme connect)."""

    replica: Replica


@dataclasses.dataclass(frozen=True)
class AddLeg(Action):
    """mdadm --add a new device to the array."""

    array: str                      # kernel name 'md127'
    device: str                     # kernel name 'nvme3n1'


@dataclasses.dataclass(frozen=True)
class ReAddLeg(Action):
    """mdadm --re-add a device that came back (bitmap resync)."""

    array: str
    device: str


@dataclasses.dataclass(frozen=True)
class FailLeg(Action):
    """mdadm --fail a member; never issued for the last in-sync leg."""

    array: str
    device: str


@dataclasses.dataclass(frozen=True)
class RemoveLeg(Action):
    """mdadm --remove a faulty member (or 'failed'/'detached')."""

    array: str
    device: str


@dataclasses.dataclass(frozen=True)
class DisconnectController(Action):
    """nvme disconnect a retired replica's subsystem."""

    nqn: str
