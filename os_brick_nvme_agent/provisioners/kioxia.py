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

"""A provisioner backed by KIOXIA KumoScale: ``kioxia``.

It reads and changes replicas through the KumoScale REST API, with the
endpoints cinder's ``kioxia`` driver uses (see :mod:`.kumoscale_client`).
How the agent's four calls map onto them:

* ``probe``: ``GET info``.
* ``get_replica_set(alias)``: ``GET volumes_by_alias/<alias>``; the MD name
  os-brick gives a replicated volume is the cinder volume name cut to 27
  characters, so when no volume has that exact alias the plugin lists
  ``GET volumes`` and takes the one volume whose alias starts with it.
  Each ``location`` of the volume is a replica: its ``uuid`` is the replica
  id and the namespace uuid, its ``replicaState`` the state (mapped with
  ``state_names``). ``GET targets?volId=..[&hostId=..]`` gives each
  backend's subsystem NQN (``targetName``), ``GET backends/<persistentID>``
  its portals. KumoScale has no replica-set version, so the generation is
  the newest ``currentStateTime`` among the locations (milliseconds; 0 when
  absent, which turns stale-answer detection off). The volume's
  ``maxReplicaDownTime`` (minutes), when set, is its grace period.
* ``report_replica_state``: ``PATCH replica/<vol>/<replica>/<state>``.
* ``request_replacement``: ``POST replica/<vol>`` (add one replica, unless
  the volume already has more than ``numReplicas``), then
  ``PATCH replica/<vol>/<replica>`` and ``DELETE replica/<vol>/<replica>``
  (delete and confirm the faulty one). Each step checks what is already
  done, so repeating the request after a crash does not add a second
  replica.
* ``send_event``: ``POST forward_log``, the host event log the Kioxia
  agent wrote to, with the record cinder's ``ForwardEntity`` describes
  (see :func:`forward_record`): volume degraded and healed, target
  reconnected and disconnected.

A location whose backend has no target for the volume makes the whole
answer malformed (and ignored): acting on a partial set could retire a
healthy leg.
"""

import datetime
import socket

from oslo_config import cfg
from oslo_log import log as logging

from os_brick_nvme_agent import exception
from os_brick_nvme_agent import journal
from os_brick_nvme_agent import model
from os_brick_nvme_agent.provisioners import base
from os_brick_nvme_agent.provisioners import kumoscale_client

LOG = logging.getLogger(__name__)

CONFIG_GROUP = 'provisioner_kioxia'
CONFIG_OPTS = [
    cfg.ListOpt('urls', default=['https://127.0.0.1:8090'],
                help='KumoScale provisioner management URLs, tried in '
                     'order (https://<address>:<port>).'),
    cfg.StrOpt('token', secret=True, default='',
               help='Static bearer token for the KumoScale REST API. '
                    'Leave empty to use OAuth client credentials '
                    '(token_url, client_id, client_secret).'),
    cfg.URIOpt('token_url', schemes=['https'],
               help='OAuth 2.0 token endpoint for the client credentials '
                    'grant; used when token is empty.'),
    cfg.StrOpt('client_id',
               help='OAuth client id for the KumoScale REST API.'),
    cfg.StrOpt('client_secret', secret=True,
               help='OAuth client secret for the KumoScale REST API.'),
    cfg.BoolOpt('verify', default=True,
                help='Verify the provisioner\'s TLS certificate. Turn off '
                     'only in a lab.'),
    cfg.StrOpt('ca_file',
               help='CA bundle to verify the provisioner\'s certificate '
                    'with, instead of the system store.'),
    cfg.FloatOpt('connect_timeout', default=5.0, min=0.1, max=300.0,
                 help='Seconds to wait for a connection.'),
    cfg.FloatOpt('read_timeout', default=30.0, min=0.1, max=600.0,
                 help='Seconds to wait for an answer.'),
    cfg.StrOpt('host_uuid',
               help='This host\'s uuid as cinder\'s connector reports it; '
                    'narrows the targets query to this host.'),
    cfg.DictOpt('state_names',
                default={'available': 'Available', 'faulty': 'Faulty',
                         'replacing': 'Replacing'},
                help='KumoScale replicaState value for each agent state '
                     '(available, faulty, replacing); used to report and '
                     'to read states.'),
    cfg.BoolOpt('same_rack_allowed', default=False,
                help='Let KumoScale put a replacement replica in the same '
                     'rack as another replica of the volume.'),
]

ALIAS_MAX = 27      # cinder's kioxia driver cuts replicated aliases here

