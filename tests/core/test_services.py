"""Users, audit, settings, stores and the sidecar lease, as services."""

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from base.errors import ConcurrentEdit, InvalidInput, PermissionDenied
from base.timeutil import utcnow
from core import audit, settings_store
from core.auth import sessions, users
from core.auth.permissions import Capability, require
from core.directory import stores
from core.scheduling import lease
from db.models import LoginSession, Role, User
from i18n import t
from tests.support.apptest import run_app


def test_only_hq_admin_manages_users(org, make_user, session):
    for role in (Role.hq_operator, Role.branch_manager, Role.viewer):
        actor = make_user(role, org["north"] if role == Role.branch_manager else None).actor
        with pytest.raises(PermissionDenied):
            users.create_user(session=session, actor=actor,
                              data=users.UserCreate(username="x", role="viewer", password="long-enough"))


def test_two_admins_editing_the_same_user_do_not_overwrite_each_other(org, make_user, engine):
    admin = make_user(Role.hq_admin).actor
    target = make_user(Role.viewer, username="target").user
    update = users.UserUpdate(role="hq_operator", display_name="甲", branch_code=None, expires_at=None,
                              disabled=False)
    with Session(engine) as first, Session(engine) as second:
        users.update_user(session=first, actor=admin, user_id=target.id, expected_version=target.version,
                          data=update)
        first.commit()
        with pytest.raises(ConcurrentEdit):
            users.update_user(session=second, actor=admin, user_id=target.id, expected_version=target.version,
                              data=users.UserUpdate(role="viewer", display_name="乙", branch_code=None,
                                                    expires_at=None, disabled=True))
    with Session(engine) as check:
        stored = check.get(User, target.id)
        assert (stored.role, stored.display_name, stored.disabled) == ("hq_operator", "甲", False)


def test_disabling_a_user_ends_their_sessions_and_is_audited(org, make_user, login_token, session):
    admin = make_user(Role.hq_admin).actor
    target = make_user(Role.hq_operator)
    token = login_token(target)
    users.update_user(session=session, actor=admin, user_id=target.user.id, expected_version=target.user.version,
                      data=users.UserUpdate(role="hq_operator", display_name="", branch_code=None, expires_at=None,
                                            disabled=True))
    session.commit()
    assert sessions.resolve(session=session, token=token) is None
    entries, total = audit.search(session=session, actor=admin, filters=audit.AuditFilter(action="user.update"))
    assert total == 1 and '"disabled": true' in entries[0].after_json and '"disabled": false' in entries[0].before_json


def test_reset_password_revokes_sessions(org, make_user, login_token, session):
    admin = make_user(Role.hq_admin).actor
    target = make_user(Role.viewer)
    token = login_token(target)
    with pytest.raises(InvalidInput):
        users.reset_password(session=session, actor=admin, user_id=target.user.id,
                             expected_version=target.user.version, password="short")
    users.reset_password(session=session, actor=admin, user_id=target.user.id,
                         expected_version=target.user.version, password="a-new-long-password")
    session.commit()
    assert sessions.resolve(session=session, token=token) is None
    assert session.exec(select(LoginSession)).one().revoked_at is not None


def test_branch_manager_scope_is_enforced_in_services(org, make_user, session):
    manager = make_user(Role.branch_manager, org["north"]).actor
    with pytest.raises(PermissionDenied):
        require(manager, Capability.upload_bindings, branch_id=org["south"].id)
    require(manager, Capability.upload_bindings, branch_id=org["north"].id)
    with pytest.raises(PermissionDenied):
        stores.search_stores(session=session, actor=manager, filters=stores.StoreFilter(branch_id=org["south"].id))
    rows, total = stores.search_stores(session=session, actor=manager, filters=stores.StoreFilter())
    assert total == 4 and {r.branch_code for r in rows} == {"BJ01"}
    assert [b.code for b in stores.branch_summaries(session=session, actor=manager)] == ["BJ01"]


def test_audit_log_scope_and_filters(org, make_user, session):
    admin = make_user(Role.hq_admin).actor
    manager = make_user(Role.branch_manager, org["north"]).actor
    audit.record(session=session, actor=admin, action="store.update", entity_type="store", entity_id="000101",
                 branch_id=org["north"].id)
    audit.record(session=session, actor=admin, action="store.update", entity_type="store", entity_id="000201",
                 branch_id=org["south"].id)
    audit.record(session=session, actor=admin, action="setting.update", entity_type="setting", entity_id="k")
    session.commit()
    _, total = audit.search(session=session, actor=admin, filters=audit.AuditFilter())
    assert total == 3
    entries, total = audit.search(session=session, actor=manager, filters=audit.AuditFilter())
    assert total == 1 and entries[0].entity_id == "000101"
    _, total = audit.search(session=session, actor=admin, filters=audit.AuditFilter(
        action="store.update", since=utcnow() - timedelta(minutes=1)))
    assert total == 2
    assert audit.filter_choices(session=session, actor=admin) == (["setting.update", "store.update"],
                                                                   ["setting", "store"])
    assert audit.filter_choices(session=session, actor=manager) == (["store.update"], ["store"])
    viewer = make_user(Role.viewer).actor
    with pytest.raises(PermissionDenied):
        audit.search(session=session, actor=viewer, filters=audit.AuditFilter())
    with pytest.raises(PermissionDenied):
        audit.filter_choices(session=session, actor=viewer)


