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

"""A small client for the KumoScale provisioner REST API.

It speaks the same endpoints cinder's ``kioxia`` volume driver uses
(``cinder/volume/drivers/kioxia/rest_client.py``): bearer-token
authentication, ``https://<address>:<port>/<command>``, JSON bodies, list
answers for queries and ``{"status": ..., "description": ...}`` for
failures. Only the calls the agent needs are here. Unlike that client, it
verifies the server's certificate by default.

Errors are translated here, at the edge: no answer (refused, timeout, TLS
failure), 5xx and authentication refusals raise
:class:`~os_brick_nvme_agent.exception.ProvisionerUnavailable`; a body that
is not the JSON expected raises
:class:`~os_brick_nvme_agent.exception.MalformedReply`; a well-formed
refusal raises :class:`~os_brick_nvme_agent.exception.ProvisionerError`.
"""

import json
from urllib import parse

from oslo_log import log as logging
import requests

from os_brick_nvme_agent import exception

LOG = logging.getLogger(__name__)


class ClientCredentials(object):
    """Bearer tokens from an OAuth 2.0 token endpoint (RFC 6749, 4.4).

    ``grant_type=client_credentials`` with the client id and secret in
    HTTP basic authentication; the answer's ``access_token`` is kept until
    shortly before its ``expires_in``. Neither the secret nor the token is
    ever logged.

    :param token_url: the token endpoint.
    :param client_id: the client id.
    :param client_secret: the client secret.
    :param clock: callable() -> monotonic seconds.
    """

    #: Seconds before expiry at which a new token is fetched.
    MARGIN = 30.0

    def __init__(self, token_url, client_id, client_secret, clock=None):
        import time
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.clock = clock or time.monotonic
        self._token = None
        self._expires = 0.0

    def token(self, session, verify, timeout):
        if self._token is None or self.clock() >= self._expires:
            self._fetch(session, verify, timeout)
        return self._token

    def forget(self):
        """Drop the cached token (the provisioner refused it)."""
        self._token = None

    def _fetch(self, session, verify, timeout):
        try:
            response = session.post(
                self.token_url, data={'grant_type': 'client_credentials'},
                auth=(self.client_id, self._secret),
                headers={'Accept': 'application/json'}, verify=verify,
                timeout=timeout)
        except requests.RequestException as exc:
            raise exception.ProvisionerUnavailable(
                'KumoScale token endpoint %s unreachable: %s'
                % (self.token_url, type(exc).__name__))
        if response.status_code != 200:
            raise exception.ProvisionerUnavailable(
                'KumoScale token endpoint %s: HTTP %s (check client_id and '
                'client_secret)' % (self.token_url, response.status_code))
        try:
            body = response.json()
            token = body['access_token']
            lifetime = float(body.get('expires_in', 300))
        except (ValueError, KeyError, TypeError) as exc:
            raise exception.MalformedReply(
                'KumoScale token endpoint %s: no usable access_token (%s)'
                % (self.token_url, type(exc).__name__))
        if not isinstance(token, str) or not token:
            raise exception.MalformedReply(
                'KumoScale token endpoint %s: empty access_token'
                % self.token_url)
        self._token = token
        self._expires = self.clock() + max(0.0, lifetime - self.MARGIN)


