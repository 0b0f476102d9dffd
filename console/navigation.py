"""The pages, and which capability each needs. `st.navigation` is built from
this per role on every rerun: a page the role may not use is never registered."""

from dataclasses import dataclass

from core.auth.permissions import Actor, Capability


@dataclass(frozen=True)
class PageSpec:
    path: str          # relative to console/app.py
    url_path: str
    title_key: str
    icon: str
    capability: Capability
    group: str = "nav.group.main"


PAGES: list[PageSpec] = [
    PageSpec("../pages/overview.py", "overview", "overview.title", ":material/dashboard:", Capability.view_directory),
    PageSpec("../pages/stores.py", "stores", "stores.title", ":material/storefront:", Capability.view_directory),
    PageSpec("../pages/bindings.py", "bindings", "bindings.title", ":material/fact_check:", Capability.view_directory),
    PageSpec("../pages/accounts.py", "accounts", "accounts.title", ":material/badge:",
             Capability.view_directory),
    PageSpec("../pages/binding_upload.py", "binding-upload", "binding_import.upload_title", ":material/upload_file:",
             Capability.upload_bindings),
    PageSpec("../pages/import_history.py", "import-history", "binding_import.history_title",
             ":material/manage_history:", Capability.upload_bindings),
    PageSpec("../pages/funnel.py", "funnel", "funnel.title", ":material/filter_alt:", Capability.view_metrics),
    PageSpec("../pages/capacity.py", "capacity", "capacity.title", ":material/speed:", Capability.view_directory),
    PageSpec("../pages/alerts.py", "alerts", "alerts.title", ":material/notifications:", Capability.manage_alerts),
    PageSpec("../pages/alert_settings.py", "alert-settings", "alert_settings.title", ":material/tune:",
             Capability.manage_alerts, "nav.group.admin"),
    PageSpec("../pages/users.py", "users", "users.title", ":material/group:", Capability.manage_users,
             "nav.group.admin"),
    PageSpec("../pages/api_keys.py", "api-keys", "api_keys.title", ":material/key:", Capability.manage_users,
             "nav.group.admin"),
    PageSpec("../pages/audit.py", "audit", "audit.title", ":material/history:", Capability.view_audit,
             "nav.group.admin"),
]


def pages_for(actor: Actor) -> list[PageSpec]:
    return [spec for spec in PAGES if actor.can(spec.capability)]
