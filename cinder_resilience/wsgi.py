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

"""WSGI entry point of cinder's API with cinder's coordinator ours.

Point uWSGI or mod_wsgi at ``cinder_resilience.wsgi:application`` instead
of ``cinder.wsgi.api:application``: the plugin is enabled before cinder's
``initialize_application`` starts ``cinder.coordination.COORDINATOR``.
"""

from cinder_resilience import coordination_service

coordination_service.enable()

# Imported only now: importing cinder's module initializes the application.
from cinder.wsgi import api  # noqa: E402

application = api.application
