"""Domain errors carry a message-catalog key and its parameters; the UI and the
CLI turn them into words (core never holds user-facing text)."""

from typing import Any


class DomainError(Exception):
    def __init__(self, key: str, /, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params

    def __str__(self) -> str:
        if not self.params:
            return self.key
        return f"{self.key} {self.params}"


class PermissionDenied(DomainError):
    def __init__(self, key: str = "error.permission_denied", /, **params: Any) -> None:
        super().__init__(key, **params)


class NotFound(DomainError):
    def __init__(self, key: str = "error.not_found", /, **params: Any) -> None:
        super().__init__(key, **params)


class ConcurrentEdit(DomainError):
    """Someone else changed the row since it was read; nothing was written."""

    def __init__(self, key: str = "error.concurrent_edit", /, **params: Any) -> None:
        super().__init__(key, **params)


class InvalidInput(DomainError):
    pass
