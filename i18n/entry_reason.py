"""The entry rule's reasons (core.bindings.entries.EntryReason)."""

ZH_CN = {
    "entry_reason.no_binding": "未绑定账号",
    "entry_reason.hidden": "已隐藏",
    "entry_reason.store_closed": "门店已关闭",
    "entry_reason.account_disabled": "账号已停用",
    "entry_reason.account_full": "账号已满",
    "entry_reason.no_code": "门店活码未生成",
    # Console wording only: the API answers account_disabled for a bound standby account.
    "entry_reason.account_standby": "账号未启用（备用）",
}
