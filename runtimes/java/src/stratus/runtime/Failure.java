package stratus.runtime;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Errors as Lambda's Java runtime reports them: the body posted to the Runtime API
 * is {@code {"errorMessage","errorType","stackTrace":["pkg.Class.method(File.java:12)",…],
 * "cause":{…}}} with the exception's class name as {@code errorType}, and the log
 * gets {@code "<message>: <type>"} followed by the stack trace. Frames of this
 * runtime (and the reflection frames that called the handler) are cut off, as
 * Lambda filters its own.
 */
final class Failure extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** The type reported, or null (then the server says {@code Unhandled}). */
    final String type;
    /** The exception behind it, or null. */
    final transient Throwable exception;

    Failure(String message, String type, Throwable exception) {
        super(message, null, false, false);
        this.type = type;
        this.exception = exception;
    }

    /** A failure that stands for {@code t}, with {@code message} in front. */
    static Failure of(String message, Throwable t) {
        return new Failure(message, t.getClass().getName(), t);
    }

    /** A failure that is {@code t}. */
    static Failure of(Throwable t) {
        filter(t, new IdentityHashMap<>());
        return new Failure(t.getMessage(), t.getClass().getName(), t);
    }

    /** The JSON body for the Runtime API. */
    String body() {
        StringBuilder b = new StringBuilder(512);
        b.append('{');
        boolean any = false;
        if (getMessage() != null) {
            b.append("\"errorMessage\":");
            Json.quote(b, getMessage());
            any = true;
        }
        if (type != null) {
            b.append(any ? "," : "").append("\"errorType\":");
            Json.quote(b, type);
            any = true;
        }
        if (exception != null) {
            filter(exception, new IdentityHashMap<>());
            b.append(any ? "," : "");
            frames(b, exception);
            Throwable cause = exception.getCause();
            if (cause != null && cause != exception) {
                b.append(",\"cause\":");
                cause(b, cause, 1);
            }
        }
        b.append('}');
        return b.toString();
    }

    private static void frames(StringBuilder b, Throwable t) {
        b.append("\"stackTrace\":[");
        boolean first = true;
        for (StackTraceElement e : t.getStackTrace()) {
            if (!first) {
                b.append(',');
            }
            first = false;
            Json.quote(b, frame(e));
        }
        b.append(']');
    }

    private static void cause(StringBuilder b, Throwable t, int depth) {
        b.append('{');
        if (t.getMessage() != null) {
            b.append("\"errorMessage\":");
            Json.quote(b, t.getMessage());
            b.append(',');
        }
        b.append("\"errorType\":");
        Json.quote(b, t.getClass().getName());
        b.append(',');
        frames(b, t);
        Throwable next = t.getCause();
        if (next != null && next != t && depth < 20) {
            b.append(",\"cause\":");
            cause(b, next, depth + 1);
        }
        b.append('}');
    }

    /** {@code pkg.Class.method(File.java:12)}, without module or loader prefixes. */
    private static String frame(StackTraceElement e) {
        String where;
        if (e.isNativeMethod()) {
            where = "Native Method";
        } else if (e.getFileName() == null) {
            where = "Unknown Source";
        } else if (e.getLineNumber() >= 0) {
            where = e.getFileName() + ":" + e.getLineNumber();
        } else {
            where = e.getFileName();
        }
        return e.getClassName() + "." + e.getMethodName() + "(" + where + ")";
    }

    /** The log entry: {@code "<message>: <type>"} and the stack trace. */
    String reportable() {
        StringBuilder b = new StringBuilder();
        if (getMessage() != null) {
            b.append(getMessage());
            if (type != null) {
                b.append(": ").append(type);
            }
        } else if (type != null) {
            b.append(type);
        }
        if (exception != null) {
            filter(exception, new IdentityHashMap<>());
            StringWriter w = new StringWriter();
            try (PrintWriter p = new PrintWriter(w)) {
                exception.printStackTrace(p);
            }
            b.append('\n').append(w);
        }
        return b.toString();
    }

    /** Cuts this runtime's frames (and the reflection frames above them) off {@code t} and its causes. */
    static void filter(Throwable t, Map<Throwable, Boolean> seen) {
        if (t == null || seen.put(t, Boolean.TRUE) != null) {
            return;
        }
        StackTraceElement[] st = t.getStackTrace();
        int end = st.length;
        for (int k = 0; k < st.length; k++) {
            if (st[k].getClassName().startsWith("stratus.runtime.")) {
                end = k;
                break;
            }
        }
        while (end > 0 && isReflection(st[end - 1].getClassName())) {
            end--;
        }
        if (end < st.length && end > 0) {
            List<StackTraceElement> kept = new ArrayList<>(end);
            for (int k = 0; k < end; k++) {
                kept.add(st[k]);
            }
            t.setStackTrace(kept.toArray(new StackTraceElement[0]));
        }
        filter(t.getCause(), seen);
        for (Throwable s : t.getSuppressed()) {
            filter(s, seen);
        }
    }

    private static boolean isReflection(String c) {
        return c.startsWith("jdk.internal.reflect.") || c.equals("java.lang.reflect.Method")
                || c.startsWith("java.lang.invoke.") || c.equals("java.lang.reflect.Constructor");
    }
}
