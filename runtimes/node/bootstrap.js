'use strict';
/*
 * Stratus Node.js runtime bootstrap.
 *
 * Started by the Stratus server as `node /abs/path/bootstrap.js` with the code
 * root as working directory. It loads the function named by _HANDLER and then
 * loops over the Lambda Runtime API (2018-06-01) at AWS_LAMBDA_RUNTIME_API:
 *
 *   GET  /2018-06-01/runtime/invocation/next
 *   POST /2018-06-01/runtime/invocation/{id}/response
 *   POST /2018-06-01/runtime/invocation/{id}/error
 *   POST /2018-06-01/runtime/init/error
 *
 * Only Node built-ins are used. Supported on Node 18, 20 and 22.
 *
 * Exit codes: 0 on SIGTERM; 1 after an init failure, an uncaught exception or
 * unhandled rejection, or when the Runtime API misbehaves / goes away.
 */

const net = require('net');
const fs = require('fs');
const path = require('path');
const { format, types: utilTypes } = require('util');

const env = process.env;

// ---------------------------------------------------------------------------
// Configuration from the environment
// ---------------------------------------------------------------------------

const API_PREFIX = '/2018-06-01/runtime';
const NEXT_PATH = API_PREFIX + '/invocation/next';
const INIT_ERROR_PATH = API_PREFIX + '/init/error';

const TASK_ROOT = env.LAMBDA_TASK_ROOT || process.cwd();
const HANDLER = env._HANDLER || '';
const FUNCTION_NAME = env.AWS_LAMBDA_FUNCTION_NAME;
const FUNCTION_VERSION = env.AWS_LAMBDA_FUNCTION_VERSION;
const MEMORY_SIZE = env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE;
const LOG_GROUP = env.AWS_LAMBDA_LOG_GROUP_NAME;
const LOG_STREAM = env.AWS_LAMBDA_LOG_STREAM_NAME;

const [API_HOST, API_PORT] = parseHostPort(env.AWS_LAMBDA_RUNTIME_API || '127.0.0.1:9001');

function parseHostPort(s) {
  if (s.startsWith('http://')) s = s.slice(7);
  const slash = s.indexOf('/');
  if (slash !== -1) s = s.slice(0, slash);
  if (s.startsWith('[')) {
    // IPv6 literal: [::1]:9001
    const end = s.indexOf(']');
    const port = s.slice(end + 2);
    return [s.slice(1, end), port ? Number(port) : 80];
  }
  const colon = s.lastIndexOf(':');
  if (colon === -1) return [s, 80];
  return [s.slice(0, colon), Number(s.slice(colon + 1))];
}

// ---------------------------------------------------------------------------
// Runtime API client: one keep-alive connection, one request at a time
// ---------------------------------------------------------------------------
//
// A plain TCP socket and a small HTTP/1.1 reader instead of the `http` module:
// the protocol here is four fixed requests to one local server, and `http`'s
// client machinery (agent, parser objects, streams) cost several times the CPU
// of the exchange itself on every invocation. Responses must carry
// Content-Length (the Runtime API always sends it). The socket is unref'd while
// no request is outstanding, so a handler that leaves nothing pending lets the
// event loop drain ('beforeExit' below) exactly as with Node's own agent.

const HOST_HEADER = `Host: ${API_HOST.includes(':') ? `[${API_HOST}]` : API_HOST}:${API_PORT}\r\n`;
const HEADER_END = Buffer.from('\r\n\r\n');

let sock = null; // the connection, when open
let sockUsed = false; // a response has been read on it (it is a reused keep-alive socket)
let pending = null; // { head, body, onResponse, retried, got } of the request in flight
let inbuf = null; // bytes of a response head not yet complete

function connect() {
  sock = net.connect({ host: API_HOST, port: API_PORT, noDelay: true });
  sockUsed = false;
  inbuf = null;
  partial = null;
  const me = sock;
  sock.on('data', (chunk) => {
    if (me === sock) onData(chunk);
  });
  sock.on('error', (err) => {
    if (me === sock) onSocketGone(err.code || err.message);
  });
  sock.on('close', () => {
    if (me === sock) onSocketGone('connection closed');
  });
}

