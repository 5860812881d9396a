#!/usr/bin/env python3
"""Writes the committed seed inputs of the fuzz targets (fuzz/seeds/<target>/).

Run from anywhere: python3 fuzz/seeds/generate.py. The files it writes are committed; run it
again only after changing an input format (see fuzz/src/lib.rs and the targets' headers).
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# RFC 6455 1.2 / 1.3 example key and its accept value.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])  # the masking key of the RFC 5.7 examples


def frame(opcode, payload=b"", fin=True, mask=None):
    """One frame; `mask` is a 4-byte key (client to server) or None."""
    out = bytearray([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask else 0
    n = len(payload)
    if n <= 125:
        out.append(mask_bit | n)
    elif n <= 0xFFFF:
        out.append(mask_bit | 126)
        out += struct.pack(">H", n)
    else:
        out.append(mask_bit | 127)
        out += struct.pack(">Q", n)
    if mask:
        out += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    out += payload
    return bytes(out)


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


def write(target, name, data):
    directory = os.path.join(HERE, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


REQUEST = (
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    f"Sec-WebSocket-Key: {KEY}\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n"
).encode()

MINIMAL_REQUEST = (
    "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
    f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()

RESPONSE = (
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    f"Sec-WebSocket-Accept: {ACCEPT}\r\n"
    "Sec-WebSocket-Protocol: chat\r\n"
    "\r\n"
).encode()

# frame_header: a selector byte (bit 0: the receiver is the client), then the frame.
write("frame_header", "rfc-text-unmasked", b"\x01" + frame(0x1, b"Hello"))
write("frame_header", "rfc-text-masked", b"\x00" + frame(0x1, b"Hello", mask=MASK))
write("frame_header", "rfc-fragment-first", b"\x01" + frame(0x1, b"Hel", fin=False))
write("frame_header", "rfc-ping", b"\x01" + frame(0x9, b"Hello"))
write("frame_header", "rfc-pong-masked", b"\x00" + frame(0xA, b"Hello", mask=MASK))
write("frame_header", "rfc-binary-256", b"\x01" + frame(0x2, bytes(256))[:4])
write("frame_header", "rfc-binary-64k", b"\x01" + frame(0x2, bytes(65536))[:10])
write("frame_header", "close-masked-rsv1", b"\x02" + bytes([0xC8, 0x82]) + MASK)

# handshake_request: a selector byte (bit 0: small limits), then the request.
write("handshake_request", "rfc-request", b"\x00" + REQUEST)
write("handshake_request", "minimal-request", b"\x00" + MINIMAL_REQUEST)
write(
    "handshake_request",
    "extensions-request",
    b"\x00"
    + MINIMAL_REQUEST.replace(
        b"\r\n\r\n",
        b"\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
    ),
)
write("handshake_request", "version-8", b"\x00" + REQUEST.replace(b"Version: 13", b"Version: 8"))
write("handshake_request", "small-limits", b"\x01" + MINIMAL_REQUEST)

# handshake_response: a selector byte (bit 0: small limits), then the response.
write("handshake_response", "rfc-response", b"\x00" + RESPONSE)
write(
    "handshake_response",
    "deflate-response",
    b"\x00" + RESPONSE.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"),
)
write(
    "handshake_response",
    "refusal-403",
    b"\x00HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nnope\n",
)
write("handshake_response", "small-limits", b"\x01" + RESPONSE)

# Session targets: mode byte, step count, step bytes, then the peer's byte stream. Mode
# bits: 0 the harness prepends the peer's handshake head, 1 keepalive, 2 small limits,
# 3 (server) refuse the request.
# Step byte: low nibble = chunk length index (0 = 1 byte, 0xf = the rest), high nibble =
# action (0 nothing, 8 advance 3 s, 9 jump to the next deadline, 10 send text, 13 close,
# 14 fail, 15 early EOF).


def session(mode, steps, stream):
    return bytes([mode, len(steps)]) + bytes(steps) + stream


CHUNKS = [1, 2, 3, 4, 5, 6, 7, 8, 11, 14, 16, 64, 125, 128, 1024]


def plan(*parts):
    """Step bytes feeding exactly `n` bytes then doing `action`, for each (n, action);
    n None feeds the rest."""
    steps = []
    for n, action in parts:
        if n is None:
            steps.append(action << 4 | 0xF)
            continue
        pieces = []
        while n > 0:
            index = max(i for i, c in enumerate(CHUNKS) if c <= n)
            pieces.append(index)
            n -= CHUNKS[index]
        steps += pieces[:-1] + [action << 4 | pieces[-1]]
    return steps


def masked(opcode, payload=b"", fin=True):
    return frame(opcode, payload, fin=fin, mask=MASK)


SERVER_SESSION = (
    REQUEST
    + masked(0x1, b"Hello")
    + masked(0x1, "caf\u00e9 ".encode(), fin=False)
    + masked(0x9, b"ping")
    + masked(0x0, "\u2603".encode())
    + masked(0x2, bytes(range(200)))
    + masked(0x8, close_payload(1000, b"done"))
)
write("server_session", "whole", session(0, [], SERVER_SESSION))
# A zero masking key leaves the payload readable, which helps the fuzzer build frames.
ZERO = bytes(4)
write(
    "server_session",
    "zero-mask",
    session(
        0,
        [],
        REQUEST
        + frame(0x1, "zero \u00e9".encode(), fin=False, mask=ZERO)
        + frame(0xA, b"pong", mask=ZERO)
        + frame(0x0, b" key", mask=ZERO)
        + frame(0x8, close_payload(1001, b"bye"), mask=ZERO),
    ),
)
write("server_session", "byte-by-byte", session(0, [0x00], SERVER_SESSION))
# Feed the request, send a message and close locally; then the peer's message and Close.
write(
    "server_session",
    "local-close",
    session(
        0,
        plan((len(REQUEST), 0xA), (1, 0xD), (None, 0)),
        REQUEST + masked(0x1, b"hi") + masked(0x8, close_payload(1000)),
    ),
)
# Mode bit 0: the harness prepends a valid request; the stream is frames only.
write(
    "server_session",
    "frames-after-request",
    session(
        1,
        [0x03],
        frame(0x2, bytes(range(40)), fin=False, mask=ZERO)
        + frame(0x9, b"", mask=MASK)
        + frame(0x0, b"end", mask=ZERO)
        + frame(0x8, b"", mask=ZERO),
    ),
)
# Keepalive on: let the ping and pong deadlines pass.
write("server_session", "keepalive-timeout", session(2, [0x8F, 0x90, 0x90], MINIMAL_REQUEST))
write("server_session", "refused", session(8, [], REQUEST + masked(0x1, b"ignored")))
write("server_session", "small-limits", session(4, [0x0B], REQUEST + masked(0x2, bytes(150))))

# The client target prepends a valid 101 when bit 0 of the mode byte is set; its length
# (the accept value is always 28 characters):
RESPONSE_FOR_CLIENT = (
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: " + "x" * 28 + "\r\n\r\n"
).encode()
CLIENT_SESSION = (
    frame(0x1, b"Hello")
    + frame(0x9, b"ping")
    + frame(0x2, bytes(300))
    + frame(0x8, close_payload(1001, b"going away"))
)
write("client_session", "whole", session(1, [], CLIENT_SESSION))
write("client_session", "byte-by-byte", session(1, [0x00], CLIENT_SESSION))
# Overlapping close: the client closes while the server's Close is on the wire.
write(
    "client_session",
    "overlapping-close",
    session(1, plan((len(RESPONSE_FOR_CLIENT), 0xD), (None, 0)), frame(0x8, close_payload(1000))),
)
write("client_session", "keepalive", session(3, [0x8F, 0x90], frame(0xA, b"")))
write(
    "client_session",
    "refusal-403",
    session(0, [], b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope\n"),
)
