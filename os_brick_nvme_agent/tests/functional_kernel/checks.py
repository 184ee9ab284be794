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

"""Inside the guest: what the scenarios wait for and observe.

Shared by :mod:`.scenarios`, :mod:`.lifecycle` and :mod:`.bench_guest`.
Every observation comes from the kernel (md sysfs, fabrics sysfs) or from
the provisioner's own record, never from the agent's parsers.
"""

import signal
import time

from os_brick_nvme_agent.tests.functional_kernel import guest_env

HEAL_TIMEOUT = 120
#: Data written before a fault: the first MiB of the volume.
BEFORE = {'size': 1 << 20, 'offset': 0}
#: The write that makes md notice a lost target, away from ``BEFORE``.
DURING = {'size': 64 << 10, 'offset': 2 << 20}


def replaced(volume, old_id):
    """The new replica's record once ``old_id`` left the set, else None."""
    record = volume.replicas()
    if record is None or volume.replica(old_id) is not None:
        return None
    known = {r.id for r in volume.initial.replicas}
    new = [r for r in record['replicas'] if r['id'] not in known]
    return new[0] if new else None


def reported_faulty(volume, replica_id):
    replica = volume.replica(replica_id)
    return replica is None or replica['state'] == 'faulty'


def write_before(volume):
    """The data the scenario checks after the fault; its digest."""
    return volume.write_pattern(seed=b'before-the-fault', **BEFORE)


def write_during(volume):
    """A write while a target is lost: md fails the leg when it fails."""
    return volume.write_pattern(seed=b'during-the-fault', **DURING)


def heal_record(volume, old, digest, t_fault, out):
    """Wait for report, replacement and resync; fill ``out``.

    ``digest`` is of :data:`BEFORE`, written before the fault and never
    rewritten since.
    """
    guest_env.wait_for(lambda: reported_faulty(volume, old.id),
                       HEAL_TIMEOUT, 0.05, 'the faulty report')
    out['detect_s'] = time.monotonic() - t_fault
    new = guest_env.wait_for(lambda: replaced(volume, old.id),
                             HEAL_TIMEOUT, 0.1, 'a replacement replica')
    t_replaced = time.monotonic()
    out['replaced_after_s'] = t_replaced - t_fault
    guest_env.wait_for(lambda: (volume.healthy() and
                                new['nqn'] in volume.member_nqns() and
                                old.nqn not in volume.member_nqns()),
                       HEAL_TIMEOUT, 0.1, 'the array to be in sync')
    out['heal_s'] = time.monotonic() - t_replaced
    out['new_replica'] = new['id']
    out['members'] = volume.member_nqns()
    out['replica_nqns'] = sorted(r['nqn']
                                 for r in volume.replicas()['replicas'])
    out['digest_before'] = digest
    out['digest_after'] = volume.read_digest(**BEFORE)
    guest_env.wait_for(lambda: not guest_env.controllers_of(old.nqn),
                       60, 0.2, 'the old controller to be disconnected')
    out['old_controller_gone'] = True
    return new


def read_alone(env, volume, nqn, regions):
    """Digests of ``regions`` read while ``nqn``'s leg is md's only source.

    The agent is paused (SIGSTOP) so that it cannot re-add the other legs
    during the read; every other leg is failed and removed, and md's
    in-sync members are checked before and after the read. The agent is
    resumed and re-adds the removed legs (they are still live).

    :returns: dict with ``alone`` (True when ``nqn`` was the only in-sync
        member before and after the read), ``removed`` (member NQNs taken
        out) and one digest per region name.
    """
    pid = env.signal_agent(signal.SIGSTOP)
    try:
        removed = []
        for member in volume.in_sync_nqns():
            if member != nqn:
                leg = '/dev/' + volume.leg_of(member)
                guest_env.run('mdadm', '--manage', '/dev/' + volume.md,
                              '--fail', leg)
                guest_env.run('mdadm', '--manage', '/dev/' + volume.md,
                              '--remove', leg)
                removed.append(member)
        out = {'removed': removed, 'agent_paused': pid is not None,
               'in_sync_before_read': volume.in_sync_nqns(),
               'members_before_read': volume.member_nqns()}
        for name, region in regions.items():
            out[name] = volume.read_digest(**region)
        out['in_sync_after_read'] = volume.in_sync_nqns()
        out['alone'] = (out['in_sync_before_read'] == [nqn] ==
                        out['in_sync_after_read'] and
                        out['members_before_read'] == [nqn])
    finally:
        if pid:
            env.signal_agent(signal.SIGCONT)
    return out