// Sends one request; `onResponse(status, headers, body)` gets the whole
// response (header names lower-cased, body a Buffer).
function request(head, body, onResponse) {
  pending = { head, body, onResponse, retried: false, got: false };
  send();
}

function send() {
  if (sock === null) connect();
  sock.ref();
  const p = pending;
  sock.write(p.body === '' ? p.head : p.head + p.body);
}

function onSocketGone(reason) {
  const p = pending;
  const reused = sockUsed;
  if (sock !== null) sock.destroy();
  sock = null;
  inbuf = null;
  partial = null;
  if (p === null) return; // idle keep-alive socket closed: reconnect on the next request
  if (!p.got && reused && !p.retried) {
    // The server closed an idle keep-alive socket before reading the request;
    // nothing was processed, so send it again on a fresh connection.
    p.retried = true;
    send();
    return;
  }
  die(`Runtime API request failed (${p.head.slice(0, p.head.indexOf(' HTTP/1.1'))}): ${reason}`);
}

// The response being read: once its head is parsed, its body is copied into a
// buffer of the announced size as bytes arrive (a 6 MB event arrives in ~100
// chunks; concatenating as they come would copy it ~50 times).
let partial = null; // { status, headers, body, filled }

function parseHead(head) {
  const lines = head.toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (m === null) die(`malformed response from the Runtime API: ${JSON.stringify(lines[0].slice(0, 200))}`);
  const headers = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const lengthText = headers['content-length'];
  const length = lengthText === undefined ? NaN : Number(lengthText);
  if (!Number.isSafeInteger(length) || length < 0) {
    die(`Runtime API response without a valid Content-Length (${lines[0]})`);
  }
  return { status: Number(m[1]), headers, body: Buffer.allocUnsafe(length), filled: 0 };
}

function onData(chunk) {
  if (pending !== null) pending.got = true;
  let data = chunk;
  while (data !== null && data.length > 0) {
    if (partial === null) {
      inbuf = inbuf === null ? data : Buffer.concat([inbuf, data]);
      const end = inbuf.indexOf(HEADER_END);
      if (end === -1) {
        if (inbuf.length > 1024 * 1024) die('Runtime API response head larger than 1 MB');
        return;
      }
      partial = parseHead(inbuf.subarray(0, end));
      data = inbuf.subarray(end + 4);
      inbuf = null;
    }
    const r = partial;
    const take = Math.min(r.body.length - r.filled, data.length);
    data.copy(r.body, r.filled, 0, take);
    r.filled += take;
    data = take < data.length ? data.subarray(take) : null;
    if (r.filled < r.body.length) return;
    partial = null;
    sockUsed = true;
    const p = pending;
    pending = null;
    if (r.headers.connection === 'close') {
      const old = sock;
      sock = null;
      data = null;
      if (old !== null) old.destroy();
    } else if (sock !== null) {
      sock.unref();
    }
    if (p === null) die(`unexpected response from the Runtime API (HTTP ${r.status})`);
    p.onResponse(r.status, r.headers, r.body);
  }
}

// ---------------------------------------------------------------------------
// Synchronous stdout/stderr writing
// ---------------------------------------------------------------------------

let sleepCell = null;

function sleepMs(ms) {
  if (sleepCell === null) sleepCell = new Int32Array(new SharedArrayBuffer(4));
  Atomics.wait(sleepCell, 0, 0, ms);
}

// Writes the whole string to fd synchronously. If the fd is non-blocking
// (e.g. user code touched process.stdout and libuv switched the pipe to
// O_NONBLOCK) partial writes and EAGAIN are handled by retrying.
function writeFully(fd, s) {
  let n;
  try {
    n = fs.writeSync(fd, s);
  } catch (e) {
    if (e.code !== 'EAGAIN') return; // EPIPE etc.: nowhere to write to
    n = 0;
  }
  if (n === s.length && n === Buffer.byteLength(s)) return;
  const buf = Buffer.from(s);
  let off = n;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e.code !== 'EAGAIN') return;
      sleepMs(1);
    }
  }
}

