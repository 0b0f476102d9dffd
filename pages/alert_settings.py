import pandas as pd
import streamlit as st

from base.problems import Problem
from base.timeutil import format_display
from console.ui.actions import showing_errors
from console.ui.context import db, page_actor
from console.ui.text import md
from core import settings_store
from core.alerts import channels as channel_service
from core.auth.permissions import Capability
from core.capacity import alert_settings
from core.capacity.template import PLACEHOLDERS, default_template
from core.capacity.usage import visible_branches
from core.codes import links
from db.models import ChannelKind, Role
from i18n import error_text, t

actor = page_actor(Capability.manage_alerts)
st.title(t("alert_settings.title"))

with db() as session:
    values = settings_store.effective_all(session=session)
    channel_rows = channel_service.list_channels(session=session, actor=actor)
    branches = visible_branches(session=session, actor=actor)

CONFLICT_KEY = "alert_settings_conflict"
# Each setting by its label on this page, to say what someone else changed.
LABELS = {"capacity.warn_pct": "alert_settings.warn_pct", "capacity.critical_pct": "alert_settings.critical_pct",
          "capacity.full_pct": "alert_settings.full_pct", "capacity.hysteresis_pct": "alert_settings.hysteresis_pct",
          "capacity.repeat_hours": "alert_settings.repeat_hours", "capacity.switch_pct": "alert_settings.switch_pct",
          "wecom.calls_per_minute": "alert_settings.calls_per_minute",
          "capacity.default_limit": "alert_settings.default_limit",
          alert_settings.WATCH_BAND: "alert_settings.watch_band_pct",
          alert_settings.WATCH_GROWTH: "alert_settings.watch_growth_pct"}


def opened_with(form: str, keys: list[str], widgets: list[str]) -> dict:
    """The values the form's widgets were filled with, which its save is checked against;
    read again whenever the widgets are made afresh (first visit, after a conflict)."""
    seen_key = f"alert_settings_seen_{form}"
    if seen_key not in st.session_state or any(widget not in st.session_state for widget in widgets):
        st.session_state[seen_key] = {key: values[key] for key in keys}
    conflict = st.session_state.get(CONFLICT_KEY)
    if conflict and conflict[0] == form:
        st.error(st.session_state.pop(CONFLICT_KEY)[1])
    return st.session_state[seen_key]


def save_form(form: str, widgets: list[str], save, saved: dict) -> None:
    """Run the form's save; when someone else saved these settings meanwhile, say what
    they changed and fill the form with the values now in force."""
    with showing_errors():
        try:
            with db() as session:
                save(session)
        except alert_settings.SettingsChanged as exc:
            changes = "；".join(t("alert_settings.change", setting=t(LABELS.get(key, key)), before=before,
                                 after=after) for key, (before, after) in exc.changed.items())
            st.session_state[CONFLICT_KEY] = (form, t("alert_settings.conflict", changes=changes))
            for key in [f"alert_settings_seen_{form}", *widgets]:
                st.session_state.pop(key, None)
            st.rerun()
        st.session_state[f"alert_settings_seen_{form}"] = saved
        st.success(t("common.saved"))


chain_wide = actor.branch_scope is None
if not chain_wide:
    # Thresholds, template and defaults apply to every branch: an HQ role without a branch scope sets them.
    st.info(t("alert_settings.chain_wide_readonly"))
    st.caption(t("alert_settings.current_values", warn=values["capacity.warn_pct"],
                 critical=values["capacity.critical_pct"], full=values["capacity.full_pct"],
                 hysteresis=values["capacity.hysteresis_pct"], repeat=values["capacity.repeat_hours"]))
    st.caption(t("alert_settings.watch_current", band=values[alert_settings.WATCH_BAND],
                 growth=values[alert_settings.WATCH_GROWTH]))
