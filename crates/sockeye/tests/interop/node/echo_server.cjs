// An echo server on the `ws` package, for the interop tests; the Node.js twin of
// ../echo_server.py.
//
// It binds 127.0.0.1 on a free port and prints `listening on HOST:PORT` once it is bound.
// Each connection echoes every message back, except these text messages, which steer it:
//
//     burst N             send the N text messages "burst 0" ... "burst N-1"
//     fragments A B ...   send one text message "AB..." as the fragments A, B, ...
//     ping                send a Ping, wait for its Pong, then send "pong received"
//     close CODE REASON   close the connection with CODE and REASON
//
// Messages are handled one after the other, in the order they arrived. When a connection
// ends it prints one JSON line:
//     {"event": "closed", "code": ..., "reason": ..., "initiated": ...,
//      "received": [...], "sent_messages": [...], "extensions": ...}
// where "code" and "reason" are those ws reports (the peer's Close frame, 1005 for one
// without a code, 1006 for none), "initiated" whether this server sent its Close first,
// "received" every message it received and "sent_messages" every message ws reported
// written, in order, and "extensions" the Sec-WebSocket-Extensions of its handshake
// response (null: none).
//
// --compression deflate|none|default (default: default, ws's own: declined),
// --cert FILE and --key FILE (PEM: serve wss:// over Node's TLS instead of ws://) and
// --lifetime SECONDS (default 60); it stops when stdin closes.

'use strict';

const fs = require('fs');
const https = require('https');
const { WebSocketServer } = require('ws');
const { MAX_SIZE, bounded, describe, emit, failOn, parseArgs, perMessageDeflate } = require('./peer.cjs');

const { options } = parseArgs({ compression: 'default', cert: '', key: '', lifetime: '60' });
bounded(Number(options.lifetime));

const settings = {
  maxPayload: MAX_SIZE,
  perMessageDeflate: perMessageDeflate(options.compression, 'server'),
};
let server;
if (options.cert) {
  const tls = https.createServer({
    cert: fs.readFileSync(options.cert),
    key: fs.readFileSync(options.key),
  });
  server = new WebSocketServer({ ...settings, server: tls });
  // ws passes the HTTPS server's 'listening' event on.
  tls.listen(0, '127.0.0.1');
} else {
  server = new WebSocketServer({ ...settings, host: '127.0.0.1', port: 0 });
}

// The response headers of each handshake, until its connection event takes them.
const responses = new Map();
server.on('headers', (headers, request) => responses.set(request, headers));

server.on('listening', () => {
  const { address, port } = server.address();
  console.log(`listening on ${address}:${port}`);
});

server.on('connection', (ws, request) => {
  const headers = responses.get(request) || [];
  responses.delete(request);
  const extensionLine = headers.find((h) => /^sec-websocket-extensions:/i.test(h));
  const extensions = extensionLine ? extensionLine.replace(/^[^:]*:\s*/, '') : null;

  const received = [];
  const sent = [];
  let initiated = false;
  let pongs = [];
  // Each message is handled once the ones before it are.
  let turn = Promise.resolve();

  const send = (data, options = {}) =>
    new Promise((resolve) => {
      ws.send(data, options, (error) => resolve(!error));
    });
  const sendWhole = async (data, isBinary) => {
    if (await send(data, { binary: isBinary })) sent.push(describe(data, isBinary));
  };

  async function handle(data, isBinary) {
    received.push(describe(data, isBinary));
    const text = isBinary ? null : data.toString('utf8');
    const space = text === null ? -1 : text.indexOf(' ');
    const command = space < 0 ? text : text.slice(0, space);
    const rest = space < 0 ? '' : text.slice(space + 1);
    if (command === 'burst' && rest !== '') {
      for (let i = 0; i < Number(rest); i++) await sendWhole(Buffer.from(`burst ${i}`), false);
    } else if (command === 'fragments' && rest !== '') {
      const pieces = rest.split(' ');
      let written = true;
      for (let i = 0; i < pieces.length; i++) {
        written = (await send(pieces[i], { binary: false, fin: i === pieces.length - 1 })) && written;
      }
      if (written) sent.push(describe(Buffer.from(pieces.join('')), false));
    } else if (command === 'ping') {
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no Pong within 10 s')), 10000);
        pongs.push(() => {
          clearTimeout(timer);
          resolve();
        });
        ws.ping('interop');
      });
      await sendWhole(Buffer.from('pong received'), false);
    } else if (command === 'close' && rest !== '') {
      const at = rest.indexOf(' ');
      const code = Number(at < 0 ? rest : rest.slice(0, at));
      initiated = ws.readyState === ws.OPEN;
      ws.close(code, at < 0 ? '' : rest.slice(at + 1));
    } else {
      await sendWhole(data, isBinary);
    }
  }

  ws.on('message', (data, isBinary) => {
    turn = turn.then(() => handle(data, isBinary));
    failOn(turn);
  });
  ws.on('pong', () => {
    const waiting = pongs;
    pongs = [];
    for (const wake of waiting) wake();
  });
  ws.on('close', (code, reason) => {
    turn.then(() =>
      emit({
        event: 'closed',
        code,
        reason: reason.toString('utf8'),
        initiated,
        received,
        sent_messages: sent,
        extensions,
      }),
    );
  });
});

server.on('error', (error) => {
  emit({ event: 'error', error: String(error) });
  process.exit(1);
});
