package stratus.runtime;

import com.amazonaws.services.lambda.runtime.Client;
import com.amazonaws.services.lambda.runtime.ClientContext;
import com.amazonaws.services.lambda.runtime.CognitoIdentity;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.LambdaLogger;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/** One invocation's {@link Context}, from the Runtime API's headers and the environment. */
final class LambdaContext implements Context {
    /** Per-environment values, read once from the environment. */
    static final class Environment {
        final String functionName = env("AWS_LAMBDA_FUNCTION_NAME");
        final String functionVersion = env("AWS_LAMBDA_FUNCTION_VERSION");
        final String logGroup = env("AWS_LAMBDA_LOG_GROUP_NAME");
        final String logStream = env("AWS_LAMBDA_LOG_STREAM_NAME");
        final int memory = parseInt(env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"));

        private static String env(String k) {
            return System.getenv(k);
        }

        private static int parseInt(String s) {
            try {
                return s == null ? 0 : Integer.parseInt(s.trim());
            } catch (NumberFormatException e) {
                return 0;
            }
        }
    }

    private final Environment env;
    private final String requestId;
    private final long deadlineMs;
    private final String arn;
    private final LambdaLogger logger;
    private final ClientContext clientContext;
    private final CognitoIdentity identity;

    LambdaContext(Environment env, String requestId, long deadlineMs, String arn, String clientContext,
            String identity, LambdaLogger logger) {
        this.env = env;
        this.requestId = requestId;
        this.deadlineMs = deadlineMs;
        this.arn = arn;
        this.logger = logger;
        this.clientContext = clientContext == null || clientContext.isEmpty() ? null : parseClient(clientContext);
        this.identity = identity == null || identity.isEmpty() ? null : parseIdentity(identity);
    }

    @Override
    public String getAwsRequestId() {
        return requestId;
    }

    @Override
    public String getLogGroupName() {
        return env.logGroup;
    }

    @Override
    public String getLogStreamName() {
        return env.logStream;
    }

    @Override
    public String getFunctionName() {
        return env.functionName;
    }

    @Override
    public String getFunctionVersion() {
        return env.functionVersion;
    }

    @Override
    public String getInvokedFunctionArn() {
        return arn;
    }

    @Override
    public CognitoIdentity getIdentity() {
        return identity;
    }

    @Override
    public ClientContext getClientContext() {
        return clientContext;
    }

    @Override
    public int getRemainingTimeInMillis() {
        long left = deadlineMs - System.currentTimeMillis();
        return (int) Math.max(0, Math.min(Integer.MAX_VALUE, left));
    }

    @Override
    public int getMemoryLimitInMB() {
        return env.memory;
    }

    @Override
    public LambdaLogger getLogger() {
        return logger;
    }

    private static Map<?, ?> object(String json) {
        try {
            Object v = Json.parse(json);
            return v instanceof Map ? (Map<?, ?>) v : Collections.emptyMap();
        } catch (IllegalArgumentException e) {
            return Collections.emptyMap();
        }
    }

    private static String str(Map<?, ?> m, String k) {
        Object v = m.get(k);
        return v == null ? null : v.toString();
    }

    private static Map<String, String> strings(Object v) {
        Map<String, String> out = new LinkedHashMap<>();
        if (v instanceof Map) {
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                out.put(String.valueOf(e.getKey()), e.getValue() == null ? null : e.getValue().toString());
            }
        }
        return Collections.unmodifiableMap(out);
    }

    private static ClientContext parseClient(String json) {
        Map<?, ?> m = object(json);
        Object c = m.get("client");
        Map<?, ?> cm = c instanceof Map ? (Map<?, ?>) c : Collections.emptyMap();
        Client client = c == null ? null : new Client() {
            @Override
            public String getInstallationId() {
                return str(cm, "installation_id");
            }

            @Override
            public String getAppTitle() {
                return str(cm, "app_title");
            }

            @Override
            public String getAppVersionName() {
                return str(cm, "app_version_name");
            }

            @Override
            public String getAppVersionCode() {
                return str(cm, "app_version_code");
            }

            @Override
            public String getAppPackageName() {
                return str(cm, "app_package_name");
            }
        };
        Map<String, String> custom = strings(m.get("custom"));
        Map<String, String> environment = strings(m.get("env"));
        return new ClientContext() {
            @Override
            public Client getClient() {
                return client;
            }

            @Override
            public Map<String, String> getCustom() {
                return custom;
            }

            @Override
            public Map<String, String> getEnvironment() {
                return environment;
            }
        };
    }

    private static CognitoIdentity parseIdentity(String json) {
        Map<?, ?> m = object(json);
        String id = str(m, "cognitoIdentityId");
        String pool = str(m, "cognitoIdentityPoolId");
        return new CognitoIdentity() {
            @Override
            public String getIdentityId() {
                return id;
            }

            @Override
            public String getIdentityPoolId() {
                return pool;
            }
        };
    }
}
