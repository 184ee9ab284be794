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

"""The NVMe-oF healing agent: detection, heal time and reconcile cost.

Two parts, in one run:

* real kernel (Debian kernel under qemu TCG, see tools/kernel): MD RAID1
  over two nvmet-tcp replicas connected by os-brick. ``--faults`` faults
  per mode (10 by default), each at a random phase of the agent's poll
  cycle; median and p90 of (see ``bench_guest``):

  - detection, ``notify``: ``mdadm --fail`` of a leg whose target is gone
    -> the provisioner holds the FAULTY report; the agent as the hook
    starts it (md change notifications);
  - detection, ``poll``: the same with notifications off, the agent
    waking every ``poll_interval`` (10 s): the real agent with
    ``watch_md_events = false``, as the table says;
  - target lost -> provisioner told (``lost``): from the removal of the
    target's port link, a write in flight; includes the kernel's time to
    fail the leg (``fast_io_fail_tmo``), shown apart;
  - heal: replacement created -> array in sync (grace period excluded).

  Upstream os-brick (agent disabled) is watched just as long after the
  same fault: it never reports nor heals.
* reconcile cost on a simulated host with 1, 100 and 1,000 healthy
  arrays, each cloned from the real ``01-clean`` fixture, two figures:
  the engine cycle (``read_host_state`` + ``engine.reconcile``) and a
  real pass (``AgentService.run_once``: snapshot, one static-provisioner
  query per array, controller tuning, reconcile, state save).

    python -m benchmarks.nvme_agent [--quick] [--no-kernel] [--faults N]

``--quick`` (CI, the demo) measures the reconcile cost only.

Prints a table and writes ``benchmarks/results/nvme_agent.json``.
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import statistics
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
RESULT_PATH = REPO / 'benchmarks' / 'results' / 'nvme_agent.json'
GOAL_DETECT_S = 1.0
GOAL_MS_PER_ARRAY = 1.0
_TOKEN = re.compile(r'nvme-subsys(\d+)|nvme(\d+)c(\d+)n(\d+)|nvme(\d+)n(\d+)'
                    r'|nvme(\d+)|md127|vol1|resilience-vol-r(\d)')


def _renamer(index):
    """Map the template's names onto array ``index``'s names."""
    base = 2 * index

    def rename(match):
        g = match.groups()
        if g[0] is not None:
            return 'nvme-subsys%d' % (base + int(g[0]))
        if g[1] is not None:
            return 'nvme%dc%dn%s' % (base + int(g[2]), base + int(g[2]),
                                     g[3])
        if g[4] is not None:
            return 'nvme%dn%s' % (base + int(g[4]), g[5])
        if g[6] is not None:
            return 'nvme%d' % (base + int(g[6]))
        text = match.group(0)
        if text == 'md127':
            return 'md%d' % index
        if text == 'vol1':
            return 'bvol%d' % index
        return 'bvol%d-r%s' % (index, g[7])
    return lambda text: _TOKEN.sub(rename, text)


def template_dir():
    """The real ``01-clean`` recording (unpacked from the fixture archive)."""
    from os_brick_nvme_agent.tests.unit import fixtures_util
    return os.path.join(fixtures_util.real_dir(), '01-clean')


def load_template(src):
    """The template tree as (relative path, link target or None, text)."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        if rel.split(os.sep)[0] in ('cmd', 'proc', 'run'):
            dirnames[:] = []
            continue
        entries.append((rel, None, None))
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                entries.append((os.path.join(rel, name), os.readlink(path),
                                None))
            elif os.path.isfile(path):
                with open(path) as stream:
                    entries.append((os.path.join(rel, name), None,
                                    stream.read()))
    return entries


def _clone(entries, dest, rename, uuid_suffix):
    """Write the template under new names (links rewritten too)."""
    for rel, link, text in entries:
        target = os.path.join(dest, rename(rel))
        if link is None and text is None:
            os.makedirs(target, exist_ok=True)
        elif link is not None:
            if not os.path.lexists(target):
                os.symlink(rename(link), target)
        else:
            text = rename(text)
            if rel.endswith('/uuid') and 'nvme' in rel:
                text = text.strip()[:-8] + uuid_suffix + '\n'
            with open(target, 'w') as stream:
                stream.write(text)


