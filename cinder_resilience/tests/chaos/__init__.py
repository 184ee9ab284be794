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

"""Lock safety on real multi-node clusters, checked like Jepsen.

* ``clusters``: 3-node etcd, 3-node ZooKeeper, redis primary + replica +
  3 sentinels, on loopback or inside network namespaces the run creates;
* ``netns``: a namespace pair joined by a veth, to partition one member;
* ``workload``: a worker process taking the lock and writing to a
  ``FencedFile`` with its token, recording everything;
* ``history``: the recorder and the checker;
* ``runner``: starts a cluster and the workers, injects the faults, checks
  the history (``python -m cinder_resilience.tests.chaos.runner``).
"""
