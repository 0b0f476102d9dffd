"""Settings from the environment (the fixed names in DESIGN.md), in one place.

Values an operator may change in the console are overridden through
`core.settings_store`; this module only holds what the process starts with.
"""

from functools import cached_property, lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=True)

    DATABASE_URL: str = "sqlite:///data/console.db"
    WECOM_API_BASE: str = "https://qyapi.weixin.qq.com"
    WECOM_CORP_ID: str = ""
    WECOM_SECRET: str = ""
    WECOM_AGENT_ID: str = ""
    WECOM_CALLBACK_TOKEN: str = ""
    WECOM_CALLBACK_AES_KEY: str = ""
    CONSOLE_SECRET_KEY: str = ""
    CONSOLE_TIMEZONE: str = "Asia/Shanghai"
    CAPACITY_DEFAULT_LIMIT: int = Field(default=5000, ge=1, le=1_000_000)
    CAPACITY_WARN_PCT: int = Field(default=70, ge=1, le=100)
    CAPACITY_CRITICAL_PCT: int = Field(default=90, ge=1, le=100)
    # The usage at which a store moves to its standby account; 0 turns automatic switching off.
    CAPACITY_SWITCH_PCT: int = Field(default=95, ge=0, le=100)
    # How often the sidecar syncs customer counts (the demo syncs every minute).
    CAPACITY_SYNC_INTERVAL_SECONDS: int = Field(default=600, ge=10, le=86_400)
    # The console's public URL: WeCom login redirects and the links in app messages.
    CONSOLE_BASE_URL: str = "http://localhost:8501"
    WECOM_LOGIN_BASE: str = "https://login.work.weixin.qq.com"
    WECOM_OAUTH_BASE: str = "https://open.weixin.qq.com"
    # Comma-separated hosts robot and webhook URLs may use although they are not the platform's
    # official host or resolve to an internal address (the demo simulator's, the tests').
    ALERT_ALLOWED_HOSTS: str = ""

    @cached_property
    def database_url(self) -> str:
        """DATABASE_URL with a relative SQLite path anchored at the project root,
        so the console, the CLI and the sidecar share one file whatever their cwd."""
        url = self.DATABASE_URL
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith("sqlite:////") and ":memory:" not in url:
            return prefix + str(PROJECT_ROOT / url[len(prefix):])
        if url.startswith("postgresql://"):
            return "postgresql+psycopg://" + url[len("postgresql://"):]
        return url

    @cached_property
    def secret_key(self) -> str:
        """CONSOLE_SECRET_KEY, or a key generated once and kept beside the SQLite
        database so that a demo install signs cookies without configuration."""
        if self.CONSOLE_SECRET_KEY:
            return self.CONSOLE_SECRET_KEY
        key_file = PROJECT_ROOT / "data" / ".secret_key"
        if not key_file.exists():
            import os
            import secrets

            key_file.parent.mkdir(parents=True, exist_ok=True)
            # Written private from the start and linked into place at once: two
            # processes starting together both end up with the first one's key.
            draft = key_file.with_name(f".secret_key.{secrets.token_hex(8)}")
            descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            try:
                os.link(draft, key_file)
            except FileExistsError:
                pass
            finally:
                draft.unlink()
        return key_file.read_text().strip()

    @property
    def wecom_login_enabled(self) -> bool:
        """QR login and app messages need the self-built app's corp id and agent id."""
        return bool(self.WECOM_CORP_ID and self.WECOM_AGENT_ID)

    @property
    def uses_wecom_simulator(self) -> bool:
        return not self.WECOM_API_BASE.startswith("https://qyapi.weixin.qq.com")


@lru_cache
def get_settings() -> Settings:
    return Settings()