else:
    st.subheader(t("alert_settings.thresholds"))
    threshold_keys = ["capacity.warn_pct", "capacity.critical_pct", "capacity.full_pct", "capacity.hysteresis_pct",
                      "capacity.repeat_hours"]
    threshold_widgets = ["th_warn", "th_critical", "th_full", "th_hysteresis", "th_repeat"]
    seen = opened_with("thresholds", threshold_keys, threshold_widgets)
    with st.form("alert_thresholds"):
        cols = st.columns(5)
        warn = cols[0].number_input(t("alert_settings.warn_pct"), 1, 100, int(values["capacity.warn_pct"]),
                                    key="th_warn")
        critical = cols[1].number_input(t("alert_settings.critical_pct"), 1, 100,
                                        int(values["capacity.critical_pct"]), key="th_critical")
        full = cols[2].number_input(t("alert_settings.full_pct"), 1, 200, int(values["capacity.full_pct"]),
                                    key="th_full")
        hysteresis = cols[3].number_input(t("alert_settings.hysteresis_pct"), 1, 50,
                                          int(values["capacity.hysteresis_pct"]), key="th_hysteresis",
                                          help=t("alert_settings.hysteresis_help"))
        repeat = cols[4].number_input(t("alert_settings.repeat_hours"), 1, 720, int(values["capacity.repeat_hours"]),
                                      key="th_repeat")
        if st.form_submit_button(t("alert_settings.save_thresholds")):
            save_form("thresholds", threshold_widgets, lambda session: alert_settings.save_thresholds(
                session=session, actor=actor, warn=warn, critical=critical, full=full, hysteresis=hysteresis,
                repeat_hours=repeat, seen=seen), dict(zip(threshold_keys, (warn, critical, full, hysteresis, repeat),
                                                          strict=True)))

    st.subheader(t("alert_settings.switch"))
    seen = opened_with("switch", ["capacity.switch_pct"], ["switch_pct"])
    with st.form("alert_switch"):
        switch_pct = st.number_input(t("alert_settings.switch_pct"), 0, 100, int(values["capacity.switch_pct"]),
                                     key="switch_pct", help=t("alert_settings.switch_help"))
        if st.form_submit_button(t("alert_settings.save_switch")):
            save_form("switch", ["switch_pct"], lambda session: alert_settings.save_checked(
                session=session, actor=actor, values={"capacity.switch_pct": switch_pct}, seen=seen),
                {"capacity.switch_pct": switch_pct})

    st.subheader(t("alert_settings.watch"))
    st.caption(t("alert_settings.watch_caption"))
    watch_widgets = ["watch_band", "watch_growth"]
    seen = opened_with("watch", [alert_settings.WATCH_BAND, alert_settings.WATCH_GROWTH], watch_widgets)
    with st.form("alert_watch"):
        cols = st.columns(2)
        # No bounds on the widgets: the save says in words what the range is.
        band = cols[0].number_input(t("alert_settings.watch_band_pct"), value=int(values[alert_settings.WATCH_BAND]),
                                    step=1, key="watch_band", help=t("alert_settings.watch_band_help"))
        growth = cols[1].number_input(t("alert_settings.watch_growth_pct"),
                                      value=int(values[alert_settings.WATCH_GROWTH]), step=1, key="watch_growth",
                                      help=t("alert_settings.watch_growth_help"))
        if st.form_submit_button(t("alert_settings.save_watch")):
            save_form("watch", watch_widgets, lambda session: alert_settings.save_watch(
                session=session, actor=actor, band=band, growth=growth, seen=seen),
                {alert_settings.WATCH_BAND: band, alert_settings.WATCH_GROWTH: growth})

    st.subheader(t("alert_settings.sync"))
    seen = opened_with("sync", ["wecom.calls_per_minute", "capacity.default_limit"],
                       ["sync_calls", "sync_default_limit"])
    with st.form("alert_sync"):
        cols = st.columns(2)
        calls = cols[0].number_input(t("alert_settings.calls_per_minute"), 1, 10_000,
                                     int(values["wecom.calls_per_minute"]),
                                     help=t("alert_settings.calls_per_minute_help"), key="sync_calls")
        default_limit = cols[1].number_input(t("alert_settings.default_limit"), 1, 1_000_000,
                                             int(values["capacity.default_limit"]), key="sync_default_limit")
        if st.form_submit_button(t("alert_settings.save_sync")):
            wanted = {"wecom.calls_per_minute": calls, "capacity.default_limit": default_limit}
            save_form("sync", ["sync_calls", "sync_default_limit"], lambda session: alert_settings.save_checked(
                session=session, actor=actor, values=wanted, seen=seen), wanted)

    st.subheader(t("alert_settings.template"))
    st.caption(t("alert_settings.template_help", placeholders="、".join("{" + p + "}" for p in PLACEHOLDERS)))
    with st.form("alert_template"):
        text = st.text_area(t("alert_settings.template"), values["capacity.alert_template"], height=100,
                            key="template_text", label_visibility="collapsed")
        left, right = st.columns(2)
        save = left.form_submit_button(t("alert_settings.save_template"))
        reset = right.form_submit_button(t("alert_settings.reset_template"))
    if save or reset:
        with showing_errors():
            with db() as session:
                saved = alert_settings.save_template(session=session, actor=actor,
                                                     text=default_template() if reset else text)
            st.success(t("common.saved"))
            st.caption(t("alert_settings.template_preview"))
            st.code(alert_settings.preview(saved), language=None)

    st.subheader(t("links.settings.title"))
    st.caption(t("links.settings.caption"))
    with db() as session:
        quota = links.quota_view(session=session, actor=actor)
    if quota.balance is not None and quota.read_at is not None:
        st.caption(t("links.settings.quota", balance=quota.balance, total=quota.total,
                     at=format_display(quota.read_at)))
    else:
        st.caption(t("links.settings.quota_unknown"))
    if quota.problem:
        st.warning(md("links.settings.quota_problem", problem=error_text(Problem.decode(quota.problem))))
    with st.form("links_settings"):
        links_on = st.toggle(t("links.settings.enabled"), bool(values["codes.links_enabled"]), key="links_enabled")
        balance_low = st.number_input(t("links.settings.balance_low"), 0, 1_000_000,
                                      int(values["codes.links_balance_low"]), key="links_balance_low")
        skip_verify = st.toggle(t("links.settings.skip_verify"), bool(values["codes.skip_verify"]),
                                key="links_skip_verify")
        if st.form_submit_button(t("links.settings.save")):
            with showing_errors():
                wanted = {"codes.links_enabled": links_on, "codes.links_balance_low": balance_low,
                          "codes.skip_verify": skip_verify}
                with db() as session:
                    # Only what changed, so the audit log names what the operator changed.
                    for key, value in wanted.items():
                        if value != values[key]:
                            settings_store.save(session=session, actor=actor, key=key, value=value)
                st.success(t("links.settings.saved"))

    st.subheader(t("codes.settings.title"))
    with st.form("codes_settings"):
        needs_code = st.toggle(t("codes.settings.entry_needs_code"), bool(values["codes.entry_needs_code"]),
                               help=t("codes.settings.entry_needs_code_help"), key="codes_entry_needs_code")
        if st.form_submit_button(t("codes.settings.save")):
            with showing_errors():
                with db() as session:
                    settings_store.save(session=session, actor=actor, key="codes.entry_needs_code",
                                        value=needs_code)
                st.success(t("common.saved"))