function runtimeWarn(msg) {
  writeFully(2, `[stratus-node-runtime] ${msg}\n`);
}

// ---------------------------------------------------------------------------
// Console patching: one line per call, Lambda text format
// ---------------------------------------------------------------------------

let currentRequestId = 'undefined';

function logLine(level, message) {
  // Newlines become \r so that one log entry stays one line.
  writeFully(
    1,
    `${new Date().toISOString()}\t${currentRequestId}\t${level}\t${message.replaceAll('\n', '\r')}\n`,
  );
}

function makeConsoleMethod(level) {
  return function (...args) {
    logLine(level, format(...args));
  };
}

console.log = makeConsoleMethod('INFO');
console.info = makeConsoleMethod('INFO');
console.warn = makeConsoleMethod('WARN');
console.error = makeConsoleMethod('ERROR');
console.debug = makeConsoleMethod('DEBUG');
console.trace = makeConsoleMethod('TRACE');

// ---------------------------------------------------------------------------
// Error helpers
// ---------------------------------------------------------------------------

function isErrorLike(e) {
  if (e === null || (typeof e !== 'object' && typeof e !== 'function')) return false;
  return e instanceof Error || utilTypes.isNativeError(e) || typeof e.message === 'string';
}

// { errorType, errorMessage, trace } as posted to the Runtime API.
function errorInfo(e) {
  try {
    if (isErrorLike(e)) {
      const name = e.name;
      const message = e.message;
      const stack = e.stack;
      return {
        errorType: name ? String(name) : 'Error',
        errorMessage: message === undefined || message === null ? '' : String(message),
        trace: typeof stack === 'string' ? stack.split('\n') : [],
      };
    }
    return { errorType: 'Error', errorMessage: String(e), trace: [] };
  } catch (_) {
    return { errorType: 'Error', errorMessage: 'error value could not be converted to a string', trace: [] };
  }
}

// Same shape Lambda uses in its log lines: errorType, errorMessage, (code and
// other enumerable properties of the error), stack as an array of lines.
function errorLogJson(info, original) {
  const obj = { errorType: info.errorType, errorMessage: info.errorMessage };
  if (isErrorLike(original) && !(original instanceof RuntimeError)) {
    try {
      if (original.code !== undefined) obj.code = original.code;
      for (const k of Object.keys(original)) {
        if (!(k in obj) && k !== 'stack') obj[k] = original[k];
      }
      obj.stack = info.trace;
      return JSON.stringify(obj);
    } catch (_) {
      // fall through to the plain shape
    }
  }
  return JSON.stringify({ errorType: info.errorType, errorMessage: info.errorMessage, stack: info.trace });
}

function logError(label, info, original) {
  logLine('ERROR', `${label} \t${errorLogJson(info, original)}`);
}

// Errors raised by the runtime itself (Runtime.*).
class RuntimeError extends Error {}

function runtimeErrorInfo(type, message, cause, keepFullCauseStack) {
  const trace = `${type}: ${message}`.split('\n');
  if (cause && typeof cause.stack === 'string') {
    const lines = cause.stack.split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (keepFullCauseStack || lines[i].startsWith('    at ')) trace.push(lines[i]);
    }
  }
  return { errorType: type, errorMessage: message, trace };
}

function safeToString(e) {
  try {
    return String(e);
  } catch (_) {
    return 'Error';
  }
}

// ---------------------------------------------------------------------------
// Runtime API client
// ---------------------------------------------------------------------------

const INIT = 0; // loading the handler
const IDLE = 1; // waiting for GET /next
const RUNNING = 2; // handler running
const POSTING = 3; // posting a result / error

let state = INIT;
let exitAfterPost = false;

function die(msg) {
  runtimeWarn(msg);
  process.exit(1);
}

