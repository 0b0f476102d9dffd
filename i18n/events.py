"""Tracking events: intake problems and the event file import.

`EN` holds the English texts of the problems the App backend reads in the
`POST /api/v1/events` answer."""

ZH_CN = {
    "events.not_object": "不是一个 JSON 对象",
    "events.bad_event_id": "event_id 必须是 1–64 个字符的文本",
    "events.unknown_name": "未知的事件名“{value}”",
    "events.bad_time": "occurred_at 不是 ISO 8601 时间",
    "events.no_offset": "occurred_at 缺少时区偏移（如 +08:00）",
    "events.future_time": "occurred_at 是未来的时间",
    "events.too_old": "occurred_at 早于两年前",
    "events.bad_user_key": "user_key 必须是 1–128 个字符的文本",
    "events.store_id_not_text": "crm_store_id 必须是文本（数字会丢失开头的 0）",
    "events.unknown_store": "CRM门店ID“{value}”不存在",
    "events.unknown_platform": "未知的平台“{value}”（应为 app、miniprogram 或 h5）",
    "events.bad_order_id": "order_id 必须是不超过 64 个字符的文本",
    "events.store_out_of_scope": "CRM门店ID“{value}”不属于您负责的分公司",
    "events.file_bad_json": "JSON 数组在第 {line} 行附近格式不正确，导入在此停止（之前的批次已保存，修正后可重新导入）。",
    "events.batch_too_large": "每批最多 {limit} 个事件。",
    "events.file_too_large": "文件超过 {limit_mb} MB，请拆分后导入。",
    "events.file_type": "不支持的文件类型：{filename}。请上传 .csv、.jsonl 或 .json 文件。",
    "events.file_columns": "CSV 缺少必需的列：{columns}。",
    "events.file_encoding": "无法识别文件编码，请另存为 UTF-8 或 GBK 编码。",
    "events.file_empty": "文件中没有事件。",
    "events.file_bad_csv": "CSV 在第 {line} 行附近无法读取（常见原因：某个引号没有配对、一行过长或含有二进制内容），导入在此停止（之前的批次已保存，修正后可重新导入）。",
    "events.file_line_too_long": "这一行超过 {limit:,} 个字符，不是埋点事件，已跳过",
}

EN = {
    "events.not_object": "event is not a JSON object",
    "events.bad_event_id": "event_id must be text of 1-64 characters",
    "events.unknown_name": "unknown event name {value!r}",
    "events.bad_time": "occurred_at is not an ISO 8601 time",
    "events.no_offset": "occurred_at has no UTC offset",
    "events.future_time": "occurred_at is in the future",
    "events.too_old": "occurred_at is older than two years",
    "events.bad_user_key": "user_key must be text of 1-128 characters",
    "events.store_id_not_text": "crm_store_id must be a string (leading zeros matter)",
    "events.unknown_store": "unknown crm_store_id {value!r}",
    "events.unknown_platform": "unknown platform {value!r} (app, miniprogram or h5)",
    "events.bad_order_id": "order_id must be text of at most 64 characters",
    "events.store_out_of_scope": "crm_store_id {value!r} is outside the importer's branch",
}