#: appName of forwarded records, the one the Kioxia agent used.
APP_NAME = 'nvmeof_agent'
#: Journal event -> (level, message) of the forwarded record.
EVENT_MESSAGES = {
    journal.FAULT_SEEN: ('WARNING', 'Volume %(volume)s degraded: replica '
                         '%(replica)s is out of sync'),
    journal.RESYNC_DONE: ('INFO', 'Volume %(volume)s healed: replica '
                          '%(replica)s is in sync again'),
    journal.REPLICA_CONNECTED: ('INFO', 'Volume %(volume)s: target %(nqn)s '
                                'reconnected'),
    journal.CONTROLLER_DISCONNECTED: ('INFO', 'Volume %(volume)s: target '
                                      '%(nqn)s disconnected'),
}


class KioxiaProvisioner(base.Provisioner):
    """Replica sets from a KumoScale provisioner.

    Configure ``[nvme_agent] provisioner = kioxia`` and the
    ``[provisioner_kioxia]`` options: a static ``token``, or OAuth client
    credentials (``token_url``, ``client_id``, ``client_secret``). Secrets
    are secret options and are never logged.
    """

    CONFIG_GROUP = CONFIG_GROUP
    CONFIG_OPTS = CONFIG_OPTS

    def __init__(self, conf, client=None):
        super().__init__(conf)
        self._client = client
        if client is None:
            self._credentials()     # a missing credential stops the start

    @property
    def client(self):
        if self._client is None:
            opts = self.options
            verify = opts.ca_file if (opts.verify and opts.ca_file) \
                else opts.verify
            self._client = kumoscale_client.KumoScaleClient(
                opts.urls, self._credentials(), verify=verify,
                timeout=(opts.connect_timeout, opts.read_timeout))
        return self._client

    def _credentials(self):
        """The static token, or OAuth client credentials.

        :raises ProvisionerError: neither is configured completely.
        """
        opts = self.options
        if opts.token:
            return opts.token
        if opts.token_url and opts.client_id and opts.client_secret:
            return kumoscale_client.ClientCredentials(
                opts.token_url, opts.client_id, opts.client_secret)
        raise exception.ProvisionerError(
            '[provisioner_kioxia] needs token, or token_url, client_id and '
            'client_secret')

    def probe(self):
        self.client.get_info()

    def get_replica_set(self, volume_id):
        volume = self._find_volume(volume_id)
        if volume is None:
            return None
        targets = self.client.get_targets(volume['uuid'],
                                          self.options.host_uuid)
        return parse_replica_set(volume_id, volume, targets,
                                 self._portals, self._state_names())

    def report_replica_state(self, volume_id, replica_id, state):
        volume = self._known_volume(volume_id)
        if replica_id not in _replica_ids(volume):
            raise exception.UnknownReplica('%s/%s' % (volume_id, replica_id))
        name = self._state_names()[model.ReplicaState(state).value]
        self.client.set_replica_state(volume['uuid'], replica_id, name)

    def request_replacement(self, volume_id, replica_id):
        volume = self._known_volume(volume_id)
        ids = _replica_ids(volume)
        if replica_id not in ids:
            return          # already replaced
        wanted = volume.get('numReplicas')
        wanted = wanted if isinstance(wanted, int) else len(ids)
        if len(ids) <= wanted:
            self.client.add_replica(volume['uuid'], {
                'sameRackAllowed': self.options.same_rack_allowed})
        self.client.delete_replica(volume['uuid'], replica_id)
        self.client.delete_replica_confirm(volume['uuid'], replica_id)
        LOG.info('KumoScale: asked to replace replica %(rep)s of %(vol)s',
                 {'rep': replica_id, 'vol': volume_id})

    def send_event(self, event):
        """Forward a volume event to KumoScale's host event log.

        :returns: False for an event that has no KumoScale message.
        :raises ProvisionerUnavailable, ProvisionerError: not delivered.
        """
        record = forward_record(event, socket.gethostname())
        if record is None:
            return False
        try:
            self.client.forward_log(record)
        except exception.UnknownVolume:     # HTTP 404: no such command
            raise exception.ProvisionerError(
                'KumoScale has no forward_log command (event %s of %s not '
                'forwarded)' % (event.get('event'), event.get('volume')))
        return True

    # Helpers -------------------------------------------------------------

    def _state_names(self):
        names = {'available': 'Available', 'faulty': 'Faulty',
                 'replacing': 'Replacing'}
        names.update(self.options.state_names or {})
        return names

    def _portals(self, persistent_id):
        backends = self.client.get_backend_by_id(persistent_id)
        if not backends:
            raise exception.MalformedReply(
                'KumoScale: backend %s not found' % persistent_id)
        return parse_portals(backends[0])

    def _known_volume(self, volume_id):
        volume = self._find_volume(volume_id)
        if volume is None:
            raise exception.UnknownVolume(volume_id)
        return volume

    def _find_volume(self, volume_id):
        try:
            found = [v for v in self.client.get_volumes_by_alias(volume_id)
                     if v.get('alias') == volume_id]
        except exception.UnknownVolume:
            found = []
        if not found and len(volume_id) == ALIAS_MAX:
            found = [v for v in self.client.get_volumes()
                     if str(v.get('alias', '')).startswith(volume_id)]
        if len(found) > 1:
            raise exception.MalformedReply(
                'KumoScale: %d volumes match alias %s'
                % (len(found), volume_id))
        if found and not isinstance(found[0].get('uuid'), str):
            raise exception.MalformedReply('KumoScale: volume %s has no '
                                           'uuid' % volume_id)
        return found[0] if found else None