def test_audit_page_speaks_chinese_and_exports_every_filtered_entry(org, make_user, as_user, session, monkeypatch):
    from streamlit.delta_generator import DeltaGenerator

    from i18n import t
    from tests.support.apptest import run_app

    admin = make_user(Role.hq_admin)
    for n in range(60):
        audit.record(session=session, actor=admin.actor, action="store.update", entity_type="store",
                     entity_id=f"{n:06d}", branch_id=org["north"].id)
    session.commit()
    as_user(admin)
    at = run_app("audit.py")
    assert not at.exception
    shown = at.dataframe[0].value
    # The 60 updates and the administrator's own login, newest first.
    assert len(shown) == 50 and set(shown[t("audit.action")]) == {t("audit.action.auth.login"),
                                                                  t("audit.action.store.update")}
    assert set(shown[t("audit.entity_type")]) == {t("audit.entity.user"), t("audit.entity.store")}
    # The files are made when the button is clicked: call what the CSV button would hand out.
    exported: list[bytes] = []
    real_button = DeltaGenerator.download_button

    def download_button(self, label, data, *args, **kwargs):
        if kwargs.get("file_name", "").endswith(".csv"):
            exported.append(data() if callable(data) else data)
        return real_button(self, label, data, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", download_button)
    at.toggle(key="audit_export").set_value(True).run()
    assert not at.exception
    assert len(exported) == 1
    assert len(exported[0].decode("utf-8-sig").splitlines()) == 1 + 61  # header, every entry


def test_settings_override_env_defaults_and_reject_bad_values(org, make_user, session, monkeypatch):
    operator = make_user(Role.hq_operator).actor
    assert settings_store.effective(session=session, key="capacity.warn_pct") == 70
    settings_store.save(session=session, actor=operator, key="capacity.warn_pct", value="75")
    session.commit()
    assert settings_store.effective(session=session, key="capacity.warn_pct") == 75
    for bad in ("abc", 0, 101):
        with pytest.raises(InvalidInput):
            settings_store.save(session=session, actor=operator, key="capacity.warn_pct", value=bad)
    with pytest.raises(PermissionDenied):
        settings_store.save(session=session, actor=make_user(Role.viewer).actor, key="capacity.warn_pct", value=80)


def test_only_one_sidecar_holds_the_lease_and_the_other_takes_over(engine):
    now = utcnow()
    with Session(engine) as session:
        assert lease.try_acquire(session=session, holder="a", now=now)
        assert not lease.try_acquire(session=session, holder="b", now=now + timedelta(seconds=5))
        assert lease.try_acquire(session=session, holder="a", now=now + timedelta(seconds=10))
        # "a" stops renewing; after the lease expires "b" takes over.
        assert lease.try_acquire(session=session, holder="b", now=now + lease.LEASE_TTL + timedelta(seconds=11))
        assert not lease.try_acquire(session=session, holder="a", now=now + lease.LEASE_TTL + timedelta(seconds=12))


def test_users_page_creates_a_user(org, make_user, as_user, session):
    admin = make_user(Role.hq_admin, username="root")
    as_user(admin)
    at = run_app("users.py")
    assert not at.exception
    form = at.text_input
    form[1].input("newbie")            # username (index 0 is the search box)
    form[2].input("新同事")
    form[3].input("long-enough-pw")     # password
    at.button[0].click()                # the create form's submit
    at.run()
    assert not at.exception
    assert at.success[0].value == t("users.created", username="newbie")
    assert session.exec(select(User).where(User.username == "newbie")).one().display_name == "新同事"


def test_users_page_shows_a_clear_error_for_a_taken_username(org, make_user, as_user):
    admin = make_user(Role.hq_admin, username="root")
    as_user(admin)
    at = run_app("users.py")
    at.text_input[1].input("ROOT")
    at.text_input[3].input("long-enough-pw")
    at.button[0].click()
    at.run()
    assert at.error[0].value == t("users.username_taken", username="ROOT")
