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

import json

import requests
import testtools

from os_brick_nvme_agent import exception
from os_brick_nvme_agent.provisioners import kumoscale_client


class FakeResponse(object):

    def __init__(self, status, body):
        self.status_code = status
        self.content = body if isinstance(body, bytes) else \
            json.dumps(body).encode()

    def json(self):
        return json.loads(self.content)


class FakeSession(object):
    """Answers from a script; records what was asked."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def client(*answers, urls=('https://a:8090', 'https://b:8090')):
    session = FakeSession(*answers)
    return kumoscale_client.KumoScaleClient(
        list(urls), 's3cret', verify='/ca.pem', timeout=(1, 2),
        session=session), session


class TestClient(testtools.TestCase):

    def test_request_shape(self):
        c, session = client(FakeResponse(200, {'status': 'Success'}))
        c.add_replica('vol/1', {'sameRackAllowed': False})
        method, url, kwargs = session.calls[0]
        self.assertEqual('POST', method)
        self.assertEqual('https://a:8090/replica/vol%2F1', url)
        self.assertEqual('Bearer s3cret', kwargs['headers']['Authorization'])
        self.assertEqual('/ca.pem', kwargs['verify'])
        self.assertEqual((1, 2), kwargs['timeout'])
        self.assertEqual({'sameRackAllowed': False},
                         json.loads(kwargs['data']))

    def test_forward_log_request_shape(self):
        c, session = client(FakeResponse(200, {'status': 'Success'}))
        record = {'loggingType': 'EVENT', 'level': 'INFO', 'host': 'h',
                  'appName': 'nvmeof_agent', 'message': 'm',
                  'parametersList': ['volume=v']}
        c.forward_log(record)
        method, url, kwargs = session.calls[0]
        self.assertEqual(('POST', 'https://a:8090/forward_log'),
                         (method, url))
        self.assertEqual(record, json.loads(kwargs['data']))
        self.assertEqual('Bearer s3cret', kwargs['headers']['Authorization'])
        self.assertEqual('/ca.pem', kwargs['verify'])

    def test_targets_query(self):
        c, session = client(FakeResponse(200, []), FakeResponse(200, []))
        c.get_targets('v1')
        c.get_targets('v1', host_uuid='h1')
        self.assertEqual('https://a:8090/targets?volId=v1',
                         session.calls[0][1])
        self.assertEqual('https://a:8090/targets?hostId=h1&volId=v1',
                         session.calls[1][1])

    def test_fails_over_then_gives_up(self):
        c, session = client(requests.ConnectionError('refused'),
                            FakeResponse(200, {'version': '1'}))
        self.assertEqual({'version': '1'}, c.get_info())
        self.assertEqual('https://b:8090/info', session.calls[1][1])
        c, _ = client(requests.Timeout('slow'), requests.Timeout('slow'))
        err = self.assertRaises(exception.ProvisionerUnavailable, c.get_info)
        self.assertNotIn('s3cret', str(err))

    def test_answers_translated(self):
        cases = [
            (FakeResponse(503, b''), exception.ProvisionerUnavailable),
            (FakeResponse(401, {'status': 'Status 401'}),
             exception.ProvisionerUnavailable),
            (FakeResponse(404, {'status': 'NotFound'}),
             exception.UnknownVolume),
            (FakeResponse(200, {'status': 'Failure', 'description': 'no'}),
             exception.ProvisionerError),
            (FakeResponse(409, b''), exception.ProvisionerError),
            (FakeResponse(200, b'<html>'), exception.MalformedReply),
        ]
        for response, error in cases:
            c, _ = client(response)
            self.assertRaises(error, c.get_info)

    def test_records(self):
        c, _ = client(FakeResponse(200, {'uuid': 'v'}),
                      FakeResponse(200, b''), FakeResponse(200, [1, 2]))
        self.assertEqual([{'uuid': 'v'}], c.get_volumes())
        self.assertEqual([], c.get_volumes())
        self.assertRaises(exception.MalformedReply, c.get_volumes)

    def test_needs_a_url(self):
        self.assertRaises(exception.ProvisionerError,
                          kumoscale_client.KumoScaleClient, [], 't')
