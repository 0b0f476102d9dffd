"""The WeCom callback (contact events) as the console shows it."""

ZH_CN = {
    "callback.bad_aes_key": "企业微信回调 EncodingAESKey 配置不正确（应为 43 个字符）。",
    "callback.bad_signature": "企业微信回调签名校验失败。",
    "callback.bad_ciphertext": "企业微信回调内容无法解密。",
    "callback.wrong_receiver": "企业微信回调的企业 ID 与配置不符。",
    "callback.bad_xml": "企业微信回调内容格式不正确。",
}
