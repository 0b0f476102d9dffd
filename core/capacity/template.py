"""The alert message template (editable in the console; the seed's sentence by
default) and its placeholders, checked when saved."""

from string import Formatter

from base.errors import InvalidInput
from i18n import t

PLACEHOLDERS = ("企微账号名称", "企微账号", "百分比", "级别", "分公司", "门店", "客户数", "上限")
MAX_LENGTH = 600


def default_template() -> str:
    return t("capacity.template.default")


def validate_template(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise InvalidInput("capacity.template.empty")
    if len(text) > MAX_LENGTH:
        raise InvalidInput("capacity.template.too_long", maximum=MAX_LENGTH)
    try:
        fields = [(name, spec, conversion) for _literal, name, spec, conversion in Formatter().parse(text)
                  if name is not None]
    except ValueError:
        raise InvalidInput("capacity.template.braces") from None
    for name, spec, conversion in fields:
        if name not in PLACEHOLDERS:
            raise InvalidInput("capacity.template.unknown_placeholder", name=name or "{}",
                               allowed="、".join("{" + p + "}" for p in PLACEHOLDERS))
        if spec or conversion:
            raise InvalidInput("capacity.template.format_spec", name=name)
    if not any(name in ("企微账号", "企微账号名称") for name, _s, _c in fields):
        raise InvalidInput("capacity.template.needs_account")
    return text


def render(template: str, values: dict[str, object]) -> str:
    """The message for one alert. A template that no longer validates (edited in
    the database by hand) falls back to the default rather than losing the alert."""
    try:
        return validate_template(template).format(**{name: values.get(name, "") for name in PLACEHOLDERS})
    except InvalidInput:
        return default_template().format(**{name: values.get(name, "") for name in PLACEHOLDERS})
