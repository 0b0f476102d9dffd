"""The kinds of alert channel (group robots, webhooks and WeCom app messages)."""

ZH_CN = {
    "channel_kind.wecom": "企业微信群机器人",
    "channel_kind.dingtalk": "钉钉群机器人",
    "channel_kind.feishu": "飞书群机器人",
    "channel_kind.webhook": "通用 JSON Webhook",
    "channel_kind.wecom_app": "企业微信应用消息",
}
