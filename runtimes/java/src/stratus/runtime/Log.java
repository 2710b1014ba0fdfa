package stratus.runtime;

import com.amazonaws.services.lambda.runtime.LambdaLogger;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/**
 * The function's log: {@code context.getLogger()} and {@code LambdaRuntime.getLogger()}.
 * Each call is one log entry, as with Lambda's framed log transport: inner newlines
 * become carriage returns (the server splits the stream into entries at newlines)
 * and a newline ends the entry. {@code System.out}/{@code System.err} pass through
 * as the process's own output.
 */
final class Log implements LambdaLogger {
    private final PrintStream out;

    Log(PrintStream out) {
        this.out = out;
    }

    @Override
    public void log(String message) {
        entry(String.valueOf(message));
    }

    @Override
    public void log(byte[] message) {
        entry(message == null ? "null" : new String(message, StandardCharsets.UTF_8));
    }

    /** Writes one entry. */
    void entry(String message) {
        String m = message.endsWith("\n") ? message.substring(0, message.length() - 1) : message;
        m = m.replace("\r\n", "\r").replace('\n', '\r');
        synchronized (out) {
            out.print(m);
            out.print('\n');
            out.flush();
        }
    }
}
