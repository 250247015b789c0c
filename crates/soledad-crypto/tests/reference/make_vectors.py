#!/usr/bin/env python3
"""Independent reference implementation of the soledad-crypto formats (docs/crypto.md),
written from the specification with the Python `cryptography` package, that writes the
frozen known-answer vectors in ../testdata/.

The Rust tests (tests/crypto/vectors.rs) must reproduce and accept every `ok` vector
and reject every defect vector with the stated error. Vectors are frozen: regenerate
only for a new format version, in new files, never to make a failing test pass.

Usage: python3 make_vectors.py   (writes into ../testdata, refuses to overwrite)
"""

import base64
import hashlib
import hmac
import json
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata")
SEG = 65536


def hkdf(ikm, salt, info, length):
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def hmac256(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


def padme(n):
    if n < 2:
        return n
    e = n.bit_length() - 1
    s = e.bit_length()
    mask = (1 << (e - s)) - 1
    return (n + mask) & ~mask


def pattern(n):
    return bytes((i * 31 + 7) % 251 for i in range(n))


def b64(b):
    return base64.b64encode(b).decode()


def b64url(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def pretty(obj):
    return (json.dumps(obj, indent=2) + "\n").encode()


# ---- keys -------------------------------------------------------------------------
HKDF_SALT = b"soledad/v1/storage-secret"


def subkey(secret, label):
    return hkdf(secret, HKDF_SALT, label, 32)


# ---- envelope -----------------------------------------------------------------------
def env_aad(doc_id, rev):
    d, r = doc_id.encode(), rev.encode()
    return b"SD\x01" + struct.pack(">I", len(d)) + d + struct.pack(">I", len(r)) + r


def seal_envelope(doc_key, doc_id, rev, content, nonce):
    key = hmac256(doc_key, doc_id.encode())
    body = struct.pack(">I", len(content)) + content
    body += b"\x00" * (padme(len(body)) - len(body))
    return b"SD\x01" + nonce + AESGCM(key).encrypt(nonce, body, env_aad(doc_id, rev))


def hidden_id(id_key, doc_id):
    return b64url(hmac256(id_key, doc_id.encode()))


def seal_server_doc(doc_key, id_key, doc_id, rev, content, box_nonce, env_nonce,
                    box_doc_id=None):
    """Server payload v1 (read only since v2): "SW" 0x01 ‖ box nonce ‖ u16be(len box) ‖ id box ‖ envelope.
    content None = tombstone (envelope of the JSON text `null`)."""
    label = b"soledad/v1/id-box"
    box_key = hmac256(id_key, label)
    hidden = hidden_id(id_key, doc_id).encode()
    r = rev.encode()
    aad = label + struct.pack(">I", len(hidden)) + hidden + struct.pack(">I", len(r)) + r
    inner_id = box_doc_id or doc_id
    box = AESGCM(box_key).encrypt(box_nonce, inner_id.encode(), aad)
    env = seal_envelope(doc_key, inner_id, rev, content if content is not None else b"null",
                        env_nonce)
    return b"SW\x01" + box_nonce + struct.pack(">H", len(box)) + box + env


ID_BOX_BUCKET = 64


def seal_server_doc_v2(doc_key, id_box_key, id_key, doc_id, rev, content, box_nonce, env_nonce,
                       box_doc_id=None, padding=None, length=None, version=2):
    """Server payload v2: "SW" 0x02 ‖ box nonce ‖ u16be(len box) ‖ id box ‖ envelope.
    The id box is sealed under the HKDF `id-box` key with AAD "SW" 0x02 ‖ u32be len ‖
    hidden id ‖ u32be len ‖ rev; its plaintext is u16be(len id) ‖ id ‖ zero bytes up to
    a multiple of 64 bytes. `padding`/`length` override the canonical encoding (defects)."""
    hidden = hidden_id(id_key, doc_id).encode()
    r = rev.encode()
    aad = b"SW\x02" + struct.pack(">I", len(hidden)) + hidden + struct.pack(">I", len(r)) + r
    inner_id = (box_doc_id or doc_id).encode()
    plain = struct.pack(">H", len(inner_id) if length is None else length) + inner_id
    bucketed = -(-len(plain) // ID_BOX_BUCKET) * ID_BOX_BUCKET
    plain += padding if padding is not None else b"\x00" * (bucketed - len(plain))
    box = AESGCM(id_box_key).encrypt(box_nonce, plain, aad)
    env = seal_envelope(doc_key, inner_id.decode(), rev,
                        content if content is not None else b"null", env_nonce)
    return b"SW" + bytes([version]) + box_nonce + struct.pack(">H", len(box)) + box + env


# ---- blobs --------------------------------------------------------------------------
def preamble(blob_id, size, salt=None, scheme=1, method=1, version=1):
    b = blob_id.encode()
    out = b"\x13\x37" + bytes([version, scheme, method, len(b)]) + b + struct.pack(">Q", size)
    return out + (salt if salt is not None else b"")


def seal_blob(blob_key, blob_id, plaintext, salt):
    pre = preamble(blob_id, len(plaintext), salt)
    b = blob_id.encode()
    okm = hkdf(blob_key, salt, b"soledad/v1/blob" + bytes([len(b)]) + b, 39)
    key, prefix = okm[:32], okm[32:]
    n = max(1, -(-len(plaintext) // SEG))
    segs = []
    for i in range(n):
        nonce = prefix + struct.pack(">I", i) + bytes([1 if i == n - 1 else 0])
        segs.append(AESGCM(key).encrypt(nonce, plaintext[i * SEG:(i + 1) * SEG], pre))
    return pre, segs


# ---- secrets file -------------------------------------------------------------------
def secrets_json(secret, passphrase, log_n, r, p, salt, iv, context=b"", version=3,
                 kdf="scrypt", cipher="aes-256-gcm"):
    key = hashlib.scrypt(passphrase.encode(), salt=salt, n=2 ** log_n, r=r, p=p, dklen=32,
                         maxmem=2 ** 30)
    aad = f"soledad-secrets/v3/scrypt/{log_n}/{r}/{p}/32/aes-256-gcm/".encode() + salt + context
    ct = AESGCM(key).encrypt(iv, secret, aad)
    return pretty({
        "version": version,
        "kdf": kdf,
        "kdf_params": {"log_n": log_n, "r": r, "p": p},
        "kdf_salt": b64(salt),
        "kdf_length": 32,
        "cipher": cipher,
        "iv": b64(iv),
        "secrets": b64(ct),
    })


# ---- recovery code ------------------------------------------------------------------
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def code_text(code):
    vals = []
    for i in range(0, 20, 5):
        acc = int.from_bytes(code[i:i + 5], "big")
        vals += [(acc >> (5 * k)) & 31 for k in range(7, -1, -1)]
    d = hashlib.sha256(b"soledad/v1/recovery-code-checksum" + code).digest()
    top = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
    vals += [(top >> 15) & 31, (top >> 10) & 31, (top >> 5) & 31, top & 31]
    chars = "".join(ALPHABET[v] for v in vals)
    return "-".join(chars[i:i + 4] for i in range(0, len(chars), 4))


def recovery(code, secret, iv):
    ident = b64url(hkdf(code, b"soledad/v1/recovery-code", b"recovery-id", 32))
    key = hkdf(code, b"soledad/v1/recovery-code", b"recovery-wrap", 32)
    ct = AESGCM(key).encrypt(iv, secret, b"soledad-recovery/v1/aes-256-gcm")
    blob = pretty({"version": 1, "kind": "soledad-recovery", "cipher": "aes-256-gcm",
                   "iv": b64(iv), "secrets": b64(ct)})
    return ident, blob


# ---- output -------------------------------------------------------------------------
def write(name, fields, body, encoding="hex"):
    path = os.path.join(OUT, name)
    if os.path.exists(path):
        print("exists, not overwriting:", name)
        return
    lines = ["# soledad-crypto known-answer vector; made by tests/reference/make_vectors.py"]
    lines += [f"{k}: {v}" for k, v in fields.items()]
    lines += [f"sha256: {hashlib.sha256(body).hexdigest()}", f"body: {encoding}", "---"]
    head = ("\n".join(lines) + "\n").encode()
    if encoding == "hex":
        h = body.hex()
        payload = ("\n".join(h[i:i + 64] for i in range(0, len(h), 64)) + "\n").encode()
    else:
        payload = body
    with open(path, "wb") as f:
        f.write(head + payload)
    print("wrote", name)


def flip(b, i, bit=0):
    b = bytearray(b)
    b[i] ^= 1 << bit
    return bytes(b)


def main():
    os.makedirs(OUT, exist_ok=True)
    secret = bytes(range(64))
    sh = secret.hex()

    # keys
    subs = {lbl: subkey(secret, lbl.encode()).hex() for lbl in ["local-db", "doc", "blob", "id"]}
    id_key = bytes.fromhex(subs["id"])
    write("keys_derive", {
        "expect": "ok", "secret": sh,
        "local_db_key": subs["local-db"], "doc_key": subs["doc"], "blob_key": subs["blob"],
        "id_key": subs["id"], "doc_id": "D-0123456789abcdef",
        "server_doc_id": b64url(hmac256(id_key, b"D-0123456789abcdef")),
    }, b"")

    # envelopes
    doc_key = bytes.fromhex(subs["doc"])
    nonce = bytes.fromhex("000102030405060708090a0b")
    base = {"doc_key": subs["doc"], "nonce": nonce.hex()}

    def env(name, expect, doc_id, rev, content, body=None, open_id=None, open_rev=None):
        data = body if body is not None else seal_envelope(doc_key, doc_id, rev, content, nonce)
        f = {"expect": expect, **base, "doc_id": open_id or doc_id, "rev": open_rev or rev,
             "content": content.decode()}
        write(name, f, data)
        return data

    C = b'{"subject": "hi", "n": [1, 2.5, null]}'
    ok = env("envelope_ok", "ok", "D-1", "replica-a:1|replica-b:2", C)
    env("envelope_empty_object", "ok", "doc%2Fwith.odd_chars-", "r:1", b"{}")
    env("envelope_unicode", "ok", "D-u", "r:7",
        '{"k": "caf\u00e9 \u2603 \U0001F600"}'.encode())
    env("envelope_padded_129", "ok", "D-p", "r:1", b'{"x": "' + b"a" * 117 + b'"}')
    env("envelope_wrong_doc_id", "integrity", "D-1", "replica-a:1|replica-b:2",
        b'{"subject": "hi", "n": [1, 2.5, null]}', body=ok, open_id="D-2")
    env("envelope_wrong_rev", "integrity", "D-1", "replica-a:1|replica-b:2",
        b'{"subject": "hi", "n": [1, 2.5, null]}', body=ok, open_rev="replica-a:1")
    env("envelope_bit_flip", "integrity", "D-1", "replica-a:1|replica-b:2",
        b'{"subject": "hi", "n": [1, 2.5, null]}', body=flip(ok, 20, 3))
    env("envelope_bad_tag", "integrity", "D-1", "replica-a:1|replica-b:2",
        b'{"subject": "hi", "n": [1, 2.5, null]}', body=flip(ok, len(ok) - 1, 7))
    env("envelope_nonce_flip", "integrity", "D-1", "replica-a:1|replica-b:2",
        b'{"subject": "hi", "n": [1, 2.5, null]}', body=flip(ok, 3, 0))
    env("envelope_truncated_tag", "integrity", "D-1", "replica-a:1|replica-b:2",
        b'{"subject": "hi", "n": [1, 2.5, null]}', body=ok[:-1])
    env("envelope_too_short", "malformed", "D-1", "r:1", b"{}", body=ok[:30])
    env("envelope_bad_magic", "malformed", "D-1", "replica-a:1|replica-b:2",
        b'{"subject": "hi", "n": [1, 2.5, null]}', body=b"SE" + ok[2:])
    env("envelope_unknown_version", "unknown_version", "D-1", "replica-a:1|replica-b:2",
        b'{"subject": "hi", "n": [1, 2.5, null]}', body=b"SD\x02" + ok[3:])

    # server documents (id box + envelope), as the client sends them in sync
    box_nonce = bytes.fromhex("101112131415161718191a1b")
    sbase = {"doc_key": subs["doc"], "id_key": subs["id"], "box_nonce": box_nonce.hex(),
             "envelope_nonce": nonce.hex()}

    def sdoc(name, expect, doc_id, rev, content, body=None, hidden=None, open_rev=None):
        data = body if body is not None else seal_server_doc(doc_key, id_key, doc_id, rev,
                                                             content, box_nonce, nonce)
        f = {"expect": expect, **sbase, "doc_id": doc_id, "rev": rev,
             "hidden_id": hidden or hidden_id(id_key, doc_id), "open_rev": open_rev or rev}
        if content is None:
            f["tombstone"] = "true"
        else:
            f["content"] = content.decode()
        write(name, f, data)
        return data

    sok = sdoc("serverdoc_ok", "ok", "D-1", "replica-a:1|replica-b:2", C)
    sdoc("serverdoc_tombstone", "ok", "D-deleted", "r:3", None)
    sdoc("serverdoc_wrong_rev", "integrity", "D-1", "replica-a:1|replica-b:2", C, body=sok,
         open_rev="replica-a:1")
    d2 = seal_server_doc(doc_key, id_key, "D-2", "r:1", C, box_nonce, nonce)
    sdoc("serverdoc_moved", "integrity", "D-2", "r:1", C, body=d2,
         hidden=hidden_id(id_key, "D-1"))
    # A box naming D-2 sealed under D-1's hidden id (only the client could make it):
    # the inner id must map back to the hidden id.
    forged = seal_server_doc(doc_key, id_key, "D-1", "r:1", C, box_nonce, nonce,
                             box_doc_id="D-2")
    sdoc("serverdoc_inner_id_mismatch", "integrity", "D-1", "r:1", C, body=forged)
    sdoc("serverdoc_box_flip", "integrity", "D-1", "replica-a:1|replica-b:2", C,
         body=flip(sok, 20, 1))
    sdoc("serverdoc_envelope_flip", "integrity", "D-1", "replica-a:1|replica-b:2", C,
         body=flip(sok, len(sok) - 20, 5))
    sdoc("serverdoc_truncated", "integrity", "D-1", "replica-a:1|replica-b:2", C,
         body=sok[:-1])
    sdoc("serverdoc_bad_magic", "malformed", "D-1", "replica-a:1|replica-b:2", C,
         body=b"SX" + sok[2:])
    sdoc("serverdoc_unknown_version", "unknown_version", "D-1", "replica-a:1|replica-b:2", C,
         body=b"SW\x07" + sok[3:])

    # server documents, v2: id box under its own HKDF key, padded to 64-byte buckets
    id_box_key = subkey(secret, b"id-box")
    write("keys_id_box", {"expect": "ok", "secret": sh, "id_key": subs["id"],
                          "id_box_key": id_box_key.hex()}, b"")
    s2base = {**sbase, "id_box_key": id_box_key.hex(), "version": 2}

    def sdoc2(name, expect, doc_id, rev, content, body=None, hidden=None, open_rev=None):
        data = body if body is not None else seal_server_doc_v2(
            doc_key, id_box_key, id_key, doc_id, rev, content, box_nonce, nonce)
        f = {"expect": expect, **s2base, "doc_id": doc_id, "rev": rev,
             "hidden_id": hidden or hidden_id(id_key, doc_id), "open_rev": open_rev or rev}
        if content is None:
            f["tombstone"] = "true"
        else:
            f["content"] = content.decode()
        write(name, f, data)
        return data

    R = "replica-a:1|replica-b:2"
    s2ok = sdoc2("serverdoc_v2_ok", "ok", "D-1", R, C)
    sdoc2("serverdoc_v2_tombstone", "ok", "D-deleted", "r:3", None)
    sdoc2("serverdoc_v2_id_fills_bucket", "ok", "D-" + "f" * 60, "r:1", b"{}")
    sdoc2("serverdoc_v2_id_two_buckets", "ok", "D-" + "e" * 61, "r:1", b"{}")
    sdoc2("serverdoc_v2_odd_id", "ok", "doc%2Fwith.odd_chars-", "r:1", b"{}")
    sdoc2("serverdoc_v2_wrong_rev", "integrity", "D-1", R, C, body=s2ok, open_rev="replica-a:1")
    d2v2 = seal_server_doc_v2(doc_key, id_box_key, id_key, "D-2", "r:1", C, box_nonce, nonce)
    sdoc2("serverdoc_v2_moved", "integrity", "D-2", "r:1", C, body=d2v2,
          hidden=hidden_id(id_key, "D-1"))
    sdoc2("serverdoc_v2_inner_id_mismatch", "integrity", "D-1", "r:1", C,
          body=seal_server_doc_v2(doc_key, id_box_key, id_key, "D-1", "r:1", C, box_nonce,
                                  nonce, box_doc_id="D-2"))
    sdoc2("serverdoc_v2_box_flip", "integrity", "D-1", R, C, body=flip(s2ok, 20, 1))
    sdoc2("serverdoc_v2_envelope_flip", "integrity", "D-1", R, C,
          body=flip(s2ok, len(s2ok) - 20, 5))
    sdoc2("serverdoc_v2_truncated", "integrity", "D-1", R, C, body=s2ok[:-1])
    # Sealed by a key holder but not canonical: refused all the same.
    sdoc2("serverdoc_v2_nonzero_padding", "integrity", "D-1", R, C,
          body=seal_server_doc_v2(doc_key, id_box_key, id_key, "D-1", R, C, box_nonce, nonce,
                                  padding=b"\x00" * 58 + b"\x01"))
    sdoc2("serverdoc_v2_extra_bucket", "integrity", "D-1", R, C,
          body=seal_server_doc_v2(doc_key, id_box_key, id_key, "D-1", R, C, box_nonce, nonce,
                                  padding=b"\x00" * (59 + 64)))
    sdoc2("serverdoc_v2_length_past_box", "integrity", "D-1", R, C,
          body=seal_server_doc_v2(doc_key, id_box_key, id_key, "D-1", R, C, box_nonce, nonce,
                                  length=63))
    # Key separation: a box sealed under the v1 key (HMAC(id key, label)) in a v2 payload.
    v1_box_key = hmac256(id_key, b"soledad/v1/id-box")
    sdoc2("serverdoc_v2_v1_key", "integrity", "D-1", R, C,
          body=seal_server_doc_v2(doc_key, v1_box_key, id_key, "D-1", R, C, box_nonce, nonce))
    # Version byte edited either way: v2 read as v1 fails, v1 read as v2 is malformed.
    sdoc2("serverdoc_v2_downgraded", "integrity", "D-1", R, C, body=b"SW\x01" + s2ok[3:])
    sdoc2("serverdoc_v2_from_v1", "malformed", "D-1", R, C, body=b"SW\x02" + sok[3:])
    sdoc2("serverdoc_v2_unpadded_box", "malformed", "D-1", R, C,
          body=s2ok[:15] + struct.pack(">H", 79) + s2ok[17:])

    # preambles
    salt = bytes(range(100, 132))
    write("preamble_symkey", {"expect": "ok", "scheme": "symkey", "method": "aes-256-gcm",
                              "blob_id": "b-0001", "plaintext_size": 131072, "salt": salt.hex()},
          preamble("b-0001", 131072, salt) + b"trailing body bytes")
    write("preamble_external", {"expect": "ok", "scheme": "external", "method": "pgp",
                                "blob_id": "mx.123_abc%2F", "plaintext_size": 4096},
          preamble("mx.123_abc%2F", 4096, None, scheme=2, method=2))
    write("preamble_unknown_version", {"expect": "unknown_version"},
          preamble("b-0001", 1, salt, version=2))
    write("preamble_bad_magic", {"expect": "malformed"}, b"\x13\x38" + preamble("b", 1, salt)[2:])
    write("preamble_symkey_pgp", {"expect": "unsupported_cipher"},
          preamble("b-0001", 1, salt, scheme=1, method=2))
    write("preamble_unknown_scheme", {"expect": "unsupported_scheme"},
          preamble("b-0001", 1, salt, scheme=9, method=1))
    write("preamble_bad_blob_id", {"expect": "invalid_blob_id"}, preamble("a/b", 1, salt))
    write("preamble_truncated", {"expect": "malformed"}, preamble("b-0001", 1, salt)[:-1])

    # streams
    blob_key = bytes.fromhex(subs["blob"])

    def stream(name, expect, size, mutate=None, blob_id="blob-1", open_id=None, encoding="raw"):
        pre, segs = seal_blob(blob_key, blob_id, pattern(size), salt)
        data = mutate(pre, segs) if mutate else pre + b"".join(segs)
        write(name, {"expect": expect, "blob_key": subs["blob"], "blob_id": open_id or blob_id,
                     "salt": salt.hex(), "plaintext": f"pattern {size}"}, data, encoding)

    stream("stream_empty", "ok", 0, encoding="hex")
    stream("stream_small", "ok", 1000, encoding="hex")
    stream("stream_one_full_segment", "ok", SEG)
    stream("stream_two_segments", "ok", 2 * SEG)
    stream("stream_three_segments_partial", "ok", 2 * SEG + 100)
    stream("stream_no_final", "integrity", 2 * SEG, lambda p, s: p + s[0])
    stream("stream_truncated_mid_segment", "integrity", 1000,
           lambda p, s: p + s[0][:500], encoding="hex")
    stream("stream_trailing_byte", "integrity", 1000,
           lambda p, s: p + s[0] + b"\x00", encoding="hex")
    stream("stream_extra_segment", "integrity", SEG, lambda p, s: p + s[0] + s[0])
    stream("stream_swapped", "integrity", 2 * SEG, lambda p, s: p + s[1] + s[0])
    stream("stream_bit_flip", "integrity", 1000,
           lambda p, s: p + flip(s[0], 10, 2), encoding="hex")
    stream("stream_wrong_blob_id", "integrity", 1000, open_id="blob-2", encoding="hex")
    stream("stream_size_edited", "integrity", 1000,
           lambda p, s: preamble("blob-1", 999, salt) + s[0], encoding="hex")
    other_pre, other_segs = seal_blob(blob_key, "blob-2", pattern(2 * SEG), salt)
    stream("stream_segment_from_other_blob", "integrity", 2 * SEG,
           lambda p, s: p + other_segs[0] + s[1])
    stream("stream_external", "external", 0,
           lambda p, s: preamble("blob-1", 5, None, scheme=2, method=2) + b"hello",
           encoding="hex")

    # secrets files (cheap scrypt parameters: log_n=4, r=8, p=1)
    ksalt = bytes(range(200, 232))
    iv = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaab")
    pw = "correct horse battery staple"
    common = {"secret": sh, "passphrase": pw, "log_n": 4, "r": 8, "p": 1,
              "kdf_salt": ksalt.hex(), "iv": iv.hex()}
    good = secrets_json(secret, pw, 4, 8, 1, ksalt, iv)
    write("secrets_ok", {"expect": "ok", **common}, good, "text")
    write("secrets_wrong_passphrase", {"expect": "wrong_passphrase", **common,
                                       "passphrase": "Correct horse battery staple"}, good, "text")
    edited = json.loads(good)
    edited["kdf_params"]["r"] = 9
    write("secrets_edited_params", {"expect": "wrong_passphrase", **common}, pretty(edited), "text")
    write("secrets_unknown_version", {"expect": "unknown_version", **common},
          secrets_json(secret, pw, 4, 8, 1, ksalt, iv, version=2), "text")
    write("secrets_unknown_kdf", {"expect": "unsupported_kdf", **common},
          secrets_json(secret, pw, 4, 8, 1, ksalt, iv, kdf="pbkdf2"), "text")
    write("secrets_unknown_cipher", {"expect": "unsupported_cipher", **common},
          secrets_json(secret, pw, 4, 8, 1, ksalt, iv, cipher="aes-128-cbc"), "text")
    absurd = json.loads(good)
    absurd["kdf_params"]["log_n"] = 40
    write("secrets_absurd_cost", {"expect": "kdf_params_rejected", **common}, pretty(absurd), "text")
    write("secrets_not_json", {"expect": "malformed", **common}, b"{\"version\": 3,", "text")

    # passphrase backup
    uuid = "0f7b5a6e-3c1d-4e2f-9a8b-7c6d5e4f3a2b"
    backup_id = b64url(hashlib.scrypt(pw.encode(), salt=b"soledad/v1/backup-id:" + uuid.encode(),
                                      n=16, r=8, p=1, dklen=32))
    write("backup_ok", {"expect": "ok", **common, "uuid": uuid, "backup_id": backup_id},
          secrets_json(secret, pw, 4, 8, 1, ksalt, iv, context=b"backup:" + uuid.encode()), "text")
    write("backup_other_uuid", {"expect": "wrong_passphrase", **common,
                                "uuid": "00000000-0000-0000-0000-000000000000",
                                "backup_id": backup_id},
          secrets_json(secret, pw, 4, 8, 1, ksalt, iv, context=b"backup:" + uuid.encode()), "text")

    # recovery code
    code = bytes(range(0xe0, 0xf4))
    ident, blob = recovery(code, secret, iv)
    text = code_text(code)
    write("recovery_ok", {"expect": "ok", "secret": sh, "code_bytes": code.hex(),
                          "code_text": text, "typed_as": text.lower().replace("-", " "),
                          "recovery_id": ident, "iv": iv.hex()}, blob, "text")
    typo = text[:5] + ("Z" if text[5] != "Z" else "Y") + text[6:]
    write("recovery_typo", {"expect": "recovery_code_checksum", "secret": sh,
                            "code_bytes": code.hex(), "code_text": typo, "typed_as": typo,
                            "recovery_id": ident, "iv": iv.hex()}, blob, "text")
    other = bytes(range(1, 21))
    write("recovery_wrong_code", {"expect": "wrong_recovery_code", "secret": sh,
                                  "code_bytes": other.hex(), "code_text": code_text(other),
                                  "typed_as": code_text(other), "recovery_id": ident,
                                  "iv": iv.hex()}, blob, "text")


if __name__ == "__main__":
    sys.exit(main())
