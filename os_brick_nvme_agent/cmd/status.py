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

"""``os-brick-nvme-agent status``: the host as the agent sees it.

Read-only: the status command never changes the state file, and never
talks to the provisioner itself; the provisioner's reachability is what
the running agent last recorded.
"""

import os
import sys
import time

from os_brick_nvme_agent import pidlock

STATE_FILE = 'state.json'


def read_state(path):
    """(AgentState or None, note) without modifying the file."""
    from os_brick_nvme_agent import state
    try:
        with open(path, encoding='utf-8') as handle:
            return state.loads(handle.read()), ''
    except FileNotFoundError:
        return None, 'no state file yet (%s)' % path
    except (OSError, ValueError) as exc:
        return None, 'state file unreadable: %s' % exc


def _age(now, since):
    return '-' if since is None else '%ds' % max(0, now - since)


def leg_rows(host, agent_state, now):
    """One row per leg: array, volume, slot, device, state, NQN, replica."""
    rows = []
    for array in host.arrays:
        volume_id = (array.md_name or '').split(':', 1)[-1]
        record = agent_state.volume(volume_id) if agent_state else None
        by_nqn = {r.nqn: r for r in (record.replicas if record else ())}
        for leg in sorted(array.legs, key=lambda item: (
                item.slot is None, item.slot or 0)):
            rec = by_nqn.get(leg.subsysnqn)
            rows.append((array.name, array.md_name or '-',
                         '-' if leg.slot is None else str(leg.slot),
                         leg.device or '-', leg.state.value,
                         leg.subsysnqn or '-',
                         rec.replica_id if rec else '-',
                         _age(now, rec.faulty_since) if rec else '-'))
    return rows


def pending_rows(agent_state):
    from os_brick_nvme_agent import state
    rows = []
    for record in (agent_state.volumes if agent_state else ()):
        for action in record.pending:
            item = state.action_to_dict(action)
            detail = {k: v for k, v in item.items()
                      if k not in ('type', 'volume_id', 'replica')}
            if 'replica' in item:
                detail['replica'] = item['replica'].get('id')
            rows.append((record.volume_id, type(action).__name__,
                         ' '.join('%s=%s' % kv for kv in sorted(
                             detail.items()))))
    return rows


def table(header, rows):
    widths = [max(len(str(cell)) for cell in column)
              for column in zip(header, *rows)]
    lines = ['  '.join(str(cell).ljust(width)
                       for cell, width in zip(row, widths)).rstrip()
             for row in [header] + list(rows)]
    return '\n'.join(lines) + '\n'


def render_status(host, agent_state, now, running, note='', events=()):
    """The status text.

    :param events: the journal's events, oldest first; the last event of
        each volume and the last provisioner probe are shown.
    """
    from os_brick_nvme_agent import journal
    text = 'agent: %s\n' % ('running' if running else 'not running')
    text += 'provisioner: %s\n' % journal.reachability(events)
    if note:
        text += 'state: %s\n' % note
    text += '\n' + table(('ARRAY', 'VOLUME', 'SLOT', 'DEVICE', 'LEG STATE',
                          'NQN', 'REPLICA', 'OUT FOR'),
                         leg_rows(host, agent_state, now))
    pending = pending_rows(agent_state)
    text += '\npending actions: %s\n' % (len(pending) or 'none')
    if pending:
        text += table(('VOLUME', 'ACTION', 'DETAIL'), pending)
    last = journal.last_by_volume(events)
    text += '\nlast event per volume: %s\n' % (len(last) or 'none')
    if last:
        text += table(('VOLUME', 'WHEN', 'EVENT', 'DETAIL'),
                      [journal.row(event) for event in last])
    return text


def command(conf, out=sys.stdout):
    """Print the status table; returns the exit status."""
    from os_brick_nvme_agent.host import snapshot
    from os_brick_nvme_agent import journal
    group = conf.nvme_agent
    agent_state, note = read_state(os.path.join(group.state_dir,
                                                STATE_FILE))
    events, _bad = journal.read(journal.path(group.state_dir))
    host = snapshot.read_host_state(group.root_dir)
    out.write(render_status(host, agent_state, time.time(),
                            pidlock.is_running(group.state_dir), note,
                            events))
    return 0


def events_command(conf, argv, out=sys.stdout):
    """``os-brick-nvme-agent events [--volume ID] [--last N]``."""
    from os_brick_nvme_agent import journal
    events, bad = journal.read(journal.path(conf.nvme_agent.state_dir))
    volume = argv[argv.index('--volume') + 1] if '--volume' in argv else None
    if volume:
        events = [e for e in events if e.get('volume') == volume]
    if '--last' in argv:
        events = events[-int(argv[argv.index('--last') + 1]):]
    if not events:
        out.write('no events recorded yet\n')
    else:
        out.write(table(('WHEN', 'VOLUME', 'EVENT', 'DETAIL'),
                        [journal.row(e, volume_first=True) for e in events]))
    if bad:
        out.write('(%d unreadable journal lines skipped)\n' % bad)
    return 0
