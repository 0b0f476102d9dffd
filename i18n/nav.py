"""The navigation bar."""

ZH_CN = {
    "nav.signed_in_as": "{name}（{role}）",
    "nav.branch_scope": "数据范围：{branch}",
    "nav.expires": "账号有效期至 {date}",
    "nav.group.main": "运营",
    "nav.group.admin": "管理",
    "nav.forbidden_title": "无权访问",
    "nav.forbidden": "您的角色（{role}）不能打开「{page}」页面。如需使用，请联系总部管理员。",
    "nav.not_found_title": "页面不存在",
    "nav.not_found": "您打开的地址不是本后台的页面，可能链接有误或页面已调整。",
    "nav.not_found_home": "返回首页",
}