def build_tree(root, count):
    """A simulated host with ``count`` clean arrays; returns replica sets."""
    from os_brick_nvme_agent import model
    template = template_dir()
    with open(os.path.join(template, 'proc', 'mdstat')) as stream:
        template_mdstat = stream.read()
    entry = template_mdstat.split('\n', 1)[1].rsplit('unused devices', 1)[0]
    mdstat, mdmap, replica_sets = ['Personalities : [raid1] \n'], [], {}
    entries = load_template(template)
    for index in range(count):
        rename = _renamer(index)
        _clone(entries, root, rename, '%08x' % index)
        mdstat.append(rename(entry))
        mdmap.append('md%d 1.2 00000000:00000000:00000000:%08x '
                     '/dev/md/bvol%d\n' % (index, index, index))
        replicas = []
        for leg in (0, 1):
            ns = os.path.join(root, 'sys/block/nvme%dn1' % (2 * index + leg))
            with open(os.path.join(ns, 'uuid')) as stream:
                ns_uuid = stream.read().strip()
            with open(os.path.join(ns, 'device', 'subsysnqn')) as stream:
                nqn = stream.read().strip()
            replicas.append(model.Replica(
                'r%d' % (leg + 1), nqn,
                (model.Portal('tcp', '127.0.0.1', 4420 + leg),),
                ns_uuid=ns_uuid))
        replica_sets['bvol%d' % index] = model.ReplicaSet(
            'bvol%d' % index, 1, tuple(replicas))
    mdstat.append('unused devices: <none>\n')
    os.makedirs(os.path.join(root, 'proc'), exist_ok=True)
    os.makedirs(os.path.join(root, 'run', 'mdadm'), exist_ok=True)
    with open(os.path.join(root, 'proc', 'mdstat'), 'w') as stream:
        stream.write(''.join(mdstat))
    with open(os.path.join(root, 'run', 'mdadm', 'map'), 'w') as stream:
        stream.write(''.join(mdmap))
    return replica_sets


def _quiet_host_layer():
    import logging
    # the recorded ctl directory holds the kernel's power/subsystem/uevent
    # entries, which the host layer warns about on every pass: keep that
    # out of the table (and of the timing)
    logging.getLogger('os_brick_nvme_agent.host').setLevel(logging.ERROR)


def _with_tree(count, measure):
    """Run ``measure(root, replica_sets)`` on a fresh simulated host."""
    # tmpfs where there is one: 100,000 small files
    root = tempfile.mkdtemp(prefix='nvme-agent-bench-', dir=(
        '/dev/shm' if os.path.isdir('/dev/shm') else None))
    try:
        return measure(root, build_tree(root, count))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def engine_cycle_cost(counts, cycles):
    """Milliseconds per engine cycle: ``read_host_state`` + ``reconcile``.

    No provisioner query, no controller tuning, no state save: the part
    of a pass that grows with the host, alone.
    """
    from os_brick_nvme_agent import engine
    from os_brick_nvme_agent.host import snapshot
    from os_brick_nvme_agent import state
    _quiet_host_layer()

    def measure(root, replica_sets):
        config = engine.EngineConfig(grace_period=120.0)
        agent_state = state.AgentState()
        samples = []
        for _ in range(cycles):
            start = time.perf_counter()
            host = snapshot.read_host_state(root)
            actions, agent_state = engine.reconcile(
                host, replica_sets, agent_state, time.time(), config)
            samples.append((time.perf_counter() - start) * 1000.0)
            if len(host.arrays) != len(replica_sets) or actions:
                raise RuntimeError('%d arrays, %d actions on a healthy host'
                                   % (len(host.arrays), len(actions)))
        return statistics.median(samples)
    return {str(count): _with_tree(count, measure) for count in counts}


class _NoPrivilegedCommands(object):
    """The executor's command set on a simulated host: nothing may run.

    A healthy, tuned host needs no command; any call fails the benchmark.
    """

    def __getattr__(self, name):
        raise RuntimeError('privileged command %s on a healthy host' % name)


