package stratus.runtime;

import com.amazonaws.services.lambda.runtime.LambdaRuntime;
import java.io.File;
import java.io.IOException;
import java.io.PrintStream;
import java.net.MalformedURLException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Stratus's Java runtime client (java17, java21, java25). Started by the server as
 * {@code java <Lambda's JVM flags> -cp <this runtime> stratus.runtime.Main} with the
 * code root as working directory. It builds the function's class path from the
 * package (the root directory, {@code classes/}, jars at the root and
 * {@code lib/*.jar}), loads the handler {@code _HANDLER} names ({@link Handlers}),
 * and loops over the Runtime API ({@link RuntimeApi}). The interfaces handlers
 * implement ({@code com.amazonaws.services.lambda.runtime.*}) are on this
 * runtime's class path; the function's class loader asks its parent first, so a
 * copy bundled in the function's jar is never a second, incompatible class.
 *
 * <p>Exit codes: 1 after an init failure, when the Runtime API goes away, or after
 * a {@link VirtualMachineError} in the handler.
 */
public final class Main {
    private Main() {}

    /** The entry point. */
    public static void main(String[] args) {
        PrintStream stdout = System.out;
        Log log = new Log(stdout);
        LambdaRuntime.setLogger(log);
        String address = System.getenv("AWS_LAMBDA_RUNTIME_API");
        RuntimeApi api = new RuntimeApi(address == null ? "127.0.0.1:9001" : address);
        String handler = System.getenv("_HANDLER");
        String root = System.getenv("LAMBDA_TASK_ROOT");
        if (root == null || root.isEmpty()) {
            root = System.getProperty("user.dir");
        }

        Handlers.Invoker invoker;
        try {
            ClassLoader loader = classLoader(new File(root));
            Thread.currentThread().setContextClassLoader(loader);
            invoker = Handlers.load(handler == null ? "" : handler.trim(), loader);
        } catch (Failure f) {
            initFailed(api, log, f);
            return;
        } catch (Throwable t) {
            initFailed(api, log, Failure.of(t));
            return;
        }

        LambdaContext.Environment env = new LambdaContext.Environment();
        while (true) {
            RuntimeApi.Response next;
            try {
                next = api.next();
            } catch (IOException e) {
                die("GET /invocation/next failed: " + e.getMessage());
                return;
            }
            if (next.status != 200) {
                die("GET /invocation/next returned HTTP " + next.status + ": "
                        + new String(next.body, StandardCharsets.UTF_8));
                return;
            }
            String id = next.header("lambda-runtime-aws-request-id");
            long deadline = parseLong(next.header("lambda-runtime-deadline-ms"));
            String trace = next.header("lambda-runtime-trace-id");
            if (trace != null) {
                System.setProperty("com.amazonaws.xray.traceHeader", trace);
            } else {
                System.clearProperty("com.amazonaws.xray.traceHeader");
            }
            LambdaContext context = new LambdaContext(env, id, deadline,
                    next.header("lambda-runtime-invoked-function-arn"),
                    next.header("lambda-runtime-client-context"),
                    next.header("lambda-runtime-cognito-identity"), log);
            byte[] result = null;
            Failure failure = null;
            boolean fatal = false;
            try {
                result = invoker.invoke(next.body, context);
            } catch (Failure f) {
                failure = f;
            } catch (Throwable t) {
                failure = Failure.of(t);
                fatal = t instanceof VirtualMachineError;
            }
            // What the handler printed without a newline belongs to this invocation.
            System.out.flush();
            System.err.flush();
            try {
                if (failure == null) {
                    api.respond(id, result);
                } else {
                    log.entry(failure.reportable());
                    api.error(id, failure.type, failure.body().getBytes(StandardCharsets.UTF_8));
                }
            } catch (IOException e) {
                die("posting the result of " + id + " failed: " + e.getMessage());
                return;
            }
            if (fatal) {
                System.exit(1);
            }
        }
    }

    private static void initFailed(RuntimeApi api, Log log, Failure f) {
        log.entry(f.reportable());
        try {
            api.initError(f.type == null ? "Runtime.Unknown" : f.type, f.body().getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            die("POST /init/error failed: " + e.getMessage());
        }
        System.exit(1);
    }

    private static void die(String message) {
        System.err.println("[stratus-java-runtime] " + message);
        System.exit(1);
    }

    private static long parseLong(String s) {
        try {
            return s == null ? 0 : Long.parseLong(s.trim());
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    /** The function's class path: root, {@code classes/}, root jars, {@code lib/*.jar}. */
    static ClassLoader classLoader(File root) throws MalformedURLException {
        List<URL> urls = new ArrayList<>();
        urls.add(root.toURI().toURL());
        File classes = new File(root, "classes");
        if (classes.isDirectory()) {
            urls.add(classes.toURI().toURL());
        }
        addJars(urls, root);
        addJars(urls, new File(root, "lib"));
        return new URLClassLoader(urls.toArray(new URL[0]), Main.class.getClassLoader());
    }

    private static void addJars(List<URL> urls, File dir) throws MalformedURLException {
        File[] jars = dir.listFiles((d, n) -> n.endsWith(".jar"));
        if (jars == null) {
            return;
        }
        Arrays.sort(jars);
        for (File j : jars) {
            if (j.isFile()) {
                urls.add(j.toURI().toURL());
            }
        }
    }
}
