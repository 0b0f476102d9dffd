ZH_CN = {
    "accounts.bad_userid": "企微账号“{userid}”格式不正确：应为 1–64 位字母、数字或 _ - @ .",
    "accounts.userid_taken": "企微账号 {userid} 已存在。",
    "bindings.store_already_bound": "门店 {store} 已有当前绑定。",
    "bindings.account_in_use": "企微账号 {account} 已绑定门店 {store}。",
    "bindings.changed_meanwhile": "门店 {store} 的绑定已被他人修改，请刷新后重试。",
}
