"""Who may call what: admins manage registries, collectors' devices scan, auditors read."""

from __future__ import annotations

from wastetrail_contracts.enums import Role
from wastetrail_runtime.auth import require

ADMIN = require()  # admin always passes `require`; nobody else does here
COLLECTOR = require(Role.COLLECTOR)
# Devices cache the registries (tags, generators) to scan offline; auditors read everything.
READER = require(Role.COLLECTOR, Role.AUDITOR)
AUDITOR = require(Role.AUDITOR)
