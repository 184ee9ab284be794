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

"""Reading kernel-provided files that may vanish under our feet."""


def read(path):
    """The file's text, or None when it cannot be read.

    sysfs and procfs entries disappear when a device or controller goes
    away between listing a directory and opening a file in it; the
    parsers treat a missing value as unknown rather than as an error.
    """
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None
