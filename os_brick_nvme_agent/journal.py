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

"""The agent's history: a durable, bounded event journal.

Each event is one JSON object on one line of ``<state_dir>/events.jsonl``
(``time``, ``event``, ``volume`` and event-specific fields), appended and
fsync'ed before the agent goes on, so that what the agent saw and did
survives a crash and a reboot. The file keeps the newest
``journal_max_events`` events: once it holds half as many again, it is
rewritten (temporary file, rename) with the newest ones only.

``os-brick-nvme-agent events`` prints it; ``status`` shows each volume's
last event and the provisioner's reachability from it. A journal that
cannot be written is logged once at ERROR and never stops the healing.
"""

import json
import os
import time

from oslo_log import log as logging

from os_brick_nvme_agent import fileutils
from os_brick_nvme_agent import model

LOG = logging.getLogger(__name__)

FILE = 'events.jsonl'

#: Event names, as written in the journal.
FAULT_SEEN = 'fault_seen'
RESYNC_DONE = 'resync_done'
REPORT_SENT = 'report_sent'
REPLACEMENT_REQUESTED = 'replacement_requested'
REPLICA_CONNECTED = 'replica_connected'
LEG_ADDED = 'leg_added'
LEG_RE_ADDED = 're_added'
LEG_FAILED = 'leg_failed'
LEG_REMOVED = 'leg_removed'
CONTROLLER_DISCONNECTED = 'controller_disconnected'
ACTION_FAILED = 'error'
MALFORMED_ANSWER = 'malformed_answer'
PROVISIONER_REACHABLE = 'provisioner_reachable'
PROVISIONER_UNREACHABLE = 'provisioner_unreachable'
AGENT_STARTED = 'agent_started'
AGENT_STOPPED = 'agent_stopped'

#: Volume events offered to the provisioner (Provisioner.send_event).
FORWARDED = (FAULT_SEEN, RESYNC_DONE, CONTROLLER_DISCONNECTED,
             REPLICA_CONNECTED)

_KEYS = ('time', 'event', 'volume')


def path(state_dir):
    return os.path.join(state_dir, FILE)


#: Journal event of each action carried out.
ACTION_EVENTS = {
    model.ReportReplicaState: REPORT_SENT,
    model.RequestReplacement: REPLACEMENT_REQUESTED,
    model.ConnectReplica: REPLICA_CONNECTED,
    model.AddLeg: LEG_ADDED,
    model.ReAddLeg: LEG_RE_ADDED,
    model.FailLeg: LEG_FAILED,
    model.RemoveLeg: LEG_REMOVED,
    model.DisconnectController: CONTROLLER_DISCONNECTED,
}


def action_fields(action):
    """Journal fields of an action: replica, state, device, NQN."""
    fields = {}
    for name in ('replica_id', 'device', 'nqn', 'array'):
        if hasattr(action, name):
            fields[name.replace('_id', '')] = getattr(action, name)
    if isinstance(action, model.ReportReplicaState):
        fields['state'] = action.state.value
    if isinstance(action, model.ConnectReplica):
        fields['replica'] = action.replica.id
        fields['nqn'] = action.replica.nqn
    return fields


def state_events(old, new):
    """(event, volume, replica record) for faults seen and legs healed.

    A replica that joins the set (a replacement) is out of the array until
    it is added; that is not a fault, so it is not reported as one.
    """
    for volume in new.volumes:
        before = old.volume(volume.volume_id)
        for rec in volume.replicas:
            prev = before.replica(rec.replica_id) if before else None
            was = prev.faulty_since if prev else None
            if rec.faulty_since is not None and was is None:
                if rec.was_member or not rec.newcomer:
                    yield FAULT_SEEN, volume.volume_id, rec
            elif rec.faulty_since is None and was is not None:
                yield RESYNC_DONE, volume.volume_id, rec


def _entry(clock, event, volume, fields):
    """One journal entry: the time, the event, the volume, set fields."""
    entry = {'time': round(clock(), 3), 'event': event, 'volume': volume}
    entry.update({k: v for k, v in fields.items() if v is not None})
    return entry


class Journal(object):
    """Appends events to the journal file.

    :param path: the journal file; its directory must exist.
    :param max_events: events kept (the newest).
    :param clock: callable() -> wall-clock seconds.
    """

    def __init__(self, path, max_events=1000, clock=time.time):
        self.path = path
        self.max_events = max_events
        self.clock = clock
        self._count = None
        self._failing = None

    def record(self, event, volume=None, **fields):
        """Append one event; returns it as written (a dict)."""
        entry = _entry(self.clock, event, volume, fields)
        try:
            self._append(json.dumps(entry, sort_keys=True))
        except (OSError, TypeError, ValueError) as exc:
            if self._failing != str(exc):
                LOG.error('Cannot write the event journal %s: %s',
                          self.path, exc)
            self._failing = str(exc)
        else:
            self._failing = None
        return entry

    def _append(self, line):
        if self._count is None:
            self._count = len(read(self.path)[0])
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                     0o644)
        try:
            os.write(fd, (line + '\n').encode('utf-8'))
            os.fsync(fd)
        finally:
            os.close(fd)
        self._count += 1
        if self._count >= self.max_events + max(1, self.max_events // 2):
            self._compact()

    def _compact(self):
        events, _bad = read(self.path)
        keep = events[-self.max_events:]
        fileutils.write_file_atomically(
            self.path,
            ''.join(json.dumps(entry, sort_keys=True) + '\n'
                    for entry in keep),
            mode=0o644)
        self._count = len(keep)


def read(path):
    """(events oldest first, number of unreadable lines)."""
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return [], 0
    events, bad = [], 0
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            bad += 1    # e.g. a line cut by a power loss
            continue
        if isinstance(entry, dict) and isinstance(entry.get('event'), str):
            events.append(entry)
        else:
            bad += 1
    return events, bad


def last_by_volume(events):
    """The newest event of each volume, sorted by volume."""
    last = {}
    for entry in events:
        if entry.get('volume'):
            last[entry['volume']] = entry
    return [last[volume] for volume in sorted(last)]


def when(entry):
    try:
        return time.strftime('%Y-%m-%dT%H:%M:%SZ',
                             time.gmtime(float(entry['time'])))
    except (KeyError, TypeError, ValueError):
        return '?'


def detail(entry):
    return ' '.join('%s=%s' % (k, entry[k]) for k in sorted(entry)
                    if k not in _KEYS)


def row(entry, volume_first=False):
    """A table row: (volume, when, event, detail) or (when, volume, ...)."""
    volume = entry.get('volume') or '-'
    if volume_first:
        return (when(entry), volume, entry['event'], detail(entry))
    return (volume, when(entry), entry['event'], detail(entry))


def reachability(events):
    """What the agent last found out about its provisioner."""
    for entry in reversed(events):
        if entry['event'] == PROVISIONER_REACHABLE:
            return 'reachable since %s' % when(entry)
        if entry['event'] == PROVISIONER_UNREACHABLE:
            return 'UNREACHABLE since %s: %s' % (
                when(entry), entry.get('error', ''))
    return 'unknown (the agent has not probed it yet)'


class MemoryJournal(object):
    """A journal kept in memory only (tools, tests, the simulated host)."""

    def __init__(self, clock=time.time):
        self.clock = clock
        self.events = []

    def record(self, event, volume=None, **fields):
        entry = _entry(self.clock, event, volume, fields)
        self.events.append(entry)
        return entry
