// A browser's WebSocket as a client, for the interop tests: headless Chromium, driven
// through playwright-core, runs the WebSocket API of a blank page, and this script prints
// what the page sees as the JSON lines of client.cjs.
//
//     browser_client.cjs [--protocols A,B] [--compression deflate|default]
//                        [--certificates verified|any] [--lifetime SECONDS] URL ACTION...
//
// It opens `new WebSocket(URL, protocols)` (a browser always offers permessage-deflate,
// so --compression takes only the values that mean that), prints
// {"event": "open", "subprotocol": ..., "extensions": ...} (the page's `protocol` and
// `extensions`: "" for none), then runs the actions in order:
//
//     text:STRING          send a text message
//     binary:N             send N bytes of the test pattern (byte i is i % 251)
//     recv:N               take the next N messages, waiting for those not yet in
//     close:CODE:REASON    close with CODE (1000 or 3000-4999, what a page may send)
//
// Every message received is printed as {"event": "message", ...} as it arrives, binary
// ones by length and CRC-32 (computed in the page). After the actions it waits for the
// close event, then prints {"event": "closed", "code": ..., "reason": ...,
// "was_clean": ..., "initiated": ..., "opened": ...} and exits. A connection that fails
// before it opens prints no "open" line, only "closed" with "opened": false.
//
// For wss:// URLs, --certificates any (Chromium's --ignore-certificate-errors) takes a
// server certificate that no root Chromium knows vouches for, such as one made at test
// time; the default, verified, does not.
//
// Chromium is $CHROMIUM, or /usr/bin/chromium. It gives up after --lifetime seconds
// (default 30), or when stdin closes.

'use strict';

const { chromium } = require('playwright-core');
const { bounded, emit, failOn, parseArgs } = require('./peer.cjs');

const { options, positional } = parseArgs({
  protocols: '',
  compression: 'default',
  certificates: 'verified',
  lifetime: '30',
});
const [url, ...actions] = positional;
if (options.compression === 'none') {
  throw new Error('a browser always offers permessage-deflate: --compression none cannot be');
}
if (!['verified', 'any'].includes(options.certificates)) {
  throw new Error(`--certificates must be verified or any, not ${options.certificates}`);
}
bounded(Number(options.lifetime));

// Runs in the page: opens the WebSocket, reports through `emit` (bound to this script's
// `emit`), and runs the actions.
async function page({ url, protocols, actions }) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let crc = n;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
    return crc >>> 0;
  });
  const crc32 = (bytes) => {
    let crc = 0xffffffff;
    for (const byte of bytes) crc = crcTable[(crc ^ byte) & 0xff] ^ (crc >>> 8);
    return (crc ^ 0xffffffff) >>> 0;
  };
  const pattern = (length) => Uint8Array.from({ length }, (_, i) => i % 251);

  const ws = protocols.length ? new WebSocket(url, protocols) : new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  let opened = false;
  let initiated = false;
  let arrived = 0;
  let taken = 0;
  let waiters = [];
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
  // The page's emits are awaited in order, so that the lines come out in order.
  let reported = Promise.resolve();
  const report = (event) => {
    reported = reported.then(() => window.emit(event));
    return reported;
  };

  const closed = new Promise((resolve) => {
    ws.onclose = (event) => {
      resolve({ code: event.code, reason: event.reason, was_clean: event.wasClean });
      wakeAll();
    };
  });
  ws.onmessage = (event) => {
    if (typeof event.data === 'string') {
      report({ event: 'message', type: 'text', text: event.data });
    } else {
      const bytes = new Uint8Array(event.data);
      report({ event: 'message', type: 'binary', len: bytes.length, crc32: crc32(bytes) });
    }
    arrived += 1;
    wakeAll();
  };
  const open = new Promise((resolve) => {
    ws.onopen = () => {
      opened = true;
      resolve(true);
    };
    closed.then(() => resolve(false));
  });

  if (await open) {
    await report({ event: 'open', subprotocol: ws.protocol, extensions: ws.extensions });
    for (const action of actions) {
      const at = action.indexOf(':');
      const kind = at < 0 ? action : action.slice(0, at);
      const argument = at < 0 ? '' : action.slice(at + 1);
      if (kind === 'text') {
        ws.send(argument);
      } else if (kind === 'binary') {
        ws.send(pattern(Number(argument)));
      } else if (kind === 'recv') {
        taken += Number(argument);
        await until(() => arrived >= taken || ws.readyState === WebSocket.CLOSED);
        if (arrived < taken) throw new Error(`the connection ended before message ${taken}`);
      } else if (kind === 'close') {
        const [code, ...reason] = argument.split(':');
        initiated = ws.readyState === WebSocket.OPEN;
        ws.close(Number(code), reason.join(':'));
      } else {
        throw new Error(`unknown action ${action}`);
      }
    }
  }
  const end = await closed;
  await report({ event: 'closed', ...end, initiated, opened });
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // No sandbox (the tests may run as root), and none of the background connections
    // a browser makes at start, which a machine without Internet access refuses.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...(options.certificates === 'any' ? ['--ignore-certificate-errors'] : []),
    ],
  });
  const context = await browser.newContext();
  const tab = await context.newPage();
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  await tab.exposeFunction('emit', (event) => {
    emit(event);
    if (event.event === 'closed') done();
  });
  const protocols = options.protocols ? options.protocols.split(',') : [];
  await Promise.all([tab.evaluate(page, { url, protocols, actions }), finished]);
  await browser.close();
  process.exit(0);
}

failOn(main());
