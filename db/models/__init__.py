"""Every table, so that `SQLModel.metadata` is complete for Alembic.

One module per domain concept; import new modules here.
"""

from db.models.accounts import Account, AccountStatus
from db.models.audit import AuditEntry
from db.models.bindings import Binding, BindingEndReason
from db.models.branch_stats import BranchBindingStats
from db.models.capacity import (
                              AccountGrowth,
                              AlertChannel,
                              AlertDelivery,
                              AlertLevel,
                              CapacityAlert,
                              ChannelInvalidUser,
                              ChannelKind,
                              CountSnapshot,
                              DeliveryStatus,
                              MemberMessageSend,
)
from db.models.codes import ContactCode
from db.models.events import (
                              ContactEvent,
                              FunnelActivity,
                              FunnelPending,
                              FunnelRollup,
                              FunnelState,
                              FunnelStoreBranch,
                              TrackingEvent,
)
from db.models.import_runs import ImportRun, ImportRunState, ImportRunStep
from db.models.imports import BindingImport, BindingImportRow, ImportRowOutcome
from db.models.links import AcquisitionQuota, LinkStatistic
from db.models.members import UnassignedCustomer
from db.models.org import Branch, Store, StoreStatus
from db.models.scheduling import JobRequest, JobRun, SchedulerLease
from db.models.settings import SettingOverride
from db.models.standby import AccountSwitch, StandbyAccount, SwitchReason
from db.models.users import ApiKey, LoginAttempt, LoginSession, Role, User, WeComLoginState

__all__ = [
    "ContactCode",
    "ContactEvent",
    "FunnelActivity",
    "FunnelPending",
    "FunnelRollup",
    "FunnelState",
    "FunnelStoreBranch",
    "TrackingEvent",
    "AccountGrowth",
    "AlertChannel",
    "AlertDelivery",
    "AlertLevel",
    "CapacityAlert",
    "ChannelInvalidUser",
    "ChannelKind",
    "CountSnapshot",
    "DeliveryStatus",
    "MemberMessageSend",
    "Account",
    "AccountStatus",
    "ApiKey",
    "AuditEntry",
    "Binding",
    "BindingEndReason",
    "BindingImport",
    "BindingImportRow",
    "Branch",
    "BranchBindingStats",
    "JobRequest",
    "AcquisitionQuota",
    "LinkStatistic",
    "JobRun",
    "ImportRowOutcome",
    "ImportRun",
    "ImportRunState",
    "ImportRunStep",
    "LoginAttempt",
    "LoginSession",
    "Role",
    "SchedulerLease",
    "SettingOverride",
    "StandbyAccount",
    "AccountSwitch",
    "SwitchReason",
    "Store",
    "StoreStatus",
    "UnassignedCustomer",
    "User",
    "WeComLoginState",
]
