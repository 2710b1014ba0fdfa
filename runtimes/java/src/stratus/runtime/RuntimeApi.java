package stratus.runtime;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

/**
 * The Lambda Runtime API (2018-06-01) over one keep-alive HTTP/1.1 connection, one
 * request at a time: plain sockets rather than {@code java.net.http}, whose client
 * costs tens of milliseconds of class loading and threads at every cold start for
 * four fixed requests to a local server. Responses must carry Content-Length (the
 * Runtime API always sends it).
 */
final class RuntimeApi {
    private static final String PREFIX = "/2018-06-01/runtime";

    /** One HTTP response. */
    static final class Response {
        final int status;
        final Map<String, String> headers;
        final byte[] body;

        Response(int status, Map<String, String> headers, byte[] body) {
            this.status = status;
            this.headers = headers;
            this.body = body;
        }

        String header(String name) {
            return headers.get(name);
        }
    }

    private final String host;
    private final int port;
    private final String hostHeader;
    private Socket socket;
    private InputStream in;
    private OutputStream out;
    private boolean reused;

    RuntimeApi(String address) {
        String a = address;
        if (a.startsWith("http://")) {
            a = a.substring(7);
        }
        int slash = a.indexOf('/');
        if (slash >= 0) {
            a = a.substring(0, slash);
        }
        String h;
        int p;
        if (a.startsWith("[")) {
            int end = a.indexOf(']');
            h = a.substring(1, end);
            p = end + 2 <= a.length() - 1 ? Integer.parseInt(a.substring(end + 2)) : 80;
        } else {
            int colon = a.lastIndexOf(':');
            h = colon < 0 ? a : a.substring(0, colon);
            p = colon < 0 ? 80 : Integer.parseInt(a.substring(colon + 1));
        }
        this.host = h;
        this.port = p;
        this.hostHeader = "Host: " + (h.contains(":") ? "[" + h + "]" : h) + ":" + p + "\r\n";
    }

    /** {@code GET /invocation/next}: blocks until the next event. */
    Response next() throws IOException {
        return request("GET " + PREFIX + "/invocation/next HTTP/1.1\r\n" + hostHeader + "\r\n", null);
    }

    /** {@code POST /invocation/{id}/response}. */
    Response respond(String requestId, byte[] body) throws IOException {
        return post(PREFIX + "/invocation/" + requestId + "/response", body, null);
    }

    /** {@code POST /invocation/{id}/error}. */
    Response error(String requestId, String errorType, byte[] body) throws IOException {
        return post(PREFIX + "/invocation/" + requestId + "/error", body, errorType);
    }

    /** {@code POST /init/error}. */
    Response initError(String errorType, byte[] body) throws IOException {
        return post(PREFIX + "/init/error", body, errorType);
    }

    private Response post(String path, byte[] body, String errorType) throws IOException {
        StringBuilder head = new StringBuilder(256);
        head.append("POST ").append(path).append(" HTTP/1.1\r\n").append(hostHeader);
        if (errorType == null) {
            head.append("Content-Type: application/json\r\n");
        } else {
            head.append("Content-Type: application/vnd.aws.lambda.error+json\r\n");
            head.append("Lambda-Runtime-Function-Error-Type: ").append(headerSafe(errorType)).append("\r\n");
        }
        head.append("Content-Length: ").append(body.length).append("\r\n\r\n");
        return request(head.toString(), body);
    }

    private static String headerSafe(String v) {
        StringBuilder b = new StringBuilder(v.length());
        for (int k = 0; k < v.length(); k++) {
            char c = v.charAt(k);
            if (c == '\t' || (c >= 0x20 && c <= 0x7e)) {
                b.append(c);
            }
        }
        return b.length() == 0 ? "Error" : b.toString();
    }

    private Response request(String head, byte[] body) throws IOException {
        boolean retried = false;
        while (true) {
            if (socket == null) {
                connect();
            }
            boolean wasReused = reused;
            try {
                out.write(head.getBytes(StandardCharsets.ISO_8859_1));
                if (body != null && body.length > 0) {
                    out.write(body);
                }
                out.flush();
                Response r = read();
                reused = true;
                if ("close".equalsIgnoreCase(r.header("connection"))) {
                    close();
                }
                return r;
            } catch (NoResponse e) {
                close();
                // The server closed an idle keep-alive socket before reading the
                // request: nothing was processed, so send it again once.
                if (!wasReused || retried) {
                    throw new IOException("the Runtime API closed the connection", e);
                }
                retried = true;
            } catch (IOException e) {
                close();
                if (!wasReused || retried) {
                    throw e;
                }
                retried = true;
            }
        }
    }

    /** The connection ended before any byte of the response. */
    private static final class NoResponse extends IOException {
        private static final long serialVersionUID = 1L;

        NoResponse() {
            super("connection closed before a response");
        }
    }

    private void connect() throws IOException {
        Socket s = new Socket();
        s.setTcpNoDelay(true);
        s.setKeepAlive(true);
        s.connect(new InetSocketAddress(host, port));
        socket = s;
        in = new BufferedInputStream(s.getInputStream(), 64 * 1024);
        out = s.getOutputStream();
        reused = false;
    }

    private void close() {
        if (socket != null) {
            try {
                socket.close();
            } catch (IOException e) {
                // Already gone.
            }
        }
        socket = null;
        in = null;
        out = null;
    }

    private Response read() throws IOException {
        String status = line(true);
        if (!status.startsWith("HTTP/1.") || status.length() < 12) {
            throw new IOException("malformed response from the Runtime API: " + status);
        }
        int code;
        try {
            code = Integer.parseInt(status.substring(9, 12));
        } catch (NumberFormatException e) {
            throw new IOException("malformed response from the Runtime API: " + status);
        }
        Map<String, String> headers = new HashMap<>();
        while (true) {
            String l = line(false);
            if (l.isEmpty()) {
                break;
            }
            int colon = l.indexOf(':');
            if (colon > 0) {
                headers.put(l.substring(0, colon).trim().toLowerCase(java.util.Locale.ROOT), l.substring(colon + 1).trim());
            }
        }
        String lengthText = headers.get("content-length");
        int length;
        try {
            length = lengthText == null ? -1 : Integer.parseInt(lengthText);
        } catch (NumberFormatException e) {
            length = -1;
        }
        if (length < 0) {
            throw new IOException("Runtime API response without a valid Content-Length (" + status + ")");
        }
        byte[] body = new byte[length];
        int off = 0;
        while (off < length) {
            int n = in.read(body, off, length - off);
            if (n < 0) {
                throw new IOException("the Runtime API closed the connection mid-response");
            }
            off += n;
        }
        return new Response(code, headers, body);
    }

    private String line(boolean first) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream(128);
        while (true) {
            int c = in.read();
            if (c < 0) {
                if (first && b.size() == 0) {
                    throw new NoResponse();
                }
                throw new IOException("the Runtime API closed the connection mid-response");
            }
            if (c == '\n') {
                break;
            }
            if (b.size() > 64 * 1024) {
                throw new IOException("Runtime API response line longer than 64 KiB");
            }
            b.write(c);
        }
        String s = b.toString(StandardCharsets.ISO_8859_1);
        return s.endsWith("\r") ? s.substring(0, s.length() - 1) : s;
    }
}