def _agent_service(root, replica_sets, workdir):
    """A real AgentService on the simulated host, static provisioner.

    Built by ``daemon.build_service``, as the daemon builds its own, with
    a command set that refuses every privileged command.
    """
    from oslo_config import cfg

    from os_brick_nvme_agent import daemon
    from os_brick_nvme_agent import opts
    from os_brick_nvme_agent.provisioners import base
    path = os.path.join(workdir, 'replicas.json')
    with open(path, 'w') as stream:
        json.dump({'volumes': {
            volume_id: {'generation': rs.generation, 'replicas': [
                base.replica_to_dict(r) for r in rs.replicas]}
            for volume_id, rs in replica_sets.items()}}, stream)
    # a tuned host: every controller already has the configured value
    ctl = os.path.join(root, 'sys', 'devices', 'virtual', 'nvme-fabrics',
                       'ctl')
    for name in os.listdir(ctl):
        tmo = os.path.join(ctl, name, 'fast_io_fail_tmo')
        if os.path.exists(tmo):
            with open(tmo, 'w') as stream:
                stream.write('5\n')
    conf_file = os.path.join(workdir, 'agent.conf')
    with open(conf_file, 'w') as stream:
        stream.write('[nvme_agent]\nroot_dir = %s\nstate_dir = %s\n'
                     'provisioner = static\ngrace_period = 120\n'
                     'fast_io_fail_tmo = 5\n[provisioner_static]\n'
                     'path = %s\n' % (root, workdir, path))
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([], default_config_files=[conf_file])
    return daemon.build_service(conf, commands=_NoPrivilegedCommands())


def agent_pass_cost(counts, cycles, slow_cycles=3):
    """Milliseconds per real ``AgentService.run_once``.

    Snapshot, one static-provisioner query per array, controller tuning
    (read, nothing to write), reconcile, the durable state save (fsync)
    and the event journal, as the daemon builds it, on a healthy host.
    Counts above 100 run ``slow_cycles`` passes (a pass takes seconds).
    """
    _quiet_host_layer()

    def measure(root, replica_sets):
        workdir = tempfile.mkdtemp(prefix='nvme-agent-pass-')
        try:
            agent = _agent_service(root, replica_sets, workdir)
            samples = []
            for _ in range(cycles if len(replica_sets) <= 100
                           else slow_cycles):
                start = time.perf_counter()
                delay = agent.run_once()
                samples.append((time.perf_counter() - start) * 1000.0)
                records = len(agent.state.volumes)
                if delay is not None or agent.acted or \
                        records != len(replica_sets):
                    raise RuntimeError('pass on a healthy host: delay %s, '
                                       'acted %s, %d volumes known' % (
                                           delay, agent.acted, records))
            return statistics.median(samples)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return {str(count): _with_tree(count, measure) for count in counts}


def kernel_run(faults, upstream_wait):
    """Boot the guest on bench_guest; return its bench.json (or None)."""
    from os_brick_nvme_agent.tests.functional_kernel import guest
    from os_brick_nvme_agent.tests.functional_kernel import test_scenarios
    argv = ['--faults', str(faults), '--upstream-wait', str(upstream_wait)]
    try:
        fixture = guest.Guest()
        fixture.setUp()
    except guest.GuestUnavailable as exc:
        print('real-kernel part skipped: %s' % exc)
        return None
    try:
        guest.compile_bytecode()
        script = test_scenarios.job_script(
            guest.guest_python(), fixture.workdir, [], module='bench_guest',
            extra=['measure'] + argv)
        # boot and imports, then 10-40 s per fault
        result = fixture.run(script, timeout=600 + 3 * 40 * faults)
        if result.rc != 0:
            print('guest run failed (rc %s):\n%s'
                  % (result.rc, result.console[-3000:]))
        try:
            with open(fixture.path('bench.json')) as stream:
                return json.load(stream)
        except (OSError, ValueError):
            return None
    finally:
        fixture.cleanUp()


MODES = ('notify', 'poll', 'lost')


def p90(values):
    """90th percentile (inclusive: within the samples' range)."""
    values = sorted(values)
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=10, method='inclusive')[-1]


def _stats(values):
    values = list(values)
    if not values:
        return None
    return {'median': statistics.median(values), 'p90': p90(values),
            'min': min(values), 'max': max(values), 'n': len(values)}


def summarize(bench):
    """Median and p90 per mode of detection, heal and the kernel's part."""
    bench = bench or {}
    out = {'samples': bench, 'detect_s': {}, 'heal_s': {},
           'leg_failed_s': {}, 'poll_setup': None}
    for mode in MODES:
        samples = (bench.get(mode) or {}).get('samples') or []
        for key in ('detect_s', 'heal_s', 'leg_failed_s'):
            stats = _stats(r[key] for r in samples if key in r)
            if stats:
                out[key][mode] = stats
    out['poll_setup'] = (bench.get('poll') or {}).get('setup')
    return out


def _fmt(stats, unit='s'):
    if not stats:
        return '-'
    return '%.2f / %.2f %s (n=%d)' % (stats['median'], stats['p90'], unit,
                                      stats['n'])


