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

"""Sphinx configuration for the openstack-resilience documentation."""

# Everything imported here comes from doc/requirements.txt plus the package
# itself (its oslo.config.opts entry points): see that file.
extensions = [
    'oslo_config.sphinxext',
    'oslo_config.sphinxconfiggen',
]

config_generator_config_file = [
    ('../../tools/config/cinder-resilience.conf',
     '_static/cinder-resilience'),
    ('../../tools/config/ironic-locking.conf',
     '_static/ironic-locking'),
    ('../../tools/config/os-brick-nvme-agent.conf',
     '_static/os-brick-nvme-agent'),
]

project = 'openstack-resilience'
copyright = '2026, openstack-resilience developers'
master_doc = 'index'
source_suffix = {'.rst': 'restructuredtext'}
exclude_patterns = []
pygments_style = 'sphinx'
html_theme = 'alabaster'
html_static_path = ['_static']
