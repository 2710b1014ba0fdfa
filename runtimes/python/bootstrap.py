"""Stratus Python runtime bootstrap.

Implements the Lambda Runtime API (2018-06-01) client loop for Python
handlers, behaving like the AWS Lambda Python runtime as seen by user code.

Run as:   <python3> -u /abs/path/bootstrap.py      (the -u is optional)
with cwd = code root and the Lambda environment variables set
(AWS_LAMBDA_RUNTIME_API, _HANDLER, LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_*, ...).

Exit codes (the same as the Node.js bootstrap's):
  0  SIGTERM received (stdout/stderr are flushed first, nothing is printed)
  1  init failure (already reported via POST /runtime/init/error), or the
     Runtime API unusable (AWS_LAMBDA_RUNTIME_API unset, connection lost,
     malformed response, unexpected status on /next); reason on stderr
  n  whatever the user's code passes to sys.exit(n)

Standard library only; supports CPython 3.9 - 3.13.
"""

import os
import sys
import time
import json
import socket
import logging

_THIS_FILE = __file__
_API = "/2018-06-01/runtime"
_NEXT = _API + "/invocation/next"
_JSON_HEADERS = {"Content-Type": "application/json"}
_ERROR_CT = "application/vnd.aws.lambda.error+json"

EXIT_INIT_ERROR = 1
EXIT_RUNTIME_API = 1

# Request id of the invocation in progress ("" during init).  Read by the
# log filter, so log records from any thread carry the current id.
_request_id = ""


# --------------------------------------------------------------------------
# Context objects
# --------------------------------------------------------------------------

class CognitoIdentity(object):
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, identity_id=None, pool_id=None):
        self.cognito_identity_id = identity_id
        self.cognito_identity_pool_id = pool_id

    def __repr__(self):
        return "CognitoIdentity([cognito_identity_id=%s,cognito_identity_pool_id=%s])" % (
            self.cognito_identity_id, self.cognito_identity_pool_id)


class Client(object):
    __slots__ = ("installation_id", "app_title", "app_version_name",
                 "app_version_code", "app_package_name")

    def __init__(self, data):
        get = data.get
        self.installation_id = get("installation_id")
        self.app_title = get("app_title")
        self.app_version_name = get("app_version_name")
        self.app_version_code = get("app_version_code")
        self.app_package_name = get("app_package_name")

    def __repr__(self):
        return ("Client([installation_id=%s,app_title=%s,app_version_name=%s,"
                "app_version_code=%s,app_package_name=%s])" % (
                    self.installation_id, self.app_title, self.app_version_name,
                    self.app_version_code, self.app_package_name))


class ClientContext(object):
    __slots__ = ("client", "custom", "env")

    def __init__(self, data):
        client = data.get("client")
        self.client = Client(client) if isinstance(client, dict) else None
        self.custom = data.get("custom")
        self.env = data.get("env")

    def __repr__(self):
        return "ClientContext([client=%r,custom=%r,env=%r])" % (
            self.client, self.custom, self.env)


def _parse_identity(raw):
    if raw:
        try:
            data = json.loads(raw)
            if isinstance(data, dict):
                return CognitoIdentity(data.get("cognitoIdentityId"),
                                       data.get("cognitoIdentityPoolId"))
        except ValueError:
            pass
    return CognitoIdentity()


def _parse_client_context(raw):
    if raw:
        try:
            data = json.loads(raw)
            if isinstance(data, dict):
                return ClientContext(data)
        except ValueError:
            pass
    return None


def _int_env(name, default=None):
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return default


