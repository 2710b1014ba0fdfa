package stratus.runtime;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.lang.reflect.TypeVariable;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Loads the handler {@code _HANDLER} names, as Lambda's Java runtime does:
 * {@code package.Class} (its {@code handleRequest}) or {@code package.Class::method}.
 * A class implementing {@link RequestStreamHandler} gets the raw event and writes the
 * raw response; one implementing {@link RequestHandler} gets the event converted to
 * its input type and its result serialized ({@link Mapper}); any other public
 * method is called as a POJO handler — {@code (I)}, {@code (I, Context)},
 * {@code (InputStream, OutputStream[, Context])}, {@code (Context)} or {@code ()} —
 * static, or on one instance made with the public no-argument constructor.
 */
final class Handlers {
    private Handlers() {}

    /** Runs one invocation. */
    interface Invoker {
        byte[] invoke(byte[] event, Context context) throws Throwable;
    }

    private static final byte[] NULL = "null".getBytes(StandardCharsets.UTF_8);

    /** Loads the class and finds the method; a {@link Failure} is an init error. */
    static Invoker load(String handler, ClassLoader loader) {
        String className = handler;
        String methodName = null;
        int sep = handler.indexOf("::");
        if (sep >= 0) {
            className = handler.substring(0, sep);
            methodName = handler.substring(sep + 2);
        }
        Class<?> c;
        try {
            c = Class.forName(className, true, loader);
        } catch (ClassNotFoundException e) {
            throw Failure.of("Class not found: " + className, filtered(e));
        } catch (ExceptionInInitializerError e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            throw Failure.of("Error loading class " + className + ": " + cause, filtered(e));
        } catch (LinkageError e) {
            throw Failure.of("Error loading class " + className
                    + (e.getMessage() == null ? "" : ": " + e.getMessage()), filtered(e));
        }
        if (methodName == null || methodName.isEmpty()) {
            if (RequestStreamHandler.class.isAssignableFrom(c)) {
                return stream((RequestStreamHandler) instance(c));
            }
            if (RequestHandler.class.isAssignableFrom(c)) {
                return typed(c, (RequestHandler<?, ?>) instance(c));
            }
            methodName = "handleRequest";
        } else if (methodName.equals("handleRequest")) {
            if (RequestStreamHandler.class.isAssignableFrom(c)) {
                return stream((RequestStreamHandler) instance(c));
            }
            if (RequestHandler.class.isAssignableFrom(c)) {
                return typed(c, (RequestHandler<?, ?>) instance(c));
            }
        }
        return method(c, methodName);
    }

    private static Throwable filtered(Throwable t) {
        Failure.filter(t, new java.util.IdentityHashMap<>());
        return t;
    }

    private static Object instance(Class<?> c) {
        Constructor<?> k;
        try {
            k = c.getConstructor();
        } catch (NoSuchMethodException e) {
            if (c.getEnclosingClass() != null && !Modifier.isStatic(c.getModifiers())) {
                throw new Failure("Class " + c.getName() + " cannot be instantiated because it is a non-static inner class",
                        "java.lang.Exception", null);
            }
            throw new Failure("Class " + c.getName() + " has no public zero-argument constructor",
                    "java.lang.Exception", null);
        }
        try {
            return k.newInstance();
        } catch (InvocationTargetException e) {
            throw Failure.of(e.getCause() != null ? e.getCause() : e);
        } catch (ReflectiveOperationException e) {
            throw Failure.of(e);
        }
    }

    private static Invoker stream(RequestStreamHandler h) {
        return (event, context) -> {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            h.handleRequest(new ByteArrayInputStream(event), out, context);
            return out.toByteArray();
        };
    }

    /** The input and output types of {@code handleRequest} as the class declares it. */
    private static Invoker typed(Class<?> c, RequestHandler<?, ?> h) {
        Type in = null;
        Type out = null;
        for (Method m : c.getMethods()) {
            if (m.getName().equals("handleRequest") && m.getParameterCount() == 2 && !m.isBridge()
                    && m.getParameterTypes()[1] == Context.class) {
                in = m.getGenericParameterTypes()[0];
                out = m.getGenericReturnType();
                break;
            }
        }
        // Declared through a generic base class (`Base<T> implements
        // RequestHandler<T, R>`, `Impl extends Base<Order>`): the class's own
        // parameterization says what T is.
        Type[] declared = typeArguments(c, RequestHandler.class, new HashMap<>());
        if (declared != null && declared.length == 2) {
            if (!concrete(in)) {
                in = declared[0];
            }
            if (!concrete(out)) {
                out = declared[1];
            }
        }
        if (in == null) {
            in = Object.class;
        }
        if (out == null) {
            out = Object.class;
        }
        @SuppressWarnings("unchecked")
        RequestHandler<Object, Object> handler = (RequestHandler<Object, Object>) h;
        Type inputType = in;
        boolean isVoid = out == void.class || out == Void.class;
        return (event, context) -> {
            Object input = decode(event, inputType);
            Object result = handler.handleRequest(input, context);
            return isVoid ? NULL : encode(result);
        };
    }

