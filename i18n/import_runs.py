"""Import runs: imports committed in chunks (导入中), and the refusal while one applies."""

ZH_CN = {
    "import_runs.in_progress": "导入进行中：{user} 于 {since} 开始导入的“{file}”尚未完成（{done}/{total} 步），"
                               "完成前不能开始另一次门店表或绑定表导入，本次未写入任何内容。请稍后再试。",
    "import_runs.running": "导入中：{user} 于 {since} 开始导入的“{file}”正在分批写入（{done}/{total} 步），"
                           "完成前不能提交绑定表。",
    "import_runs.bindings_busy": "导入进行中：{user} 于 {since} 开始导入的绑定表“{file}”正在分批写入（{done}/{total} 步），"
                                 "完成前不能修改绑定、备用账号或账号状态，本次未写入任何内容。请稍后再试。",
}
