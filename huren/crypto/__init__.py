"""The ground floor's cryptography, one room each:

* ``sm2`` (keys, encryption, SM3withSM2 signatures), ``sm3``, ``sm4`` (SM4-ECB, PKCS#7), their one
  error ``errors.GmError``, and the DER / PEM bits they share (``asn1``);
* ``envelope`` (the SOAP ``strKey`` unwrapper) and ``keyfiles`` (the platform SM2 key on disk);
* ``b64`` (standard Base64) and ``b64url`` (unpadded URL-safe Base64);
* ``aead`` (field encryption at rest) and, in one place, the signed-claims codec for tokens, sessions
  and links (``tokens``)."""