class KumoScaleClient(object):
    """Calls one KumoScale provisioner, trying each URL in turn.

    :param urls: base URLs, e.g. ``['https://192.0.2.5:8090']``.
    :param token: the static bearer token (never logged), or a
        :class:`ClientCredentials` that fetches one.
    :param verify: True, False or a CA bundle path (as ``requests``).
    :param timeout: ``(connect, read)`` seconds.
    """

    def __init__(self, urls, token, verify=True, timeout=(5.0, 30.0),
                 session=None):
        if not urls:
            raise exception.ProvisionerError('no KumoScale URL configured')
        self.urls = list(urls)
        self._token = token
        self.verify = verify
        self.timeout = timeout
        self.session = session or requests.Session()

    def _bearer(self):
        if isinstance(self._token, ClientCredentials):
            return self._token.token(self.session, self.verify, self.timeout)
        return self._token

    # Endpoints (names follow cinder's rest_client) ----------------------

    def get_info(self):
        return self._call('GET', 'info')

    def get_volumes(self):
        return self._records('GET', 'volumes')

    def get_volumes_by_alias(self, alias):
        return self._records('GET', 'volumes_by_alias/' + _quote(alias))

    def get_backend_by_id(self, persistent_id):
        return self._records('GET', 'backends/' + _quote(persistent_id))

    def get_targets(self, volume_uuid, host_uuid=None):
        query = {'volId': volume_uuid}
        if host_uuid:
            query = {'hostId': host_uuid, 'volId': volume_uuid}
        return self._records('GET', 'targets?' + parse.urlencode(query))

    def set_replica_state(self, volume_uuid, replica_uuid, state):
        return self._call('PATCH', 'replica/%s/%s/%s' % (
            _quote(volume_uuid), _quote(replica_uuid), _quote(state)))

    def add_replica(self, volume_uuid, replica_entity):
        return self._call('POST', 'replica/' + _quote(volume_uuid),
                          body=replica_entity)

    def delete_replica(self, volume_uuid, replica_uuid):
        return self._call('PATCH', 'replica/%s/%s' % (
            _quote(volume_uuid), _quote(replica_uuid)))

    def delete_replica_confirm(self, volume_uuid, replica_uuid):
        return self._call('DELETE', 'replica/%s/%s' % (
            _quote(volume_uuid), _quote(replica_uuid)))

    def forward_log(self, record):
        """Add a record to the provisioner's host event log.

        :param record: the JSON object cinder's ``ForwardEntity`` has:
            ``loggingType``, ``level``, ``host``, ``appName``,
            ``message``, ``parametersList``.
        """
        return self._call('POST', 'forward_log', body=record)

    # Transport -------------------------------------------------------------

    def _records(self, method, command):
        result = self._call(method, command)
        if result is None:
            return []
        if isinstance(result, dict):
            result = [result]
        if not isinstance(result, list) or \
                not all(isinstance(r, dict) for r in result):
            raise exception.MalformedReply(
                'KumoScale %s: expected a list of objects' % command)
        return result

    def _call(self, method, command, body=None):
        last = None
        for base in self.urls:
            try:
                response = self._send(base, method, command, body)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = exc      # try the next management address
                continue
            if (response.status_code == 401
                    and isinstance(self._token, ClientCredentials)):
                self._token.forget()    # expired early: a new one next
            return self._decode(command, response)
        raise exception.ProvisionerUnavailable(
            'KumoScale unreachable for %s %s: %s' % (method, command, last))

    def _send(self, base, method, command, body):
        headers = {'Authorization': 'Bearer ' + self._bearer(),
                   'Accept': 'application/json'}
        data = None
        if body is not None:
            headers['Content-Type'] = 'application/json'
            data = json.dumps(body)
        url = base.rstrip('/') + '/' + command
        LOG.debug('KumoScale %(method)s %(url)s', {'method': method,
                                                   'url': url})
        return self.session.request(method, url, data=data, headers=headers,
                                    verify=self.verify, timeout=self.timeout)

    @staticmethod
    def _decode(command, response):
        status = response.status_code
        if status in (401, 403) or status >= 500:
            raise exception.ProvisionerUnavailable(
                'KumoScale %s: HTTP %s%s' % (
                    command, status,
                    ' (check the token)' if status < 500 else ''))
        if not response.content.strip():
            body = None
        else:
            try:
                body = response.json()
            except ValueError as exc:
                raise exception.MalformedReply(
                    'KumoScale %s: not JSON: %s' % (command, exc))
        if status == 404:
            raise exception.UnknownVolume('KumoScale %s: not found' % command)
        if isinstance(body, dict) and body.get('status') not in (
                None, 'Success'):
            raise exception.ProvisionerError('KumoScale %s: %s: %s' % (
                command, body.get('status'), body.get('description')))
        if status >= 400:
            raise exception.ProvisionerError('KumoScale %s: HTTP %s'
                                             % (command, status))
        return body


def _quote(value):
    return parse.quote(str(value), safe='')
