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

"""A small client of cinder's block storage REST API v3 (noauth).

cinder-api runs with ``auth_strategy = noauth``: the token ``admin:admin``
names user and project, and the request context is an admin one. Only what
the cluster tests and benchmarks call is here; every call raises
``APIError`` on an unexpected status.
"""

import time

import requests

MICROVERSION = '3.7'   # clusters API; later versions change nothing we use
TRANSIENT = ('creating', 'deleting', 'downloading', 'uploading',
             'extending', 'reserved')


class APIError(Exception):
    pass


class CinderClient(object):
    """Calls ``http://127.0.0.1:PORT/v3/...`` as the admin project.

    With noauth, cinder's URLs carry no project id: the token names it.
    """

    def __init__(self, port, project='admin'):
        self.base = 'http://127.0.0.1:%d/v3' % port
        self.session = requests.Session()
        self.session.headers.update({
            'X-Auth-Token': '%s:%s' % (project, project),
            'OpenStack-API-Version': 'volume %s' % MICROVERSION,
            'Accept': 'application/json'})

    def _call(self, method, path, expect, **kwargs):
        kwargs.setdefault('timeout', 60)
        resp = self.session.request(method, self.base + path, **kwargs)
        if resp.status_code not in expect:
            raise APIError('%s %s: %d %s' % (method, path, resp.status_code,
                                             resp.text[:500]))
        return resp.json() if resp.content else None

    def ready(self):
        try:
            self._call('GET', '/volumes', (200,), timeout=5)
            return True
        except (requests.RequestException, APIError):
            return False

    def create_type(self, name, backend):
        body = {'volume_type': {'name': name, 'extra_specs': {
            'volume_backend_name': backend}}}
        return self._call('POST', '/types', (200,), json=body)[
            'volume_type']['id']

    def create_volume(self, volume_type, source=None, metadata=None,
                      name=None, size=1):
        body = {'volume': {'size': size, 'volume_type': volume_type,
                           'metadata': {k: str(v) for k, v in
                                        (metadata or {}).items()},
                           'name': name}}
        if source:
            body['volume']['source_volid'] = source
        return self._call('POST', '/volumes', (202,), json=body)[
            'volume']['id']

    def delete_volume(self, volume_id):
        self._call('DELETE', '/volumes/%s' % volume_id, (202,))

    def volume(self, volume_id):
        """The volume, or None once it is gone."""
        try:
            return self._call('GET', '/volumes/%s' % volume_id, (200,))[
                'volume']
        except APIError as exc:
            if ': 404 ' in str(exc):
                return None
            raise

    def volumes(self, ids=None):
        """Details of every volume (or of ``ids``), keyed by id."""
        found = self._call('GET', '/volumes/detail?all_tenants=1', (200,))[
            'volumes']
        by_id = {v['id']: v for v in found}
        if ids is None:
            return by_id
        return {i: by_id.get(i) for i in ids}

    def services(self, binary='cinder-volume'):
        return self._call('GET', '/os-services?binary=%s' % binary,
                          (200,))['services']

    def clusters(self):
        return self._call('GET', '/clusters/detail', (200,))['clusters']

    def pools(self):
        """Pool names the scheduler knows (it got their capabilities)."""
        return [p['name'] for p in self._call(
            'GET', '/scheduler-stats/get_pools', (200,))['pools']]

    def wait_settled(self, ids, timeout, interval=1.0):
        """Wait until no volume of ``ids`` is in a transient state.

        :returns: {id: volume or None (deleted)}, as last seen
        """
        deadline = time.monotonic() + timeout
        while True:
            seen = self.volumes(ids)
            busy = [v for v in seen.values()
                    if v is not None and v['status'] in TRANSIENT]
            if not busy or time.monotonic() >= deadline:
                return seen
            time.sleep(interval)


def host_of(volume):
    """The member ``host@backend`` that holds a volume (admin field)."""
    host = volume.get('os-vol-host-attr:host') or ''
    return host.partition('#')[0]