def _upstream(doc):
    upstream = (doc.get('samples') or {}).get('upstream')
    if not upstream:
        return 'never (os-brick has no agent; not re-measured)'
    if upstream['healthy_after_wait']:
        return 'healed?!'
    return 'never (still degraded after %.0f s)' % upstream['waited_s']


def table(doc):
    up = _upstream(doc)
    poll = 'poll (%s)' % (doc.get('poll_setup') or 'not run')
    tmo = (doc.get('samples') or {}).get('fast_io_fail_tmo_s')
    rows = [('metric (median / p90)', 'upstream', 'ours'),
            ('detection: mdadm --fail -> provisioner, notify', up,
             _fmt(doc['detect_s'].get('notify'))),
            ('detection: mdadm --fail -> provisioner, %s' % poll, up,
             _fmt(doc['detect_s'].get('poll'))),
            ('target lost -> provisioner told (from port removal)', up,
             _fmt(doc['detect_s'].get('lost'))),
            ('  of which md fails the leg (fast_io_fail_tmo %s s)' % tmo,
             'never (ctrl_loss_tmo -1)', _fmt(doc['leg_failed_s'].get(
                 'lost')))]
    for mode in MODES:
        rows.append(('heal: replacement -> in sync, %s' % mode, 'never',
                     _fmt(doc['heal_s'].get(mode))))
    for key, label in (('engine_ms_per_cycle', 'engine cycle'),
                       ('pass_ms', 'agent pass (run_once)')):
        for count, value in sorted(doc[key].items(),
                                   key=lambda kv: int(kv[0])):
            rows.append(('%s, %s arrays (ms)' % (label, count),
                         'n/a (no reconcile loop)', '%.2f (%.3f/array)' % (
                             value, value / int(count))))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ['  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in rows]
    return '\n'.join(lines)


def _met(value, goal):
    return 'met' if value <= goal else 'NOT met'


def goals(doc):
    notify = doc['detect_s'].get('notify')
    if notify is None:
        lines = ['goal: detection within %.0f s with notifications: -'
                 % GOAL_DETECT_S]
    else:
        lines = ['goal: detection within %.0f s with notifications: median '
                 '%s, p90 %s' % (GOAL_DETECT_S,
                                 _met(notify['median'], GOAL_DETECT_S),
                                 _met(notify['p90'], GOAL_DETECT_S))]
    for key, label in (('engine_ms_per_cycle', 'engine cycle'),
                       ('pass_ms', 'agent pass')):
        per_array = doc[key]['1000'] / 1000.0
        lines.append('goal: under %.0f ms per array at 1000 arrays, %s: %s'
                     % (GOAL_MS_PER_ARRAY, label,
                        _met(per_array, GOAL_MS_PER_ARRAY)))
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='reconcile cost only, fewer cycles (the qemu '
                             'part takes 10 minutes or more)')
    parser.add_argument('--no-kernel', action='store_true',
                        help='skip the qemu part (reconcile cost only)')
    parser.add_argument('--faults', type=int, default=10,
                        help='faults per mode in the guest (each adds '
                             '10-20 s)')
    parser.add_argument('--upstream-wait', type=float, default=15.0,
                        help='seconds upstream os-brick is watched after '
                             'its fault')
    parser.add_argument('--output', default=str(RESULT_PATH))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    bench = (None if args.no_kernel or args.quick
             else kernel_run(args.faults, args.upstream_wait))
    doc = summarize(bench)
    cycles = 5 if args.quick else 20
    doc['engine_ms_per_cycle'] = engine_cycle_cost((1, 100, 1000), cycles)
    doc['pass_ms'] = agent_pass_cost((1, 100, 1000), cycles)
    doc['quick'] = args.quick
    doc['journal_on'] = journal_on(bench)
    print(table(doc))
    print(goals(doc))
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, 'w') as stream:
        json.dump(doc, stream, indent=2, sort_keys=True)
    print('written to %s' % args.output)
    return 0


def journal_on(bench):
    """True when the agents measured kept their durable event journal.

    The guest's agents (built by ``daemon.build_service``) count when the
    kernel part ran: their journal file must hold events. Otherwise only
    the agent pass above ran, and it is always given a journal, the way
    the daemon is.
    """
    if bench:
        return bool(bench.get('journal_events'))
    return True


if __name__ == '__main__':
    sys.exit(main())
