"""Reading an uploaded sheet (any import)."""

ZH_CN = {
    "sheet.row.required": "缺少必填列“{column}”的值",
    "sheet.row.formula": "“{column}”是公式，请粘贴为数值/文本后再上传",
    "sheet.row.numeric_id": "“{column}”被 Excel 存成了数字（{value}），开头的 0 可能已丢失；请把该列设为文本格式后重新填写",
    "sheet.row.duplicate_store": "同一门店在第 {other_row} 行已出现",
    "sheet.row.error_at": "第 {row} 行：{reason}",
    "sheet.empty_file": "文件是空的。",
    "sheet.too_large": "文件超过 {limit_mb} MB，请拆分后上传。",
    "sheet.too_many_rows": "数据超过 {limit} 行，请拆分后上传。",
    "sheet.encrypted_or_xls": "文件带密码保护，或是旧版 .xls 格式；请取消密码并另存为 .xlsx 或 CSV 后上传。",
    "sheet.not_a_workbook": "文件不是有效的 Excel 工作簿（.xlsx）。",
    "sheet.unsupported_type": "不支持的文件类型：{filename}。请上传 .xlsx 或 .csv 文件。",
    "sheet.binary_file": "文件内容不是表格（可能是图片或其他二进制文件改了扩展名）。",
    "sheet.unknown_encoding": "无法识别文件编码，请另存为 UTF-8 或 GBK 编码的 CSV，或 .xlsx。",
    "sheet.zip_bomb": "文件解压后过大，已拒绝处理。",
    "sheet.part_too_large": "工作簿中的“{part}”解压后超过 {limit_mb} MB，已拒绝处理；请把数据复制到新工作簿，另存为 .xlsx 或 CSV 后上传。",
    "sheet.cell_too_long": "第 {row} 行起有一个单元格超过 {limit} 个字符，文件无法按表格读取；常见原因是某个引号（\"）没有配对，请检查该行后重新上传。",
    "sheet.no_rows": "文件中没有数据行。",
    "sheet.missing_columns": "缺少必需的列：{columns}。请使用系统提供的模板。",
}