# Pure translation of KumoScale answers -----------------------------------

def parse_replica_set(volume_id, volume, targets, portals_of, state_names):
    """Build a ReplicaSet from a KumoScale volume and its targets.

    :param portals_of: callable persistentID -> tuple of Portal.
    :raises MalformedReply: the answers do not fit together.
    """
    try:
        nqns = {str(t['backend']['persistentID']): t['targetName']
                for t in targets}
        replicas, times = [], [0]
        for location in volume['location']:
            backend_id = str(location['backend']['persistentID'])
            if backend_id not in nqns:
                raise ValueError('no target for backend %s' % backend_id)
            replicas.append(model.Replica(
                id=location['uuid'], nqn=nqns[backend_id],
                portals=portals_of(backend_id),
                state=parse_state(location.get('replicaState'),
                                  state_names),
                ns_uuid=location['uuid']))
            times.append(parse_time(location.get('currentStateTime')))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise exception.MalformedReply('KumoScale volume %s: %s'
                                       % (volume_id, exc))
    return model.ReplicaSet(volume_id, max(times), tuple(replicas),
                            grace_period=parse_down_time(
                                volume.get('maxReplicaDownTime')))


def forward_record(event, host):
    """The ``forward_log`` body for a journal event, or None.

    ``parametersList`` carries the event's fields as ``name=value``
    strings, in a fixed order, so the log can be searched by volume,
    replica or target.
    """
    if event.get('event') not in EVENT_MESSAGES:
        return None
    level, text = EVENT_MESSAGES[event['event']]
    fields = {name: event.get(name) or '-'
              for name in ('volume', 'replica', 'nqn')}
    params = ['%s=%s' % (name, event[name])
              for name in ('event', 'volume', 'replica', 'nqn', 'time')
              if event.get(name) is not None]
    return {'loggingType': 'EVENT', 'level': level, 'host': host,
            'appName': APP_NAME, 'message': text % fields,
            'parametersList': params}


def parse_down_time(value):
    """maxReplicaDownTime in seconds, or None.

    cinder's kioxia driver sets it in minutes
    (``kioxia_max_replica_down_time``); absent, zero or not a number
    gives None, and ``[nvme_agent] grace_period`` applies.
    """
    if isinstance(value, bool):
        return None
    try:
        minutes = float(value)
    except (TypeError, ValueError):
        return None
    return minutes * 60.0 if minutes > 0 else None


def parse_portals(backend):
    try:
        return tuple(model.Portal(str(p['transport']).lower(), str(p['ip']),
                                  int(p['port']))
                     for p in backend['portals'])
    except (KeyError, TypeError, ValueError) as exc:
        raise exception.MalformedReply('KumoScale backend portals: %s' % exc)


def parse_state(value, state_names):
    wanted = str(value).lower()
    for ours, theirs in state_names.items():
        if str(theirs).lower() == wanted:
            return base.parse_replica_state(ours)
    return base.parse_replica_state(wanted)


def parse_time(value):
    """currentStateTime as integer milliseconds; 0 when unknown."""
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        stamp = datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))
    except ValueError:
        return 0
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return int(stamp.timestamp() * 1000)


def _replica_ids(volume):
    try:
        return [location['uuid'] for location in volume['location']]
    except (KeyError, TypeError) as exc:
        raise exception.MalformedReply('KumoScale volume: %s' % exc)
