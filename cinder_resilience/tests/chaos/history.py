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

"""Record what every process did and check it afterwards.

Each process appends JSON lines to its own file with one ``write()`` each,
so a SIGKILL loses nothing already recorded.  Times are ``CLOCK_MONOTONIC``
(``time.monotonic()``), one clock for every process on the machine.

Events: ``acquire`` (token, acq), ``write`` (token, acq, ok), ``lost``
(acq, reason), ``release`` (acq, ok), ``error``; the harness records
``fault`` events (kind, pid or member, t, until).

The checker rebuilds acquisitions from the events and reports:

* ``stale_writes_accepted``: records the fenced resource accepted with a
  token below one it had accepted before;
* ``overlapping_accepted_writes``: accepted records of one acquisition found
  after another acquisition's (two holders' writes interleaved);
* ``unfenced_overlaps``: write attempts made after another acquisition had
  been granted: what a resource without fencing would have taken;
* ``double_grants``: a grant while the previous holder was running, had not
  released and had not been told its lock was lost (the lock service itself
  broke mutual exclusion);
* pause and kill trials: was the process holding, was it told, how fast.
"""

import glob
import json
import os
import time


class History(object):
    """Append-only JSON-lines recorder of one process."""

    def __init__(self, path, **common):
        self.path = path
        self.common = common
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                           0o644)

    def record(self, k, t=None, **fields):
        event = dict(self.common, k=k,
                     t=time.monotonic() if t is None else t, **fields)
        os.write(self._fd, (json.dumps(event) + '\n').encode())
        return event

    def close(self):
        os.close(self._fd)


def load(workdir):
    """Every event recorded under ``workdir``, by time."""
    events = []
    for path in glob.glob(os.path.join(workdir, '*.jsonl')):
        with open(path) as f:
            for line in f:
                if line.endswith('\n'):   # a torn last line is dropped
                    events.append(json.loads(line))
    events.sort(key=lambda e: e['t'])
    return events


class Acquisition(object):

    def __init__(self, event):
        self.pid = event['pid']
        self.worker = event['w']
        self.key = (event['pid'], event['acq'])
        self.token = event['token']
        self.t = event['t']
        self.end = None
        self.lost = None
        self.released = None
        self.writes = []

    def active_at(self, t):
        return self.t <= t and (self.end is None or self.end > t)


def acquisitions(events):
    """Rebuild acquisitions (by grant time) from the worker events."""
    open_by_key, result = {}, []
    for event in events:
        kind = event['k']
        if kind == 'acquire':
            acq = Acquisition(event)
            open_by_key[acq.key] = acq
            result.append(acq)
            continue
        if kind not in ('write', 'lost', 'release'):
            continue
        acq = open_by_key.get((event['pid'], event.get('acq')))
        if acq is None:
            continue
        if kind == 'write':
            acq.writes.append(event)
        elif kind == 'lost' and acq.lost is None:
            acq.lost = event['t']
            acq.end = min(acq.end or event['t'], event['t'])
        elif kind == 'release':
            acq.released = event['ok']
            acq.end = min(acq.end or event['t'], event['t'])
    return result


def _killed_at(acqs, faults):
    for fault in faults:
        if fault['kind'] != 'kill_holder':
            continue
        for acq in acqs:
            if acq.pid == fault['pid'] and acq.end is None:
                acq.end = fault['t']


def resource_checks(records):
    """Stale and interleaved accepted records, in the resource's order."""
    stale = overlapping = 0
    highest, seen, previous = 0, set(), None
    for token, text in records:
        if token < highest:
            stale += 1
        highest = max(highest, token)
        key = _record_key(text)
        if key != previous:
            if key in seen:
                overlapping += 1
            seen.add(key)
            previous = key
    return stale, overlapping


def _record_key(text):
    fields = dict(part.split('=', 1) for part in text.split())
    return int(fields['pid']), int(fields['acq'])


def unfenced_overlaps(acqs):
    """Write attempts made after a later acquisition was granted."""
    times = [acq.t for acq in acqs]
    count = 0
    for index, acq in enumerate(acqs):
        later = times[index + 1] if index + 1 < len(acqs) else None
        if later is None:
            continue
        count += sum(1 for w in acq.writes if w['t'] > later)
    return count


