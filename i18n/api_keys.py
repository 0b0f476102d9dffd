"""API keys for the App backend."""

ZH_CN = {
    "api_keys.title": "API 密钥",
    "api_keys.name": "名称（用途）",
    "api_keys.create": "生成密钥",
    "api_keys.created": "新密钥如下，仅显示这一次，请立即妥善保存：",
    "api_keys.revoke": "吊销",
    "api_keys.pick_placeholder": "选择要吊销的密钥",
    "api_keys.revoked": "已吊销",
    "api_keys.active": "有效",
    "api_keys.bad_name": "请填写 1–100 字的名称。",
    "api_keys.col.id": "编号",
    "api_keys.col.prefix": "前缀",
    "api_keys.col.created": "创建时间",
    "api_keys.col.last_used": "最近使用",
    "api_keys.col.status": "状态",
    "api_keys.confirm_revoke": "吊销后使用该密钥的客户端将立即无法访问，确定吊销？",
}
