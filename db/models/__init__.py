"""Every table, so that `SQLModel.metadata` is complete for Alembic.

One module per domain concept; import new modules here.
"""

from db.models.org import Branch, Store, StoreStatus
from db.models.accounts import Account, AccountStatus
from db.models.bindings import Binding, BindingEndReason
from db.models.users import ApiKey, LoginAttempt, LoginSession, Role, User
from db.models.audit import AuditEntry
from db.models.settings import SettingOverride
from db.models.scheduling import JobRequest, JobRun, SchedulerLease

__all__ = [
    "Account",
    "AccountStatus",
    "ApiKey",
    "AuditEntry",
    "Binding",
    "BindingEndReason",
    "Branch",
    "JobRequest",
    "JobRun",
    "LoginAttempt",
    "LoginSession",
    "Role",
    "SchedulerLease",
    "SettingOverride",
    "Store",
    "StoreStatus",
    "User",
]