def _paused(pauses, pid, start, end):
    return any(p['pid'] == pid and p['t'] < end and p['until'] > start
               for p in pauses)


def double_grants(acqs, faults, tolerance):
    """Grants made while the previous holder was live and not told."""
    pauses = [f for f in faults if f['kind'] == 'pause_holder']
    found, worst = 0, 0.0
    for index in range(1, len(acqs)):
        acq = acqs[index]
        for prev in acqs[max(0, index - 8):index]:
            if prev.pid == acq.pid or not prev.active_at(acq.t):
                continue
            if _paused(pauses, prev.pid, prev.t, acq.t):
                continue
            overlap = (prev.end or acq.t) - acq.t
            if prev.end is None or overlap > tolerance:
                found += 1
                worst = max(worst, overlap)
    return found, worst


def events_of(acqs, pid):
    """Acquire, write, release and lost times recorded by ``pid``."""
    for acq in acqs:
        if acq.pid != pid:
            continue
        yield {'t': acq.t}
        for write in acq.writes:
            yield write
        for t in (acq.lost, acq.end):
            if t is not None:
                yield {'t': t}


def pause_trials(acqs, faults, lease):
    trials = []
    for fault in faults:
        if fault['kind'] != 'pause_holder':
            continue
        held = [a for a in acqs if a.pid == fault['pid']
                and a.active_at(fault['t'])]
        ran = [e for e in events_of(acqs, fault['pid'])
               if fault['t'] < e['t'] < fault['until']]
        trial = {'pid': fault['pid'], 'paused_for': round(
            fault['until'] - fault['t'], 3)}
        if ran:
            # Something resumed it early: not a pause trial.
            trial.update(held=False, invalid='ran during the pause')
            trials.append(trial)
            continue
        trial['held'] = bool(held)
        if held and held[0].lost is not None:
            latency = held[0].lost - fault['until']
            trial['reported_after_resume'] = round(latency, 3)
            trial['within_lease'] = latency <= lease
        else:
            trial['within_lease'] = False
        after = [a for a in acqs if a.pid != fault['pid']
                 and fault['t'] < a.t < fault['until']]
        trial['taken_over'] = bool(after)
        trials.append(trial)
    return trials


def kill_trials(acqs, faults):
    trials = []
    for fault in faults:
        if fault['kind'] != 'kill_holder':
            continue
        held = any(a.pid == fault['pid'] and a.t <= fault['t']
                   and (a.end is None or fault['t'] <= a.end) for a in acqs)
        nxt = [a.t for a in acqs if a.t > fault['t']]
        trials.append({'pid': fault['pid'], 'held': held,
                       'next_grant_after': round(min(nxt) - fault['t'], 3)
                       if nxt else None})
    return trials


def check(events, records, lease, tolerance=0.0):
    """Summarize one run; see the module docstring for each figure."""
    faults = [e for e in events if e['k'] == 'fault']
    acqs = acquisitions(events)
    _killed_at(acqs, faults)
    stale, overlapping = resource_checks(records)
    doubles, worst = double_grants(acqs, faults, tolerance)
    writes = [w for a in acqs for w in a.writes]
    pauses = pause_trials(acqs, faults, lease)
    return {
        'acquisitions': len(acqs),
        'writes_accepted': sum(1 for w in writes if w['ok']),
        'writes_rejected': sum(1 for w in writes if not w['ok']),
        'resource_records': len(records),
        'stale_writes_accepted': stale,
        'overlapping_accepted_writes': overlapping,
        'unfenced_overlaps': unfenced_overlaps(acqs),
        'double_grants': doubles,
        'double_grant_worst_overlap_s': round(worst, 3),
        'lost_lock_reports': sum(1 for e in events if e['k'] == 'lost'),
        'pause_trials': sum(1 for p in pauses if p['held']),
        'lost_lock_detected_within_lease': sum(
            1 for p in pauses if p['held'] and p['within_lease']),
        'pause_details': pauses,
        'kill_trials': kill_trials(acqs, faults),
        'errors': sum(1 for e in events if e['k'] == 'error'),
        'faults': [f['kind'] for f in faults],
    }
