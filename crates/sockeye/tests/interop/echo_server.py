"""An echo server on the asyncio API of the `websockets` package, for the interop tests.

It binds 127.0.0.1 on a free port and prints `listening on HOST:PORT` once it is bound.
Each connection echoes every message back, except these text messages, which steer it:

    burst N             send the N text messages "burst 0" ... "burst N-1"
    fragments A B ...   send one text message "AB..." as the fragments A, B, ...
    ping                send a Ping, wait for its Pong, then send "pong received"
    close CODE REASON   close the connection with CODE and REASON

When a connection ends it prints one JSON line (see peer.py):
    {"event": "closed", "rcvd": ..., "sent": ..., "rcvd_then_sent": ...,
     "received": [...], "sent_messages": [...]}
where "received" lists every message it received and "sent_messages" every message it
sent (each once `send` returned), in order.

With --compression none it declines permessage-deflate; by default it accepts it, as
`websockets` does (server_max_window_bits=12, client_max_window_bits=12 when offered).

It stops when stdin closes, or after --lifetime seconds.
"""

import argparse
import asyncio

from websockets.asyncio.server import serve

from peer import (
    MAX_SIZE,
    ConnectionClosed,
    add_compression_option,
    closed_event,
    compression,
    describe,
    emit,
    run_bounded,
)


async def steer(connection, text, send):
    """Acts on a steering message; False if `text` is an ordinary message to echo."""
    command, _, rest = text.partition(" ")
    if command == "burst":
        for i in range(int(rest)):
            await send(f"burst {i}")
    elif command == "fragments":
        await send(rest.split(" "))
    elif command == "ping":
        pong = await connection.ping(b"interop")
        await asyncio.wait_for(pong, 10)
        await send("pong received")
    elif command == "close":
        code, _, reason = rest.partition(" ")
        await connection.close(int(code), reason)
    else:
        return False
    return True


async def handler(connection):
    received = []
    sent = []

    async def send(message):
        await connection.send(message)
        whole = "".join(message) if isinstance(message, list) else message
        sent.append(describe(whole))

    try:
        while True:
            message = await connection.recv()
            received.append(describe(message))
            if isinstance(message, str) and await steer(connection, message, send):
                continue
            await send(message)
    except ConnectionClosed as exc:
        emit(closed_event(connection, exc, received=received, sent_messages=sent))
    except Exception as exc:
        emit({"event": "error", "error": repr(exc), "received": received})
        raise


async def main(args):
    async def run():
        async with serve(
            handler,
            "127.0.0.1",
            0,
            max_size=MAX_SIZE,
            # Never stop reading while messages wait unread: with a bound, a closing
            # handshake that arrives behind them would wait for the close timeout.
            max_queue=None,
            ping_interval=None,
            compression=compression(args.compression),
        ) as server:
            host, port = server.sockets[0].getsockname()[:2]
            print(f"listening on {host}:{port}", flush=True)
            await asyncio.get_running_loop().create_future()

    await run_bounded(run, args.lifetime)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lifetime", type=float, default=60.0)
    add_compression_option(parser)
    asyncio.run(main(parser.parse_args()))