def recipients_text(channel) -> str:
    """Who an app-message channel messages; nothing for a robot."""
    if channel.kind != ChannelKind.wecom_app:
        return ""
    parts = [", ".join((channel.recipients or "").split("|"))] if channel.recipients else []
    if channel.to_branch_managers:
        parts.append(t("alert_settings.ch.branch_managers"))
    return " + ".join(parts)


st.subheader(t("alert_settings.channels"))
if channel_rows:
    st.dataframe(pd.DataFrame([{
        t("alert_settings.ch.id"): row.channel.id, t("alert_settings.ch.name"): row.channel.name,
        t("alert_settings.ch.kind"): t(f"channel_kind.{row.channel.kind}"),
        t("alert_settings.ch.branch"): row.branch_name or t("alert_settings.ch.all_branches"),
        t("alert_settings.ch.enabled"): t("common.yes") if row.channel.enabled else t("common.no"),
        t("alert_settings.ch.signed"): t("common.yes") if row.channel.secret else t("common.no"),
        t("alert_settings.ch.recipients"): recipients_text(row.channel),
        t("alert_settings.ch.invalid_users"): t("alert_settings.ch.invalid_list", members=", ".join(row.invalid_users))
        if row.invalid_users else "",
        t("alert_settings.ch.pending"): row.pending,
        t("alert_settings.ch.last_success"): format_display(row.channel.last_success_at),
        t("alert_settings.ch.last_error"): (
            f"{format_display(row.channel.last_error_at)} {error_text(Problem.decode(row.channel.last_error))}"
            if row.channel.last_error else ""),
    } for row in channel_rows]), hide_index=True, width="stretch")
    by_id = {row.channel.id: row.channel for row in channel_rows}
    chosen = st.selectbox(t("alert_settings.channel_select"), list(by_id), key="channel_chosen",
                          format_func=lambda c: f"#{c} {by_id[c].name}")
    left, right = st.columns(2)
    if left.button(t("alert_settings.send_test"), key="channel_test"):
        with showing_errors():
            with db() as session:
                invalid = channel_service.send_test(session=session, actor=actor, channel_id=chosen)
            if invalid:
                st.warning(md("alert_settings.test_partly", members=", ".join(invalid)))
            else:
                st.success(t("alert_settings.test_ok"))
    if right.button(t("alert_settings.toggle"), key="channel_toggle"):
        with showing_errors():
            with db() as session:
                channel_service.set_enabled(session=session, actor=actor, channel_id=chosen,
                                            enabled=not by_id[chosen].enabled, version=by_id[chosen].version)
            st.success(t("alert_settings.toggled"))
            st.rerun()
