// A client on the `ws` package, for the interop tests; the Node.js twin of ../client.py.
//
//     client.cjs [--compression deflate|none|default] [--ca FILE] [--lifetime SECONDS]
//                URL ACTION...
//
// It connects to URL (--compression default, the default, offers permessage-deflate as
// ws does; `deflate` offers it too and compresses every message; `none` does not offer
// it; for a wss:// URL, --ca names the PEM certificate of the root to trust instead of
// Node's own), prints {"event": "open", "subprotocol": ..., "extensions": ...} (the
// handshake response's Sec-WebSocket-Extensions, null for none), then runs the actions
// in order:
//
//     text:STRING                 send a text message
//     binary:N                    send N bytes of the test pattern (byte i is i % 251)
//     fragments:A|B|...           send one text message as the fragments A, B, ...
//     binary-fragments:N:K        send N bytes of the pattern as K fragments
//     recv:N                      take the next N messages, waiting for those not yet in
//     ping                        send a Ping and wait for its Pong; prints {"event": "pong"}
//     close:CODE:REASON           close the connection with CODE and REASON
//
// Every message received is printed as {"event": "message", ...} as it arrives. After the
// actions it waits for the connection to end, then prints {"event": "closed", "code": ...,
// "reason": ..., "initiated": ...} (see echo_server.cjs) and exits. It gives up after
// --lifetime seconds (default 30), or when stdin closes.

'use strict';

const fs = require('fs');
const WebSocket = require('ws');
const { MAX_SIZE, bounded, describe, emit, failOn, parseArgs, pattern, perMessageDeflate } = require('./peer.cjs');

const { options, positional } = parseArgs({ compression: 'default', ca: '', lifetime: '30' });
const [url, ...actions] = positional;
bounded(Number(options.lifetime));

const ws = new WebSocket(url, {
  maxPayload: MAX_SIZE,
  perMessageDeflate: perMessageDeflate(options.compression, 'client'),
  ...(options.ca ? { ca: fs.readFileSync(options.ca) } : {}),
});

// Messages arrived, and messages taken by recv actions.
let arrived = 0;
let taken = 0;
let waiters = [];
let initiated = false;
const wakeAll = () => {
  const waiting = waiters;
  waiters = [];
  for (const wake of waiting) wake();
};
const until = (ready) =>
  new Promise((resolve) => {
    const check = () => (ready() ? resolve() : waiters.push(check));
    check();
  });

const closed = new Promise((resolve) => {
  ws.on('close', (code, reason) => {
    resolve({ code, reason: reason.toString('utf8') });
    wakeAll();
  });
});
let extensions = null;
ws.on('upgrade', (response) => {
  extensions = response.headers['sec-websocket-extensions'] || null;
});
ws.on('message', (data, isBinary) => {
  emit({ event: 'message', ...describe(data, isBinary) });
  arrived += 1;
  wakeAll();
});
let pongs = 0;
ws.on('pong', () => {
  pongs += 1;
  wakeAll();
});
ws.on('error', (error) => {
  emit({ event: 'error', error: String(error) });
  process.exit(1);
});

const send = (data, sendOptions) =>
  new Promise((resolve, reject) => {
    ws.send(data, sendOptions, (error) => (error ? reject(error) : resolve()));
  });

/** Sends `pieces` as the fragments of one message. */
async function sendFragments(pieces, binary) {
  for (let i = 0; i < pieces.length; i++) {
    await send(pieces[i], { binary, fin: i === pieces.length - 1 });
  }
}

async function act(action) {
  const at = action.indexOf(':');
  const kind = at < 0 ? action : action.slice(0, at);
  const argument = at < 0 ? '' : action.slice(at + 1);
  if (kind === 'text') {
    await send(argument, { binary: false });
  } else if (kind === 'binary') {
    await send(pattern(Number(argument)), { binary: true });
  } else if (kind === 'fragments') {
    await sendFragments(argument.split('|'), false);
  } else if (kind === 'binary-fragments') {
    const [length, count] = argument.split(':').map(Number);
    const data = pattern(length);
    const size = Math.ceil(length / count);
    const pieces = [];
    for (let i = 0; i < length; i += size) pieces.push(data.subarray(i, i + size));
    await sendFragments(pieces, true);
  } else if (kind === 'recv') {
    taken += Number(argument);
    await until(() => arrived >= taken || ws.readyState === WebSocket.CLOSED);
    if (arrived < taken) throw new Error(`the connection ended before message ${taken}`);
  } else if (kind === 'ping') {
    const target = pongs + 1;
    ws.ping('interop');
    await until(() => pongs >= target || ws.readyState === WebSocket.CLOSED);
    if (pongs < target) throw new Error('the connection ended before the Pong');
    emit({ event: 'pong' });
  } else if (kind === 'close') {
    const [code, ...reason] = argument.split(':');
    initiated = ws.readyState === WebSocket.OPEN;
    ws.close(Number(code), reason.join(':'));
  } else {
    throw new Error(`unknown action ${action}`);
  }
}

async function main() {
  await new Promise((resolve) => ws.once('open', resolve));
  emit({ event: 'open', subprotocol: ws.protocol, extensions });
  for (const action of actions) await act(action);
  const { code, reason } = await closed;
  emit({ event: 'closed', code, reason, initiated });
  process.exit(0);
}

failOn(main());
