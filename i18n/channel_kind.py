"""The kinds of alert channel (group robots and webhooks)."""

ZH_CN = {
    "channel_kind.wecom": "企业微信群机器人",
    "channel_kind.dingtalk": "钉钉群机器人",
    "channel_kind.feishu": "飞书群机器人",
    "channel_kind.webhook": "通用 JSON Webhook",
}
