"""The sidecar's jobs as the console shows and requests them, and why a run stopped."""

ZH_CN = {
    "jobs.unknown_job": "未知的任务：{job_id}",
    "jobs.unnamed": "后台任务（{job_id}）",
    "jobs.skipped_no_wecom": "未配置企业微信（WECOM_CORP_ID / WECOM_SECRET）",
    # The exception that stopped a run, as the sidecar's log has it (for whoever reads the log next).
    "jobs.exception": "{error}",
    "jobs.interrupted_reason": "运行它的调度进程已停止（被终止或失去租约），由接手的调度进程标记为中断；下次运行会补上。",
}
