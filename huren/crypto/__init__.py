"""The ground floor's cryptography: SM2 / SM3 / SM4 (``gm``), unpadded URL-safe Base64 (``b64url``)
and, in one place, the signed-claims codec for tokens, sessions and links."""
