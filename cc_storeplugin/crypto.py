"""Fernet encryption for secrets at rest, and the column types that apply it."""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import Flask, current_app
from sqlalchemy.types import Text, TypeDecorator


class SecretBox:
    """Flask extension holding the Fernet keys (``ENCRYPTION_KEY``; comma-separated to rotate)."""

    def init_app(self, app: Flask) -> None:
        raw = app.config.get("ENCRYPTION_KEY")
        box = None
        if raw:
            try:
                box = MultiFernet([Fernet(k.strip()) for k in raw.split(",") if k.strip()])
            except ValueError as exc:
                raise ValueError(
                    "ENCRYPTION_KEY must be a urlsafe base64 Fernet key (32 bytes)"
                ) from exc
        app.extensions["cc_secretbox"] = box

    @staticmethod
    def _box() -> MultiFernet:
        box = current_app.extensions.get("cc_secretbox")
        if box is None:
            raise RuntimeError("ENCRYPTION_KEY is not configured; cannot read or write secrets")
        return box

    def encrypt(self, plaintext: str) -> str:
        return self._box().encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._box().decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise RuntimeError("a stored secret cannot be decrypted with ENCRYPTION_KEY") from exc


secretbox = SecretBox()


class EncryptedText(TypeDecorator):
    """A text column stored as a Fernet token; reads give back the plaintext."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else secretbox.encrypt(value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else secretbox.decrypt(value)


class EncryptedJSON(TypeDecorator):
    """A JSON document (e.g. a credential bundle) stored encrypted as one Fernet token."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        return secretbox.encrypt(json.dumps(value, separators=(",", ":"), sort_keys=True))

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(secretbox.decrypt(value))
