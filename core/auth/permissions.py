"""Roles and what they may do (DESIGN.md, roles table), checked by every service.

A page or route that hides a menu item has not checked anything: services call
`require` with the actor, and `branch_scope` limits what a scoped actor reads.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from base.errors import PermissionDenied
from db.models import Role


class Capability(StrEnum):
    view_directory = "view_directory"        # stores, bindings, accounts
    upload_bindings = "upload_bindings"
    review_entries = "review_entries"        # show/hide entries, rebind, unbind
    manage_accounts = "manage_accounts"      # capacity limits and status
    manage_alerts = "manage_alerts"          # alert channels and thresholds
    view_metrics = "view_metrics"            # metrics and exports
    manage_users = "manage_users"            # users, roles, API keys
    manage_stores = "manage_stores"          # the HQ store list from CRM
    view_audit = "view_audit"
    import_events = "import_events"          # tracking events from files and the App backend


_ALL = set(Role)
_HQ = {Role.hq_admin, Role.hq_operator}

GRANTS: dict[Capability, set[Role]] = {
    Capability.view_directory: _ALL,
    Capability.upload_bindings: _HQ | {Role.branch_manager},
    Capability.review_entries: _HQ,
    Capability.manage_accounts: _HQ,
    Capability.manage_alerts: _HQ,
    Capability.view_metrics: _ALL,
    Capability.manage_users: {Role.hq_admin},
    Capability.manage_stores: {Role.hq_admin},
    Capability.view_audit: _HQ | {Role.branch_manager},
    Capability.import_events: _HQ,
}


@dataclass(frozen=True)
class Actor:
    """Who is acting: a console user, or a machine (CLI, scheduler, API)."""

    name: str
    role: Role
    user_id: int | None = None
    branch_id: int | None = None
    expires_at: datetime | None = None

    @property
    def branch_scope(self) -> int | None:
        """The only branch this actor sees, or None for all branches.

        Branch managers are always scoped; an agency operator or viewer may be
        given a branch too. HQ admins see everything.
        """
        if self.role == Role.hq_admin:
            return None
        return self.branch_id

    def can(self, capability: Capability) -> bool:
        return self.role in GRANTS[capability]


SYSTEM = Actor(name="system", role=Role.hq_admin)


def system_actor(name: str) -> Actor:
    """A machine actor with full rights (the CLI on the server, the sidecar)."""
    return Actor(name=name, role=Role.hq_admin)


def require(actor: Actor, capability: Capability, *, branch_id: int | None = None) -> None:
    """Raise PermissionDenied unless the actor has the capability, for that
    branch when one is named."""
    if not actor.can(capability):
        raise PermissionDenied(capability=capability.value)
    scope = actor.branch_scope
    if branch_id is not None and scope is not None and branch_id != scope:
        raise PermissionDenied("error.branch_out_of_scope")

