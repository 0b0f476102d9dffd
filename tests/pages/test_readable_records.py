"""Records read in Chinese: the audit log's changes as "字段：旧 → 新" (no JSON,
no English keys or values), the sidecar's runs with Chinese job names (also for
a job the catalog does not know yet) and figures in words; logins, logouts and
"run now" requests are in the audit log."""

from sqlmodel import select

from base.timeutil import utcnow
from core.auth import sessions
from core.bindings import review
from core.directory import accounts as account_service
from core.scheduling import jobs
from db.models import Account, AuditEntry, JobRun, Role
from i18n import t
from tests.support.apptest import run_app
from tests.support.factories import bind


def column(at, index: int, name: str) -> list:
    return list(at.dataframe[index].value[name])


def test_the_audit_log_reads_field_old_to_new_in_chinese(session, org, make_user, as_user):
    admin = make_user(Role.hq_admin)
    binding = bind(session, "000101", "acc1")
    session.commit()
    account = session.exec(select(Account).where(Account.userid == "acc1")).one()
    account_service.update_account(session=session, actor=admin.actor, account_id=account.id,
                                   expected_version=account.version, capacity_limit=4000, status="disabled")
    session.commit()
    session.refresh(binding)
    review.replace_account(session=session, actor=admin.actor, binding_id=binding.id,
                           expected_version=binding.version, userid="acc2")
    session.commit()
    as_user(admin)
    at = run_app("audit.py")
    assert not at.exception, at.exception
    changes = column(at, 0, t("audit.change"))
    text = "\n".join(changes)
    assert f"{t('audit.field.status')}：{t('account_status.active')} → {t('account_status.disabled')}" in text
    assert f"{t('audit.field.capacity_limit')}：5000 → 4000" in text
    assert f"{t('audit.field.end_reason')}：— → {t('end_reason.replaced')}" in text
    assert f"{t('audit.field.shown')}：{t('stores.entry.hidden')}" in text
    for raw in ('"status"', "active", "end_reason", "replaced", "{", "true", "false"):
        assert raw not in text, raw


def test_job_runs_read_in_chinese_whatever_the_job(session, org, make_user, as_user):
    now = utcnow()
    session.add_all([
        JobRun(job_id="capacity.sync_counts", holder="h", started_at=now, finished_at=now, outcome="ok",
               figures_json='{"synced": 3, "failed": 1, "reasons": {"wecom.reason.not_in_follow_list": 1}}'),
        JobRun(job_id="funnel.rollup", holder="h", started_at=now, finished_at=now, outcome="ok",
               figures_json='{"facts": 12, "skipped": "jobs.skipped_no_wecom"}'),
        JobRun(job_id="inventory.count", holder="h", started_at=now, finished_at=now, outcome="ok",
               figures_json='{"sheep": 3}'),
    ])
    session.commit()
    as_user(make_user(Role.hq_operator))
    at = run_app("capacity.py")
    assert not at.exception, at.exception
    latest = at.dataframe[-2].value
    names = list(latest[t("capacity.jobs.col.job")])
    assert t("job.capacity.sync_counts") in names and t("job.funnel.rollup") in names
    assert t("jobs.unnamed", job_id="inventory.count") in names
    figures = "\n".join(latest[t("capacity.jobs.col.figures")])
    assert t("wecom.reason.not_in_follow_list") in figures and "wecom.reason" not in figures
    assert f"{t('job_figure.synced')} 3" in figures and t("jobs.skipped_no_wecom") in figures
    assert "{" not in figures and '"' not in figures


def test_logins_logouts_and_run_now_are_audited(session, org, make_user):
    operator = make_user(Role.hq_operator, username="op")
    result = sessions.log_in(session=session, username="op", password=operator.password, ip="198.51.100.7")
    session.commit()
    sessions.log_out(session=session, token=result.token)
    jobs.request_run(session=session, actor=operator.actor, job_id="capacity.sync_counts")
    session.commit()
    entries = session.exec(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [(e.action, e.actor_name) for e in entries] == [
        ("auth.login", "op"), ("auth.logout", "op"), ("job.request", "op")]
    assert entries[2].entity_id == "capacity.sync_counts"