else:
    st.info(t("alert_settings.channels_none"))

st.subheader(t("alert_settings.add_channel"))
branch_codes = {code: f"{code} {name}" for _id, code, name in branches}
with st.form("channel_add", clear_on_submit=False):
    # A generic webhook may point anywhere public: HQ's administrator alone adds one (checked again in core).
    kinds = ["wecom", "dingtalk", "feishu"] + (["webhook"] if actor.role == Role.hq_admin else [])
    kind = st.selectbox(t("alert_settings.kind"), kinds, key="channel_kind",
                        format_func=lambda k: t(f"channel_kind.{k}"))
    name = st.text_input(t("alert_settings.name"), key="channel_name")
    url = st.text_input(t("alert_settings.url"), key="channel_url")
    secret = st.text_input(t("alert_settings.secret"), type="password", key="channel_secret")
    # A scoped operator adds channels for the own branch only; HQ may also add chain-wide ones.
    branch_choices = ([""] if chain_wide else []) + list(branch_codes)
    branch_code = st.selectbox(t("alert_settings.branch"), branch_choices, key="channel_branch",
                               format_func=lambda c: branch_codes.get(c, t("alert_settings.ch.all_branches")))
    if st.form_submit_button(t("alert_settings.add")):
        with showing_errors():
            with db() as session:
                channel = channel_service.add_channel(session=session, actor=actor, kind=kind, url=url, secret=secret,
                                                      branch_code=branch_code, name=name)
            st.success(md("alert_settings.added", name=channel.name))
            st.rerun()

st.subheader(t("alert_settings.add_app_channel"))
st.caption(t("alert_settings.app_help"))
with st.form("app_channel_add", clear_on_submit=False):
    app_name = st.text_input(t("alert_settings.name"), key="app_channel_name")
    app_members = st.text_input(t("alert_settings.app_members"), key="app_channel_members",
                                placeholder=t("alert_settings.app_members_placeholder"))
    app_managers = st.checkbox(t("alert_settings.app_to_branch_managers"), key="app_channel_managers", value=True)
    app_branch = st.selectbox(t("alert_settings.branch"), branch_choices, key="app_channel_branch",
                              format_func=lambda c: branch_codes.get(c, t("alert_settings.ch.all_branches")))
    if st.form_submit_button(t("alert_settings.add")):
        with showing_errors():
            with db() as session:
                channel = channel_service.add_channel(session=session, actor=actor, kind=ChannelKind.wecom_app,
                                                      members=app_members, to_branch_managers=app_managers,
                                                      branch_code=app_branch, name=app_name)
            st.success(md("alert_settings.added", name=channel.name))
            st.rerun()
