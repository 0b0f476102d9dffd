"""The names of the sidecar's jobs, by job id."""

ZH_CN = {
    "job.directory.sync_members": "同步成员状态",
    "job.directory.unassigned": "同步离职成员待分配客户",
    "job.capacity.sync_counts": "同步客户数",
    "job.codes.sync": "同步门店活码",
    "job.codes.reconcile": "核对门店活码",
    "job.codes.links": "同步获客链接",
    "job.capacity.switch": "容量满自动换号",
    "job.capacity.evaluate": "评估容量",
    "job.capacity.growth": "计算客户增长",
    "job.alerts.deliver": "发送告警",
    "job.capacity.purge_snapshots": "清理过期快照",
    "job.housekeeping": "数据清理",
    "job.funnel.rollup": "汇总导流数据",
    "job.import_runs.resume": "续完中断的导入",
}
