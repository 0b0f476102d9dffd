"""WeCom API errors in words an operator can act on."""

ZH_CN = {
    "wecom.reason.bad_secret": "企业微信应用 Secret 不正确（40001），请核对 WECOM_SECRET。",
    "wecom.reason.bad_corpid": "企业 ID 不正确（40013），请核对 WECOM_CORP_ID。",
    "wecom.reason.bad_userid": "企微账号 userid 不合法（40003）。",
    "wecom.reason.api_not_allowed": "该应用无权调用客户联系接口（48002）：请在企业微信管理后台「客户联系」中把本应用设为可调用应用。",
    "wecom.reason.no_privilege": "该成员不在应用的可见范围内（60011），请在应用可见范围中加入此成员。",
    "wecom.reason.ip_not_trusted": "服务器 IP 不在应用的企业可信 IP 列表中（60020），请在应用设置中添加本服务器的出口 IP。",
    "wecom.reason.userid_not_found": "企业微信中不存在此成员（60111），可能已离职或 userid 有误。",
    "wecom.reason.not_customer_contact": "该成员未开通客户联系功能（84061），请在「客户联系」权限中为其开通。",
    "wecom.reason.rate_limited": "企业微信接口调用超过频率限制（45009），已多次退避重试仍未成功。",
    "wecom.reason.concurrency_limited": "企业微信接口并发超限（45033），已多次退避重试仍未成功。",
    "wecom.reason.busy": "企业微信系统繁忙（-1），重试 3 次仍失败。",
    "wecom.reason.network": "无法连接企业微信接口（网络错误）：{errmsg}",
    "wecom.reason.not_in_follow_list": "该成员不在可使用客户联系的成员列表中（未开通客户联系或不在应用可见范围）。",
    "wecom.reason.no_customer_contact_permission": "该成员没有客户联系权限（84074），请在「客户联系」权限中为其开通后再生成门店活码。",
    "wecom.reason.invalid_parameter": "企业微信认为参数不合法（40058）：{errmsg}",
    "wecom.reason.contact_way_not_found": "企业微信中已找不到这个联系我二维码（41044），可能已在别处删除，将重新生成。",
    "wecom.reason.contact_way_quota": "企业通过接口生成的联系我二维码已达 50 万上限（41045），请删除不再使用的二维码。",
    "wecom.reason.contact_way_too_many_members": "联系我二维码的使用成员超过上限 100 人（41041）。",
    "wecom.reason.other": "企业微信返回错误 {errcode}：{errmsg}",
}
