"""Refusals of Streamlit's file-upload route (console.web.upload_guard)."""

ZH_CN = {
    "upload.refused": "请先以有上传权限的账号登录，再上传文件。",
    "upload.too_large": "文件超过 {limit_mb} MB，无法上传。",
}
