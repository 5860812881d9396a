// What the Node.js interop scripts share: how they describe messages and closes as JSON
// lines, in the format of the Python scripts beside them (../peer.py), so that the Rust
// tests read both alike (crates/sockeye/tests/interop_node.rs).
//
// Binary payloads are described, not copied: their length and CRC-32, which the tests
// recompute.

'use strict';

const zlib = require('zlib');

// The largest message either script accepts (the tests send 1 MiB).
const MAX_SIZE = 16 * 1024 * 1024;

/** The binary payload the tests send: byte i is i % 251. */
function pattern(length) {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = i % 251;
  return bytes;
}

/** A message as JSON: the text itself, or a binary payload's length and CRC-32. */
function describe(data, isBinary) {
  if (!isBinary) return { type: 'text', text: data.toString('utf8') };
  return { type: 'binary', len: data.length, crc32: zlib.crc32(data) };
}

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

/**
 * Parses `--name value` options (each in `defaults`) and positional arguments.
 * Throws on an unknown option.
 */
function parseArgs(defaults) {
  const options = { ...defaults };
  const positional = [];
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg.startsWith('--')) {
      const name = arg.slice(2);
      if (!(name in defaults) || i + 1 >= args.length) {
        throw new Error(`unknown option or missing value: ${arg}`);
      }
      options[name] = args[++i];
    } else {
      positional.push(arg);
    }
  }
  return { options, positional };
}

/**
 * The `perMessageDeflate` option of `ws` for a --compression option: `deflate` offers
 * (client) or accepts (server) permessage-deflate with ws's default parameters,
 * compressing every message (no size threshold), `none` does not, `default` leaves ws's
 * own default (a client offers it, a server declines it).
 */
function perMessageDeflate(name, role) {
  switch (name) {
    case 'deflate':
      return { threshold: 0 };
    case 'none':
      return false;
    case 'default':
      return role === 'client';
    default:
      throw new Error(`--compression must be deflate, none or default, not ${name}`);
  }
}

/**
 * Ends the process once stdin closes (the test that runs the script ended) or after
 * `lifetime` seconds (then with an "error" line and status 2).
 */
function bounded(lifetime) {
  process.stdin.on('data', () => {});
  process.stdin.on('end', () => process.exit(0));
  setTimeout(() => {
    emit({ event: 'error', error: `still running after ${lifetime} s` });
    process.exit(2);
  }, lifetime * 1000).unref();
}

/** Reports an unexpected failure as an "error" line, then ends the process. */
function failOn(promise) {
  promise.catch((error) => {
    emit({ event: 'error', error: String(error && error.stack ? error.stack : error) });
    process.exit(1);
  });
}

module.exports = { MAX_SIZE, bounded, describe, emit, failOn, parseArgs, pattern, perMessageDeflate };
