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

"""Optional metrics in the node_exporter textfile format.

With ``[nvme_agent] metrics_file`` set (a ``*.prom`` file in the
directory node_exporter's ``--collector.textfile.directory`` reads), the
agent rewrites the file atomically after every pass:

* ``os_brick_nvme_agent_arrays``: MD arrays the agent manages;
* ``os_brick_nvme_agent_degraded_arrays``: those with a leg out of sync;
* ``os_brick_nvme_agent_heals_total``: replicas back in sync after a
  fault since the agent started;
* ``os_brick_nvme_agent_last_detection_latency_seconds``: for the last
  fault seen, seconds from the wake-up that started the pass (a kernel
  change notification or the poll timer) to the fault being recorded;
* ``os_brick_nvme_agent_provisioner_up``: 1 when the last pass reached
  the provisioner.
"""

import os
import tempfile

PREFIX = 'os_brick_nvme_agent_'
_HELP = (
    ('arrays', 'gauge', 'MD arrays the agent manages.'),
    ('degraded_arrays', 'gauge', 'Managed MD arrays with a leg out of '
                                 'sync.'),
    ('heals_total', 'counter', 'Replicas back in sync after a fault since '
                               'the agent started.'),
    ('last_detection_latency_seconds', 'gauge',
     'Seconds from the wake-up of the pass that saw the last fault to '
     'the fault being recorded.'),
    ('provisioner_up', 'gauge', '1 when the last pass reached the '
                                'provisioner.'),
)


def render(values):
    """The textfile text for ``values`` (name without prefix -> number)."""
    lines = []
    for name, kind, text in _HELP:
        if values.get(name) is None:
            continue
        lines += ['# HELP %s%s %s' % (PREFIX, name, text),
                  '# TYPE %s%s %s' % (PREFIX, name, kind),
                  '%s%s %s' % (PREFIX, name, _number(values[name]))]
    return '\n'.join(lines) + '\n'


def _number(value):
    return repr(float(value)) if isinstance(value, float) else str(value)


def write(path, values):
    """Replace ``path`` atomically.

    :returns: None, or what went wrong (the caller logs it once).
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix='.metrics-', dir=directory)
    except OSError as exc:
        return '%s: %s' % (directory, exc.strerror or exc)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(render(values))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return '%s: %s' % (path, exc.strerror or exc)
    return None
