"""Signing out."""

ZH_CN = {
    "logout.link": "退出登录",
}
