"""WeCom callback security (doc 91144): the SHA-1 message signature and the
AES-256-CBC envelope, checked against the official test vector in tests.

Plaintext = 16 random bytes + 4-byte big-endian length + message + receive id
(the corp id); PKCS#7 padding to a multiple of 32; IV = the key's first 16 bytes.
"""

import base64
import binascii
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from base.errors import DomainError

BLOCK = 32


class CallbackCryptoError(DomainError):
    """The callback is not genuine or cannot be decrypted; nothing in it is used."""


@dataclass(frozen=True)
class CallbackCrypto:
    token: str
    encoding_aes_key: str
    receive_id: str

    @property
    def key(self) -> bytes:
        if len(self.encoding_aes_key) != 43:
            raise CallbackCryptoError("callback.bad_aes_key")
        try:
            key = base64.b64decode(self.encoding_aes_key + "=", validate=True)
        except binascii.Error as exc:
            raise CallbackCryptoError("callback.bad_aes_key") from exc
        if len(key) != 32:
            raise CallbackCryptoError("callback.bad_aes_key")
        return key

    def signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        return hashlib.sha1("".join(sorted([self.token, timestamp, nonce, encrypted])).encode()).hexdigest()

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        expected = self.signature(timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected, (msg_signature or "").lower()):
            raise CallbackCryptoError("callback.bad_signature")

    def decrypt(self, encrypted: str) -> bytes:
        """The message inside `encrypted`, after checking padding, length and receive id."""
        key = self.key
        try:
            data = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CallbackCryptoError("callback.bad_ciphertext") from exc
        if not data or len(data) % 16:
            raise CallbackCryptoError("callback.bad_ciphertext")
        decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise CallbackCryptoError("callback.bad_ciphertext")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise CallbackCryptoError("callback.bad_ciphertext")
        (length,) = struct.unpack(">I", plain[16:20])
        message, receive_id = plain[20:20 + length], plain[20 + length:]
        if len(message) != length:
            raise CallbackCryptoError("callback.bad_ciphertext")
        if receive_id.decode("utf-8", "replace") != self.receive_id:
            raise CallbackCryptoError("callback.wrong_receiver")
        return message

    def encrypt(self, message: bytes, random_prefix: bytes | None = None) -> str:
        """The envelope WeCom would send (used by the simulator and tests)."""
        key = self.key
        body = (random_prefix or os.urandom(16)) + struct.pack(">I", len(message)) + message + \
            self.receive_id.encode()
        pad = BLOCK - len(body) % BLOCK
        body += bytes([pad]) * pad
        encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
        return base64.b64encode(encryptor.update(body) + encryptor.finalize()).decode()
