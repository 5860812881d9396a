#!/usr/bin/env python3
"""Writes the committed seed inputs of the inflate fuzz target (fuzz/seeds/inflate/).

Run from anywhere: python3 fuzz/seeds/generate_inflate.py. The input format is described
at the top of fuzz/fuzz_targets/inflate.rs: two offer bytes, then frames, each a flags byte
(FIN 0x80, RSV1 0x40, RSV2 0x20, 2-byte length 0x10, opcode), its length, a feed byte (low
nibble: piece size, 0x0f all at once, 0x00 one byte at a time) and the unmasked payload.
"""

import os
import struct
import zlib

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inflate")

FIN, RSV1 = 0x80, 0x40
TEXT, BINARY, CONT, CLOSE, PING = 0x1, 0x2, 0x0, 0x8, 0x9
WHOLE, BYTE = 0x0F, 0x00


def frame(flags, payload, feed=WHOLE):
    if len(payload) > 255:
        return bytes([flags | 0x10]) + struct.pack(">H", len(payload)) + bytes([feed]) + payload
    return bytes([flags, len(payload), feed]) + payload


def deflate(data, level=6, final=False):
    """A message as RFC 7692 7.2.1 sends it: a sync flush without its 00 00 ff ff."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    out = c.compress(data)
    if final:
        return out + c.flush(zlib.Z_FINISH)
    out += c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def write(name, data):
    os.makedirs(HERE, exist_ok=True)
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


# RFC 7692 7.2.3.1 and 7.2.3.2: "Hello" compressed, then again with the shared window.
HELLO = bytes.fromhex("f248cdc9c90700")
HELLO_AGAIN = bytes.fromhex("f200110000")
write("rfc-hello", b"\x00\x00" + frame(FIN | RSV1 | TEXT, HELLO))
write(
    "rfc-hello-twice",
    b"\x01\x00" + frame(FIN | RSV1 | TEXT, HELLO) + frame(FIN | RSV1 | TEXT, HELLO_AGAIN, BYTE),
)
# 7.2.3.1: the same message in two fragments, RSV1 on the first only.
write(
    "rfc-hello-fragmented",
    b"\x02\x0a" + frame(RSV1 | TEXT, HELLO[:3]) + frame(FIN | CONT, HELLO[3:]),
)
# 7.2.3.3: an empty DEFLATE block, and 7.2.3.4: a final block (BFINAL) ending the stream.
write("rfc-empty-block", b"\x00\x00" + frame(FIN | RSV1 | BINARY, b"\x00"))
write(
    "final-block-then-message",
    b"\x04\x00"
    + frame(FIN | RSV1 | TEXT, deflate(b"the end", final=True))
    + frame(FIN | RSV1 | TEXT, HELLO),
)
# Context takeover off in both directions, windows of 9 and 8 bits.
text = b"permessage-deflate " * 20
write(
    "no-context-takeover",
    b"\x3e\x01"
    + frame(FIN | RSV1 | TEXT, deflate(text), 0x03)
    + frame(FIN | RSV1 | TEXT, deflate(text), 0x07),
)
# An uncompressed message next to a compressed one, a Ping, then the peer's Close.
write(
    "mixed-then-close",
    b"\x01\x00"
    + frame(FIN | TEXT, b"plain")
    + frame(FIN | RSV1 | BINARY, deflate(bytes(range(256)) * 2))
    + frame(FIN | PING, b"ping")
    + frame(FIN | CLOSE, struct.pack(">H", 1000) + b"bye"),
)
# Failures: invalid UTF-8 once inflated (1007), RSV1 on a control frame and on a
# continuation (1002), corrupt DEFLATE data (1002).
write("invalid-utf8", b"\x00\x00" + frame(FIN | RSV1 | TEXT, deflate(b"caf\xc3 \xff\xfe")))
write("compressed-ping", b"\x00\x00" + frame(FIN | RSV1 | PING, HELLO))
write(
    "compressed-continuation",
    b"\x00\x00" + frame(RSV1 | TEXT, HELLO[:3]) + frame(FIN | RSV1 | CONT, HELLO[3:]),
)
write("corrupt", b"\x00\x00" + frame(FIN | RSV1 | BINARY, b"\xff\xff\xff\xff\x00\x01"))
# Compression bombs (1009): 8 MiB of zeros in one frame, whole and fed byte by byte, and
# 1 MiB spread over fragments.
bomb = deflate(b"\0" * (8 << 20), level=9)
write("bomb", b"\x00\x00" + frame(FIN | RSV1 | BINARY, bomb))
write("bomb-byte-by-byte", b"\x00\x00" + frame(FIN | RSV1 | TEXT, bomb, BYTE))
small = deflate(b"\0" * (1 << 20), level=9)
pieces = [small[i : i + 200] for i in range(0, len(small), 200)]
fragmented = frame(RSV1 | BINARY, pieces[0], 0x0B)
for i, piece in enumerate(pieces[1:]):
    fragmented += frame((FIN if i == len(pieces) - 2 else 0) | CONT, piece, 0x0B)
write("bomb-fragmented", b"\x00\x00" + fragmented)
# Just under the limit: 64 KiB exactly is delivered.
write("at-limit", b"\x00\x00" + frame(FIN | RSV1 | BINARY, deflate(b"a" * (64 << 10))))
write("over-limit-by-one", b"\x00\x00" + frame(FIN | RSV1 | BINARY, deflate(b"a" * ((64 << 10) + 1))))