class LambdaContext(object):
    # Per-function values live on the class (set once in _init_context_class);
    # per-invocation values are set on the instance.
    function_name = None
    function_version = None
    memory_limit_in_mb = None
    log_group_name = None
    log_stream_name = None

    def __init__(self, request_id, deadline_ms, function_arn, identity,
                 client_context, tenant_id=None):
        self.aws_request_id = request_id
        self.invoked_function_arn = function_arn
        self.identity = identity
        self.client_context = client_context
        self.tenant_id = tenant_id
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        remaining = self._deadline_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def __repr__(self):
        return ("LambdaContext([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,"
                "function_name=%s,memory_limit_in_mb=%s,function_version=%s,"
                "invoked_function_arn=%s,client_context=%r,identity=%r,tenant_id=%s])" % (
                    self.aws_request_id, self.log_group_name, self.log_stream_name,
                    self.function_name, self.memory_limit_in_mb, self.function_version,
                    self.invoked_function_arn, self.client_context, self.identity,
                    self.tenant_id))


def _init_context_class():
    env = os.environ
    LambdaContext.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
    LambdaContext.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
    LambdaContext.memory_limit_in_mb = _int_env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    LambdaContext.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
    LambdaContext.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")


# --------------------------------------------------------------------------
# Output / logging
# --------------------------------------------------------------------------

def _flush_std():
    """Push everything written so far into the stdout/stderr pipes."""
    seen = []
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is None or any(stream is s for s in seen):
            continue
        seen.append(stream)
        try:
            stream.flush()
        except Exception:
            pass


def _setup_stdio():
    # Without -u a piped stdout is block-buffered; make it flush per line so
    # output reaches the pipe promptly, as it does under -u.
    # (-u / PYTHONUNBUFFERED show up as write_through on the text layer.)
    for stream in (sys.stdout, sys.stderr):
        try:
            if not stream.write_through and not stream.line_buffering:
                stream.reconfigure(line_buffering=True)
        except Exception:
            pass


class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = _request_id
        return True


class LambdaLoggerHandler(logging.Handler):
    """One stdout line per record; embedded newlines become '\\r'."""

    def emit(self, record):
        try:
            msg = self.format(record)
            sys.stdout.write(msg.replace("\n", "\r") + "\n")
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


_LOG_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
    "CRITICAL": logging.CRITICAL,
}


