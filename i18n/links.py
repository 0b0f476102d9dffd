"""获客链接 (customer acquisition links): the quota alert, settings, the funnel section."""

ZH_CN = {
    "links.alert.balance_low": "【获客链接额度不足】获客链接剩余额度 {balance}（共 {total}），已低于提醒线 {level}。"
                               "额度用完后客户无法再通过获客链接添加门店企微，请尽快在企业微信管理后台购买额度。",
    "links.incident.quota_low": "获客链接剩余额度 {balance}（共 {total}），低于提醒线 {level}。",
    "links.settings.title": "获客链接",
    "links.settings.caption": "开启后，后台任务为每家已有门店活码的门店创建一个获客链接（成员与活码相同，换号时随之更新），"
                              "客户端接口在入口可见时返回 contact_link；通过链接添加客户会消耗企业的获客额度。",
    "links.settings.enabled": "为门店创建获客链接",
    "links.settings.balance_low": "获客额度提醒线（剩余额度低于此值时告警一次）",
    "links.settings.skip_verify": "客户添加门店活码时无需成员确认",
    "links.settings.quota": "获客额度：剩余 {balance} / 共 {total}（{at} 读取）",
    "links.settings.quota_unknown": "尚未读取获客额度（开启获客链接后，后台任务每小时读取一次）。",
    "links.settings.quota_problem": "上次读取获客额度失败：{problem}",
    "links.settings.save": "保存获客链接设置",
    "links.settings.saved": "已保存获客链接设置。",
    "links.funnel.title": "获客链接效果（企业微信统计）",
    "links.funnel.caption": "来自企业微信的获客链接统计，按天拉取（截至昨天），与上方本系统的埋点和加微数据相互独立。",
    "links.funnel.col.branch_code": "分公司编码",
    "links.funnel.col.branch_name": "分公司",
    "links.funnel.col.crm_store_id": "CRM门店ID",
    "links.funnel.col.store_name": "门店名称",
    "links.funnel.col.clicks": "点击链接客户数",
    "links.funnel.col.new_customers": "通过链接新增客户数",
}