// POST a body; `done` runs once the response has been read.
function post(reqPath, body, errorType, done) {
  let head = `POST ${reqPath} HTTP/1.1\r\n${HOST_HEADER}`;
  if (errorType === undefined) {
    head += 'Content-Type: application/json\r\n';
  } else {
    head += 'Content-Type: application/vnd.aws.lambda.error+json\r\n';
    head += `Lambda-Runtime-Function-Error-Type: ${sanitizeHeader(errorType)}\r\n`;
  }
  head += `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
  request(head, body, (status, _headers, text) => {
    // 413: the response was too large; the server already answers the caller
    // with Function.ResponseSizeTooLarge, as Lambda does, with nothing logged.
    if ((status < 200 || status >= 300) && status !== 413) {
      runtimeWarn(`POST ${reqPath} returned HTTP ${status}: ${text.toString('utf8', 0, 4096)}`);
    }
    done();
  });
}

function sanitizeHeader(v) {
  const s = String(v).replace(/[^\t\x20-\x7e]/g, '');
  return s || 'Error';
}

function invocationPath(id, kind) {
  return `${API_PREFIX}/invocation/${encodeURIComponent(id)}/${kind}`;
}

function errorBody(info) {
  return JSON.stringify({ errorType: info.errorType, errorMessage: info.errorMessage, trace: info.trace });
}

// ---- GET /next -------------------------------------------------------------

const NEXT_REQUEST = `GET ${NEXT_PATH} HTTP/1.1\r\n${HOST_HEADER}\r\n`;

function getNext() {
  state = IDLE;
  request(NEXT_REQUEST, '', onNext);
}

function onNext(status, headers, body) {
  if (status !== 200) {
    die(`GET ${NEXT_PATH} returned HTTP ${status}: ${body.toString('utf8', 0, 4096)}`);
  }
  invoke(headers, body.toString('utf8'));
}

// ---------------------------------------------------------------------------
// Invocation
// ---------------------------------------------------------------------------

let handler = null;
// A result handed to callback(null, result) while callbackWaitsForEmptyEventLoop
// is true: it is posted once the event loop is empty ('beforeExit' below).
let waitingResult = null; // { seq, value }
// The invocation whose handler returned a promise not yet settled.
let promiseSeq = 0;
let invocationSeq = 0;
let completed = true;
let activeRequestId = '';
let traceIdSet = env._X_AMZN_TRACE_ID !== undefined;

function parseJsonHeader(v) {
  if (v === undefined || v === '') return undefined;
  try {
    return JSON.parse(v);
  } catch (_) {
    return undefined;
  }
}

function invoke(headers, body) {
  const id = headers['lambda-runtime-aws-request-id'];
  if (!id) die('GET /next response without Lambda-Runtime-Aws-Request-Id');

  let deadline = Number(headers['lambda-runtime-deadline-ms']);
  if (!Number.isFinite(deadline)) deadline = Date.now() + 900000;

  const traceId = headers['lambda-runtime-trace-id'];
  if (traceId !== undefined) {
    env._X_AMZN_TRACE_ID = traceId;
    traceIdSet = true;
  } else if (traceIdSet) {
    delete env._X_AMZN_TRACE_ID;
    traceIdSet = false;
  }

  const seq = ++invocationSeq;
  completed = false;
  activeRequestId = id;
  currentRequestId = id;
  state = RUNNING;

  let event;
  if (body.length === 0) {
    event = {};
  } else {
    try {
      event = JSON.parse(body);
    } catch (e) {
      complete(seq, true, runtimeErrorObject('Runtime.UnmarshalError', `Unable to parse event as JSON: ${e.message}`));
      return;
    }
  }

  // As in Lambda's Node runtime: the first of callback / done / succeed / fail
  // counts. An error is posted at once; callback's result waits for the event
  // loop to empty unless context.callbackWaitsForEmptyEventLoop was set false;
  // done / succeed / fail post at once.
  let answered = false;
  const once = (fn) => (...args) => {
    if (answered || seq !== invocationSeq) return;
    answered = true;
    fn(...args);
  };
  const callback = once((err, result) => {
    if (err !== undefined && err !== null) complete(seq, true, err);
    else if (context.callbackWaitsForEmptyEventLoop) waitingResult = { seq, value: result };
    else complete(seq, false, result);
  });

  const context = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: FUNCTION_NAME,
    functionVersion: FUNCTION_VERSION,
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
    memoryLimitInMB: MEMORY_SIZE,
    awsRequestId: id,
    logGroupName: LOG_GROUP,
    logStreamName: LOG_STREAM,
    identity: parseJsonHeader(headers['lambda-runtime-cognito-identity']),
    clientContext: parseJsonHeader(headers['lambda-runtime-client-context']),
    getRemainingTimeInMillis: () => deadline - Date.now(),
    done: once((err, result) => {
      if (err !== undefined && err !== null) complete(seq, true, err);
      else complete(seq, false, result);
    }),
    succeed: once((result) => complete(seq, false, result)),
    fail: once((err) => complete(seq, true, err === undefined || err === null ? 'handled' : err)),
  };

  let ret;
  try {
    ret = handler(event, context, callback);
    if (ret !== undefined && ret !== null && typeof ret.then === 'function') {
      promiseSeq = seq;
      ret.then(
        (v) => complete(seq, false, v),
        (e) => complete(seq, true, e),
      );
    }
    // Otherwise (a handler that is not async; a plain return value is ignored,
    // as in Lambda) wait for callback / context.done|succeed|fail, or for the
    // event loop to drain (see 'beforeExit' below), which yields null.
  } catch (e) {
    complete(seq, true, e);
  }
}

function runtimeErrorObject(type, message) {
  const e = new RuntimeError(message);
  e.name = type;
  e.stack = `${type}: ${message}`;
  return e;
}

function complete(seq, isError, value) {
  if (seq !== invocationSeq || completed) return;
  completed = true;
  promiseSeq = 0;
  state = POSTING;
  const id = activeRequestId;
  if (isError) {
    const info = errorInfo(value);
    logError('Invoke Error', info, value);
    post(invocationPath(id, 'error'), errorBody(info), info.errorType, afterPost);
    return;
  }
  let body;
  try {
    body = JSON.stringify(value);
    if (body === undefined) body = 'null';
  } catch (e) {
    const info = runtimeErrorInfo(
      'Runtime.MarshalError',
      `Unable to stringify response body as json: ${e && e.message}`,
      e,
      false,
    );
    logError('Invoke Error', info, null);
    post(invocationPath(id, 'error'), errorBody(info), info.errorType, afterPost);
    return;
  }
  post(invocationPath(id, 'response'), body, undefined, afterPost);
}

function afterPost() {
  if (exitAfterPost) process.exit(1);
  getNext();
}

// ---------------------------------------------------------------------------
// Process-level failure handling
// ---------------------------------------------------------------------------

function fatal(label, info, original) {
  logError(label, info, original);
  if (exitAfterPost) return; // already shutting down
  exitAfterPost = true;
  if (state === INIT) {
    state = POSTING;
    post(INIT_ERROR_PATH, errorBody(info), info.errorType, afterPost);
  } else if (state === RUNNING && !completed) {
    completed = true;
    state = POSTING;
    post(invocationPath(activeRequestId, 'error'), errorBody(info), info.errorType, afterPost);
  } else if (state !== POSTING) {
    process.exit(1);
  }
  // POSTING: afterPost() exits once the in-flight request is done.
}

process.on('uncaughtException', (err) => {
  fatal('Uncaught Exception', errorInfo(err), err);
});

process.on('unhandledRejection', (reason) => {
  let message;
  let trace;
  if (isErrorLike(reason)) {
    const info = errorInfo(reason);
    message = info.errorMessage;
    trace = [`Runtime.UnhandledPromiseRejection: ${message}`, ...info.trace];
  } else {
    message = safeToString(reason);
    trace = [`Runtime.UnhandledPromiseRejection: ${message}`];
  }
  fatal(
    'Unhandled Promise Rejection',
    { errorType: 'Runtime.UnhandledPromiseRejection', errorMessage: message, trace },
    null,
  );
});

// What Lambda's Node.js runtime (18 and later) reports when an async handler's
// promise can never settle: the event loop emptied while it was pending.
const NODEJS_EXIT_MESSAGE =
  'The Lambda runtime client detected an unexpected Node.js exit code. This is most commonly caused by a Promise that was never settled. For more information, see https://nodejs.org/docs/latest/api/process.html#exit-codes';

// The event loop drained. While a handler is running this posts the result it
// gave callback(); an async handler whose promise is still pending (it never
// can settle now) fails with Runtime.NodeJsExit; a callback-style handler that
// gave no result answers null, as Lambda does. On Lambda the Node.js process
// ends after a Runtime.NodeJsExit; here the environment goes on to the next
// invocation: exiting after the post would race the next invocation the
// scheduler hands this environment, which would then fail as Runtime.ExitError.
process.on('beforeExit', () => {
  if (state === RUNNING && !completed) {
    const waiting = waitingResult;
    waitingResult = null;
    if (waiting !== null && waiting.seq === invocationSeq) {
      complete(invocationSeq, false, waiting.value);
    } else if (promiseSeq === invocationSeq) {
      complete(invocationSeq, true, runtimeErrorObject('Runtime.NodeJsExit', NODEJS_EXIT_MESSAGE));
    } else {
      complete(invocationSeq, false, null);
    }
  } else if (state === INIT && !exitAfterPost) {
    initFailed(
      runtimeErrorInfo(
        'Runtime.InitError',
        'Handler module did not finish loading (event loop drained, e.g. unsettled top-level await)',
        null,
        false,
      ),
      null,
    );
  }
});

process.on('SIGTERM', () => process.exit(0));

// ---------------------------------------------------------------------------
// Handler loading
// ---------------------------------------------------------------------------

function initFailed(info, original) {
  // Lambda logs init failures as "Uncaught Exception" with request id undefined.
  fatal('Uncaught Exception', info, original);
}

function isFile(p) {
  try {
    const st = fs.statSync(p, { throwIfNoEntry: false });
    return st !== undefined && st.isFile();
  } catch (_) {
    return false;
  }
}

function packageTypeIsModule(file) {
  let dir = path.dirname(file);
  for (;;) {
    let text;
    try {
      text = fs.readFileSync(path.join(dir, 'package.json'), 'utf8');
    } catch (_) {
      text = undefined;
    }
    if (text !== undefined) {
      try {
        const pj = JSON.parse(text);
        return pj !== null && pj.type === 'module';
      } catch (_) {
        return false;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return false;
    dir = parent;
  }
}

function isEsmFile(file) {
  if (file.endsWith('.mjs')) return true;
  if (file.endsWith('.cjs')) return false;
  if (file.endsWith('.js')) return packageTypeIsModule(file);
  return false;
}

function resolveModuleFile(base, moduleName, moduleDir) {
  if (isFile(base + '.js')) return base + '.js';
  if (isFile(base + '.mjs')) return base + '.mjs';
  if (isFile(base + '.cjs')) return base + '.cjs';
  // Directory (package.json main / index.js), extensionless file, .json, .node …
  try {
    return require.resolve(base);
  } catch (e) {
    if (e.code !== 'MODULE_NOT_FOUND') throw e;
  }
  // Finally a package in node_modules, like Lambda. Its error message
  // ("Cannot find module '<module>'") is what gets reported.
  return require.resolve(moduleName, { paths: [moduleDir, TASK_ROOT] });
}

// Loads a resolved file: ESM via import(), CommonJS via require() (falling
// back to import() when require() refuses an ES module).
function loadFile(file, propPath) {
  if (isEsmFile(file)) {
    importModule(file, propPath);
    return;
  }
  let mod;
  try {
    mod = require(file);
  } catch (e) {
    if (e && (e.code === 'ERR_REQUIRE_ESM' || e.code === 'ERR_REQUIRE_ASYNC_MODULE')) {
      importModule(file, propPath);
      return;
    }
    throw e;
  }
  onModuleLoaded(mod, propPath);
}

// ES modules do not read NODE_PATH, where the server puts the AWS SDK it provides
// (after the function's own node_modules). Before the first import of an ES
// module handler, a resolve hook (module.register: Node 18.19+, 20.6+) retries a
// bare specifier the function's own node_modules do not have against those
// directories, so `import { LambdaClient } from "@aws-sdk/client-lambda"` works
// as in CommonJS. Only ESM handlers pay for the hook's loader thread.
let sdkResolverRegistered = false;
function registerSdkResolver() {
  if (sdkResolverRegistered) return;
  sdkResolverRegistered = true;
  const dirs = (process.env.NODE_PATH || '').split(':').filter((d) => d.startsWith('/'));
  const mod = require('module');
  if (dirs.length === 0 || typeof mod.register !== 'function') return;
  const url = require('url');
  const bases = dirs.map((d) => url.pathToFileURL(d.endsWith('/') ? d : d + '/').href);
  const hook =
    'const bases = ' + JSON.stringify(bases) + ';\n' +
    'export async function resolve(spec, ctx, next) {\n' +
    '  try { return await next(spec, ctx); } catch (e) {\n' +
    '    const bare = !/^[./]/.test(spec) && !/^[a-z][a-z0-9+.-]*:/i.test(spec);\n' +
    '    if (!e || e.code !== "ERR_MODULE_NOT_FOUND" || !bare) throw e;\n' +
    '    for (const parentURL of bases) {\n' +
    '      try { return await next(spec, { ...ctx, parentURL }); } catch (_) {}\n' +
    '    }\n' +
    '    throw e;\n' +
    '  }\n' +
    '}\n';
  try {
    mod.register('data:text/javascript,' + encodeURIComponent(hook));
  } catch (_) {
    // Without the hook an ES module handler bundles its SDK, as before.
  }
}

function importModule(file, propPath) {
  registerSdkResolver();
  import(require('url').pathToFileURL(file).href).then(
    (ns) => onModuleLoaded(ns, propPath),
    onModuleLoadError,
  );
}

function classifyLoadError(e) {
  if (e instanceof SyntaxError) {
    return runtimeErrorInfo('Runtime.UserCodeSyntaxError', safeToString(e), e, true);
  }
  if (e && (e.code === 'MODULE_NOT_FOUND' || e.code === 'ERR_MODULE_NOT_FOUND')) {
    return runtimeErrorInfo('Runtime.ImportModuleError', safeToString(e), e, false);
  }
  return errorInfo(e);
}

function onModuleLoaded(mod, propPath) {
  if (exitAfterPost) return; // a fatal error happened while loading
  let fn = mod;
  try {
    const keys = propPath.split('.');
    for (let i = 0; i < keys.length && fn !== undefined && fn !== null; i++) fn = fn[keys[i]];
  } catch (e) {
    initFailed(errorInfo(e), e);
    return;
  }
  if (typeof fn !== 'function') {
    initFailed(
      runtimeErrorInfo('Runtime.HandlerNotFound', `${HANDLER} is undefined or not exported`, null, false),
      null,
    );
    return;
  }
  handler = fn;
  getNext();
}

function onModuleLoadError(e) {
  if (exitAfterPost) return;
  initFailed(classifyLoadError(e), e);
}

function init() {
  // "dir/sub/module.a.b": module path is everything up to the first '.' after
  // the last '/', the rest is a property path inside the module.
  const base = path.basename(HANDLER);
  const moduleRoot = HANDLER.slice(0, HANDLER.length - base.length);
  const dot = base.indexOf('.');
  if (dot <= 0 || dot === base.length - 1) {
    initFailed(runtimeErrorInfo('Runtime.MalformedHandlerName', 'Bad handler', null, false), null);
    return;
  }
  const moduleName = base.slice(0, dot);
  const propPath = base.slice(dot + 1);
  const moduleDir = path.resolve(TASK_ROOT, moduleRoot);
  const moduleBase = path.join(moduleDir, moduleName);

  try {
    loadFile(resolveModuleFile(moduleBase, moduleName, moduleDir), propPath);
  } catch (e) {
    onModuleLoadError(e);
  }
}

init();
