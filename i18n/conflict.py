"""Writes refused because another operation got there first."""

ZH_CN = {
    "conflict.database_busy": "其他操作正在写入数据，等待超时；本次未做任何更改，请稍后重试。",
    "conflict.taken_meanwhile": "同一数据刚被其他操作修改；本次未做任何更改，请刷新后重试。",
}
