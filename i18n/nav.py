"""The navigation bar."""

ZH_CN = {
    "nav.signed_in_as": "{name}（{role}）",
    "nav.branch_scope": "数据范围：{branch}",
    "nav.expires": "账号有效期至 {date}",
    "nav.group.main": "运营",
    "nav.group.admin": "管理",
}
