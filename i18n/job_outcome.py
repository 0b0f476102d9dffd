"""The outcomes of a job run."""

ZH_CN = {
    "job_outcome.ok": "成功",
    "job_outcome.failed": "失败",
    "job_outcome.running": "运行中",
    "job_outcome.interrupted": "已中断",
}
