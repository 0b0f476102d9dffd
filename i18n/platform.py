"""The names of the App platforms events come from."""

ZH_CN = {
    "platform.app": "App",
    "platform.miniprogram": "小程序",
    "platform.h5": "H5",
}