def _setup_logging():
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler = LambdaLoggerHandler()
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = _LOG_LEVELS.get(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").strip().upper())
    if level is not None:
        root.setLevel(level)
    # else: keep Python's default root level (WARNING), as Lambda does.


def _log_error(error_type, message, stack):
    """Print an error report as a single stdout line, like Lambda does."""
    head = "[ERROR]"
    if error_type:
        head += " " + error_type
    if message:
        head += (": " if error_type else " ") + message
    lines = [head]
    if stack is not None:
        lines.append("Traceback (most recent call last):")
        for entry in stack:
            if entry:
                lines.extend(entry.splitlines())
            else:
                lines.append("")
    text = "\r".join(lines).replace("\r\n", "\r").replace("\n", "\r")
    try:
        sys.stdout.write(text + "\n")
    except Exception:
        pass


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

class _Fault(Exception):
    def __init__(self, error_type, message, stack=None):
        Exception.__init__(self, message)
        self.error_type = error_type
        self.message = message
        self.stack = stack if stack is not None else []


def _safe_str(value):
    try:
        return str(value)
    except Exception:
        return "<unprintable %s object>" % type(value).__name__


def _is_runtime_frame(filename):
    return (filename == _THIS_FILE
            or filename.startswith("<frozen importlib")
            or filename == _IMPORTLIB_INIT)


_IMPORTLIB_INIT = None


def _format_stack(tb, init=False):
    """traceback.format_list() entries for the user's frames only."""
    import traceback
    if init:
        frames = [f for f in traceback.extract_tb(tb) if not _is_runtime_frame(f.filename)]
    else:
        while tb is not None and tb.tb_frame.f_code.co_filename == _THIS_FILE:
            tb = tb.tb_next
        frames = traceback.extract_tb(tb)
    return traceback.format_list(frames)


def _exception_fault(exc, init=False):
    try:
        stack = _format_stack(exc.__traceback__, init)
    except Exception:
        stack = []
    return _Fault(type(exc).__name__, _safe_str(exc), stack)


def _error_body(fault, request_id):
    return json.dumps({
        "errorMessage": fault.message or "",
        "errorType": fault.error_type or "",
        "requestId": request_id or "",
        "stackTrace": fault.stack,
    }).encode("utf-8")


def _header_value(value):
    # Header values must be latin-1 and single-line.
    value = value.encode("ascii", "backslashreplace").decode("ascii")
    return value.replace("\r", " ").replace("\n", " ")


# --------------------------------------------------------------------------
# Runtime API client: one persistent HTTP/1.1 connection
# --------------------------------------------------------------------------
#
# A plain socket and a small HTTP/1.1 reader rather than http.client: the
# protocol is four fixed requests to one local server, and http.client's
# message parsing (email.parser) cost more than the exchange itself on every
# invocation, and ~15 ms of imports at start-up. Responses must carry
# Content-Length (the Runtime API always sends it).
#
# Retries follow the Node.js bootstrap exactly: a request is sent again (once,
# on a fresh connection) only when it went out on a reused keep-alive
# connection and not a byte of answer came back -- the server closed the idle
# connection before reading it, so nothing was processed. Any other failure
# (refused connection, a connection lost mid-answer, a fresh connection
# closed) ends the runtime: the request may have been processed.

class _RuntimeAPIError(Exception):
    pass


def _split_address(address):
    """'host:port' or '[v6]:port' -> (host as bytes, port)."""
    if address.startswith("http://"):
        address = address[len("http://"):]
    address = address.split("/", 1)[0]
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "80"
    else:
        host, sep, port = address.rpartition(":")
        if not sep:
            host, port = address, "80"
    # Bytes: a str host makes getaddrinfo() load the idna codec (+stringprep,
    # unicodedata), ~1 ms of start-up for nothing.
    return host.encode("ascii", "replace"), int(port)


class _RuntimeAPI(object):
    def __init__(self, address):
        self._addr = _split_address(address)
        host, port = self._addr
        host = host.decode("ascii")
        self._host = "Host: %s:%d\r\n" % ("[%s]" % host if ":" in host else host, port)
        self._sock = None
        self._buf = b""
        # A whole response has been read on this connection (it is a reused
        # keep-alive connection), and some answer to the current request came.
        self._used = False
        self._got = False

    def _open(self):
        sock = socket.create_connection(self._addr)
        # Blocking, whatever socket.setdefaulttimeout() user code set: the
        # /next long poll must never time out.
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._buf = b""
        self._used = False

    def _close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self._buf = b""

    def _recv(self):
        data = self._sock.recv(65536)
        if not data:
            raise OSError("the Runtime API closed the connection")
        self._got = True
        self._buf += data

    def _exchange(self, request):
        """Sends one request; returns (status, headers, body), names lower-cased."""
        if self._sock is None:
            self._open()
        self._sock.sendall(request)
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end != -1:
                break
            if len(self._buf) > 1024 * 1024:
                raise _RuntimeAPIError("Runtime API response head larger than 1 MB")
            self._recv()
        lines = self._buf[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise _RuntimeAPIError("malformed response from the Runtime API: %r" % lines[0][:200])
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        length = headers.get("content-length", "")
        if not length.isdigit():
            raise _RuntimeAPIError(
                "Runtime API response without a valid Content-Length: %r" % lines[0][:200])
        # The body goes straight into a buffer of its announced size (a 6 MB
        # event arrives in ~100 reads; appending to bytes would copy it ~50 times).
        body = bytearray(int(length))
        view = memoryview(body)
        have = min(len(body), len(self._buf) - end - 4)
        view[:have] = self._buf[end + 4:end + 4 + have]
        self._buf = self._buf[end + 4 + have:]
        while have < len(body):
            n = self._sock.recv_into(view[have:])
            if not n:
                raise OSError("the Runtime API closed the connection")
            have += n
        body = bytes(body)
        self._used = True
        if headers.get("connection", "").lower() == "close":
            self._close()
        return int(parts[1]), headers, body

    def _request(self, method, path, body=b"", headers=_JSON_HEADERS):
        head = [method, " ", path, " HTTP/1.1\r\n", self._host]
        for name, value in headers.items():
            head.extend((name, ": ", value, "\r\n"))
        if body or method != "GET":
            head.extend(("Content-Length: ", str(len(body)), "\r\n"))
        head.append("\r\n")
        request = "".join(head).encode("latin-1", "replace") + body
        retried = False
        while True:
            reused = self._sock is not None and self._used
            self._got = False
            try:
                return self._exchange(request)
            except OSError as e:
                got = self._got
                self._close()
                if got or not reused or retried:
                    raise _RuntimeAPIError("Runtime API request failed (%s %s): %s: %s" % (
                        method, path, type(e).__name__, e))
            # An idle keep-alive connection the server closed before reading
            # the request: send it again on a fresh connection.
            retried = True

    def next(self):
        status, headers, body = self._request("GET", _NEXT, b"", {})
        if status != 200:
            raise _RuntimeAPIError("GET %s returned %d: %r" % (_NEXT, status, body[:500]))
        return headers, body

    def _post(self, path, body, headers):
        status, _, data = self._request("POST", path, body, headers)
        # 413: the response was too large; the server already answers the caller
        # with Function.ResponseSizeTooLarge, as Lambda does, with nothing logged.
        if not 200 <= status < 300 and status != 413:
            _warn("POST %s returned %d: %r" % (path, status, data[:500]))

    def post_response(self, request_id, payload):
        self._post(_API + "/invocation/" + _path_segment(request_id) + "/response",
                   payload, _JSON_HEADERS)

    def post_error(self, request_id, fault):
        self._post(_API + "/invocation/" + _path_segment(request_id) + "/error",
                   _error_body(fault, request_id),
                   {"Content-Type": _ERROR_CT,
                    "Lambda-Runtime-Function-Error-Type": _header_value(fault.error_type)})

    def post_init_error(self, fault):
        self._post(_API + "/init/error",
                   _error_body(fault, ""),
                   {"Content-Type": _ERROR_CT,
                    "Lambda-Runtime-Function-Error-Type": _header_value(fault.error_type)})


# What encodeURIComponent (the Node.js bootstrap) leaves as it is.
_SEGMENT_SAFE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()")


def _path_segment(text):
    """`text` percent-encoded as one URL path segment, as encodeURIComponent does."""
    if all(c in _SEGMENT_SAFE for c in text):
        return text
    return "".join(c if c in _SEGMENT_SAFE else
                   "".join("%%%02X" % b for b in c.encode("utf-8", "surrogatepass"))
                   for c in text)


def _warn(msg):
    try:
        sys.stderr.write("stratus-python-runtime: " + msg + "\n")
        sys.stderr.flush()
    except Exception:
        pass


def _fatal(msg, code):
    _warn(msg)
    _flush_std()
    os._exit(code)


# --------------------------------------------------------------------------
# Handler loading
# --------------------------------------------------------------------------

def _load_handler(spec):
    try:
        modname, fname = spec.rsplit(".", 1)
    except ValueError as e:
        raise _Fault("Runtime.MalformedHandlerName", "Bad handler '%s': %s" % (spec, e))

    if modname.split(".")[0] in sys.builtin_module_names:
        raise _Fault("Runtime.BuiltInModuleConflict",
                     "Cannot use built-in module %s as a handler module" % modname)

    import importlib
    global _IMPORTLIB_INIT
    _IMPORTLIB_INIT = getattr(importlib, "__file__", None)
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise _Fault("Runtime.ImportModuleError",
                     "Unable to import module '%s': %s" % (modname, _safe_str(e)))
    except SyntaxError as e:
        text = (e.text or "").strip()
        raise _Fault("Runtime.UserCodeSyntaxError",
                     "Syntax error in module '%s': %s" % (modname, _safe_str(e)),
                     ['  File "%s", line %s\n    %s\n' % (e.filename, e.lineno, text)])
    except Exception as e:
        raise _exception_fault(e, init=True)

    try:
        return getattr(module, fname)
    except AttributeError:
        raise _Fault("Runtime.HandlerNotFound",
                     "Handler '%s' missing on module '%s'" % (fname, modname))


# --------------------------------------------------------------------------
# Invocation loop
# --------------------------------------------------------------------------

def _json_default(obj):
    dec = sys.modules.get("decimal")
    if dec is not None and isinstance(obj, dec.Decimal):
        if obj.is_finite() and obj == obj.to_integral_value():
            return int(obj)
        return float(obj)
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


def _serve(api, handler):
    global _request_id
    environ = os.environ
    loads = json.loads
    encode = json.JSONEncoder(default=_json_default).encode
    Context = LambdaContext
    parse_identity = _parse_identity
    parse_client_context = _parse_client_context
    flush = _flush_std

    while True:
        headers, body = api.next()
        get = headers.get
        request_id = get("lambda-runtime-aws-request-id", "")
        if not request_id:
            raise _RuntimeAPIError("GET %s response without Lambda-Runtime-Aws-Request-Id" % _NEXT)
        _request_id = request_id

        trace_id = get("lambda-runtime-trace-id")
        if trace_id:
            environ["_X_AMZN_TRACE_ID"] = trace_id
        else:
            environ.pop("_X_AMZN_TRACE_ID", None)

        try:
            deadline = int(get("lambda-runtime-deadline-ms", 0))
        except ValueError:
            deadline = 0
        context = Context(
            request_id, deadline,
            get("lambda-runtime-invoked-function-arn"),
            parse_identity(get("lambda-runtime-cognito-identity")),
            parse_client_context(get("lambda-runtime-client-context")),
            get("lambda-runtime-aws-tenant-id"))

        fault = None
        try:
            event = loads(body)
        except Exception as e:
            fault = _Fault("Runtime.UnmarshalError",
                           "Unable to unmarshal input: %s" % _safe_str(e))
        else:
            try:
                result = handler(event, context)
            except Exception as e:
                fault = _exception_fault(e)
            else:
                try:
                    payload = encode(result).encode("utf-8")
                except Exception as e:
                    fault = _Fault("Runtime.MarshalError",
                                   "Unable to marshal response: %s" % _safe_str(e))
            event = result = None

        if fault is None:
            flush()
            api.post_response(request_id, payload)
        else:
            _log_error(fault.error_type, fault.message, fault.stack)
            flush()
            api.post_error(request_id, fault)
        fault = payload = context = None


def _on_sigterm(signum, frame):
    _flush_std()
    os._exit(0)


def main():
    import signal
    signal.signal(signal.SIGTERM, _on_sigterm)

    _setup_stdio()
    env = os.environ

    address = env.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        _fatal("AWS_LAMBDA_RUNTIME_API is not set", EXIT_RUNTIME_API)

    task_root = env.get("LAMBDA_TASK_ROOT") or os.getcwd()
    # Drop the bootstrap's own directory (sys.path[0]) so user code cannot
    # import runtime files, then put the task root first.
    if sys.path:
        here = os.path.dirname(os.path.realpath(_THIS_FILE))
        if sys.path[0] and os.path.realpath(sys.path[0]) == here and here != task_root:
            del sys.path[0]
    sys.path.insert(0, task_root)

    _setup_logging()
    _init_context_class()

    # Connected on the first request, after the handler is loaded, as the
    # Node.js bootstrap does.
    api = _RuntimeAPI(address)
    try:
        try:
            handler = _load_handler(env.get("_HANDLER", ""))
        except _Fault as fault:
            _log_error(fault.error_type, fault.message, fault.stack)
            _flush_std()
            try:
                api.post_init_error(fault)
            except _RuntimeAPIError as e:
                _warn(str(e))
            _flush_std()
            os._exit(EXIT_INIT_ERROR)
        _serve(api, handler)
    except _RuntimeAPIError as e:
        _fatal(str(e), EXIT_RUNTIME_API)


if __name__ == "__main__":
    main()