    private static boolean concrete(Type t) {
        return t instanceof Class || t instanceof ParameterizedType || t instanceof java.lang.reflect.GenericArrayType;
    }

    /**
     * The type arguments {@code c} gives {@code target} (an interface it implements
     * through any chain of classes and interfaces), type variables substituted;
     * null when it is not implemented with arguments.
     */
    private static Type[] typeArguments(Class<?> c, Class<?> target, Map<TypeVariable<?>, Type> bindings) {
        List<Type> supers = new ArrayList<>(Arrays.asList(c.getGenericInterfaces()));
        if (c.getGenericSuperclass() != null) {
            supers.add(c.getGenericSuperclass());
        }
        for (Type t : supers) {
            if (t instanceof ParameterizedType) {
                ParameterizedType p = (ParameterizedType) t;
                Class<?> raw = (Class<?>) p.getRawType();
                Type[] args = p.getActualTypeArguments().clone();
                for (int k = 0; k < args.length; k++) {
                    if (args[k] instanceof TypeVariable && bindings.containsKey(args[k])) {
                        args[k] = bindings.get(args[k]);
                    }
                }
                if (raw == target) {
                    return args;
                }
                Map<TypeVariable<?>, Type> next = new HashMap<>();
                TypeVariable<?>[] params = raw.getTypeParameters();
                for (int k = 0; k < params.length && k < args.length; k++) {
                    next.put(params[k], args[k]);
                }
                Type[] found = typeArguments(raw, target, next);
                if (found != null) {
                    return found;
                }
            } else if (t instanceof Class && t != target) {
                Type[] found = typeArguments((Class<?>) t, target, new HashMap<>());
                if (found != null) {
                    return found;
                }
            }
        }
        return null;
    }

    static Object decode(byte[] event, Type type) {
        try {
            String text = new String(event, StandardCharsets.UTF_8);
            Object parsed = text.isBlank() ? null : Json.parse(text);
            return Mapper.convert(parsed, type);
        } catch (RuntimeException e) {
            throw new RuntimeException("An error occurred during JSON parsing", e);
        }
    }

    static byte[] encode(Object result) {
        try {
            return Mapper.write(result).getBytes(StandardCharsets.UTF_8);
        } catch (RuntimeException e) {
            throw new RuntimeException("An error occurred during JSON serialization of response", e);
        }
    }

    /** A POJO method; none that fits fails every invocation, as in Lambda. */
    private static Invoker method(Class<?> c, String name) {
        List<Method> candidates = new ArrayList<>();
        for (Method m : c.getMethods()) {
            if (m.getName().equals(name) && !m.isBridge() && !m.isSynthetic() && shape(m) != null) {
                candidates.add(m);
            }
        }
        if (candidates.isEmpty()) {
            String message = "No public method named " + name + " with appropriate method signature found on class "
                    + c.getName();
            return (event, context) -> {
                throw new Failure(message, null, null);
            };
        }
        // The most arguments first (Context-taking forms win), declared in the
        // class itself before inherited ones.
        candidates.sort(Comparator.comparingInt((Method m) -> -m.getParameterCount())
                .thenComparing(m -> m.getDeclaringClass() == c ? 0 : 1));
        Method m = candidates.get(0);
        Object target = Modifier.isStatic(m.getModifiers()) ? null : instance(c);
        String shape = shape(m);
        Type[] types = m.getGenericParameterTypes();
        boolean isVoid = m.getReturnType() == void.class || m.getReturnType() == Void.class;
        return (event, context) -> {
            Object[] args = new Object[types.length];
            ByteArrayOutputStream out = null;
            switch (shape) {
                case "stream":
                    args[0] = new ByteArrayInputStream(event);
                    if (types.length > 1) {
                        out = new ByteArrayOutputStream();
                        args[1] = out;
                    }
                    if (types.length > 2) {
                        args[2] = context;
                    }
                    break;
                case "input":
                    args[0] = decode(event, types[0]);
                    if (types.length > 1) {
                        args[1] = context;
                    }
                    break;
                case "context":
                    args[0] = context;
                    break;
                default:
                    break;
            }
            Object result;
            try {
                result = m.invoke(target, args);
            } catch (InvocationTargetException e) {
                throw e.getCause() != null ? e.getCause() : e;
            }
            if (shape.equals("stream")) {
                return out == null ? NULL : out.toByteArray();
            }
            return isVoid ? NULL : encode(result);
        };
    }

    /** Which handler form a method has, or null. */
    private static String shape(Method m) {
        Class<?>[] p = m.getParameterTypes();
        if (p.length >= 1 && p[0] == InputStream.class
                && (p.length == 1 || (p[1] == OutputStream.class && (p.length == 2 || (p.length == 3 && p[2] == Context.class))))) {
            return "stream";
        }
        if (p.length == 0) {
            return "none";
        }
        if (p.length == 1) {
            return p[0] == Context.class ? "context" : "input";
        }
        if (p.length == 2 && p[1] == Context.class) {
            return "input";
        }
        return null;
    }
}
