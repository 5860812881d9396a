"""A client on the asyncio API of the `websockets` package, for the interop tests.

    client.py URL ACTION...

It connects to URL (offering permessage-deflate unless --compression none, as `websockets`
does by default), prints {"event": "open", "extensions": [...], ...}, then runs the
actions in order:

    text:STRING                 send a text message
    binary:N                    send N bytes of the test pattern (byte i is i % 251)
    fragments:A|B|...           send one text message as the fragments A, B, ...
    binary-fragments:N:K        send N bytes of the pattern as K fragments
    recv:N                      receive N messages
    ping                        send a Ping and wait for its Pong; prints {"event": "pong"}
    close:CODE:REASON           close the connection with CODE and REASON

Every message received is printed as {"event": "message", ...}. After the actions it keeps
receiving until the connection ends, then prints {"event": "closed", ...} (see peer.py).
It gives up after --lifetime seconds, or when stdin closes.
"""

import argparse
import asyncio

from websockets.asyncio.client import connect

from peer import (
    MAX_SIZE,
    ConnectionClosed,
    add_compression_option,
    closed_event,
    compression,
    describe,
    emit,
    extensions,
    pattern,
    run_bounded,
)


def chunks(data, count):
    size = -(-len(data) // count)
    return [data[i : i + size] for i in range(0, len(data), size)]


async def receive(connection):
    message = await connection.recv()
    emit({"event": "message", **describe(message)})


async def act(connection, action):
    kind, _, argument = action.partition(":")
    if kind == "text":
        await connection.send(argument)
    elif kind == "binary":
        await connection.send(pattern(int(argument)))
    elif kind == "fragments":
        await connection.send(argument.split("|"))
    elif kind == "binary-fragments":
        length, count = argument.split(":")
        await connection.send(chunks(pattern(int(length)), int(count)))
    elif kind == "recv":
        for _ in range(int(argument)):
            await receive(connection)
    elif kind == "ping":
        pong = await connection.ping(b"interop")
        await asyncio.wait_for(pong, 10)
        emit({"event": "pong"})
    elif kind == "close":
        code, _, reason = argument.partition(":")
        await connection.close(int(code), reason)
    else:
        raise ValueError(f"unknown action {action!r}")


async def main(args):
    async def run():
        connection = await connect(
            args.url,
            max_size=MAX_SIZE,
            # Never stop reading while messages wait unread: with a bound, a closing
            # handshake that arrives behind them would wait for the close timeout.
            max_queue=None,
            ping_interval=None,
            proxy=None,
            compression=compression(args.compression),
        )
        emit(
            {
                "event": "open",
                "subprotocol": connection.subprotocol,
                "extensions": extensions(connection),
            }
        )
        try:
            for action in args.actions:
                await act(connection, action)
            while True:
                await receive(connection)
        except ConnectionClosed as exc:
            emit(closed_event(connection, exc))

    await run_bounded(run, args.lifetime)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("actions", nargs="*")
    parser.add_argument("--lifetime", type=float, default=30.0)
    add_compression_option(parser)
    asyncio.run(main(parser.parse_args()))
