"""What the interop scripts share: how they describe messages and closes as JSON lines.

Every line a script prints on stdout is one JSON object with an "event" key; the Rust
tests (crates/sockeye/tests/interop_python.rs) read them. Binary payloads are described,
not copied: their length and CRC-32, which the tests recompute.
"""

import asyncio
import json
import os
import sys
import zlib

from websockets.exceptions import ConnectionClosed

# The largest message either script accepts (the tests send 1 MiB).
MAX_SIZE = 16 * 1024 * 1024


def pattern(length):
    """The binary payload the tests send: byte i is i % 251."""
    period = bytes(range(251))
    return (period * (length // 251 + 1))[:length]


def describe(message):
    """A message as JSON: the text itself, or a binary payload's length and CRC-32."""
    if isinstance(message, str):
        return {"type": "text", "text": message}
    return {"type": "binary", "len": len(message), "crc32": zlib.crc32(message)}


def close_frame(frame):
    if frame is None:
        return None
    return {"code": frame.code, "reason": frame.reason}


def extensions(connection):
    """The extensions in use, as JSON: each one's name, and for permessage-deflate the
    parameters `websockets` agreed, from its own point of view (local is this script)."""
    described = []
    for extension in connection.protocol.extensions:
        entry = {"name": extension.name}
        for attribute in (
            "local_no_context_takeover",
            "remote_no_context_takeover",
            "local_max_window_bits",
            "remote_max_window_bits",
        ):
            if hasattr(extension, attribute):
                entry[attribute] = getattr(extension, attribute)
        described.append(entry)
    return described


def compression(name):
    """The `compression` argument of `websockets` for a --compression option."""
    return None if name == "none" else name


def add_compression_option(parser):
    parser.add_argument(
        "--compression",
        choices=["deflate", "none"],
        default="deflate",
        help="permessage-deflate: offer/accept it (the default of websockets) or not",
    )


def closed_event(connection, exc, **extra):
    """The "closed" line: the Close frames received and sent, in which order, the close
    code and reason the library reports (RFC 6455 7.1.5 and 7.1.6), and the extensions
    that were in use."""
    event = {
        "event": "closed",
        "exception": type(exc).__name__,
        "rcvd": close_frame(exc.rcvd),
        "sent": close_frame(exc.sent),
        "rcvd_then_sent": exc.rcvd_then_sent,
        "close_code": connection.close_code,
        "close_reason": connection.close_reason,
        "extensions": extensions(connection),
    }
    event.update(extra)
    return event


def emit(event):
    print(json.dumps(event), flush=True)


def stdin_closed(loop):
    """A future that completes once stdin closes: the test that runs the script ended."""
    closed = loop.create_future()
    fd = sys.stdin.fileno()

    def readable():
        if not os.read(fd, 4096):
            loop.remove_reader(fd)
            if not closed.done():
                closed.set_result(None)

    try:
        loop.add_reader(fd, readable)
    except (OSError, ValueError):
        pass  # stdin cannot be watched (a regular file): --lifetime still bounds the run
    return closed


async def run_bounded(main, lifetime):
    """Runs `main()` until it returns, stdin closes, or `lifetime` seconds pass (then
    prints an "error" line and exits with status 2)."""
    task = asyncio.ensure_future(main())
    closed = stdin_closed(asyncio.get_running_loop())
    done, _ = await asyncio.wait({task, closed}, timeout=lifetime, return_when="FIRST_COMPLETED")
    if task in done:
        task.result()
        return
    task.cancel()
    if not done:
        emit({"event": "error", "error": f"still running after {lifetime} s"})
        sys.exit(2)


__all__ = [
    "ConnectionClosed",
    "MAX_SIZE",
    "add_compression_option",
    "closed_event",
    "compression",
    "describe",
    "emit",
    "extensions",
    "pattern",
    "run_bounded",
]
