package stratus.runtime;

import java.lang.reflect.Array;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.GenericArrayType;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.RecordComponent;
import java.lang.reflect.Type;
import java.lang.reflect.TypeVariable;
import java.lang.reflect.WildcardType;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Event and result mapping by reflection, the part of Lambda's Jackson-based
 * serializer handlers rely on: untyped ({@code Object}, {@code Map}, {@code List}),
 * strings and numbers (scalars coerced as Jackson does), arrays, enums by name,
 * records, and POJOs — a public or private no-argument constructor, JSON keys
 * matched to setters or fields case-insensitively, unknown keys ignored (Lambda's
 * serializer is configured that way). Results are written from maps, collections,
 * arrays, records, enums, and POJOs through their public getters ({@code getX},
 * {@code isX}) and public fields.
 */
final class Mapper {
    private Mapper() {}

    private static final Map<Class<?>, Map<String, Property>> PROPERTIES = new ConcurrentHashMap<>();

    /** A settable property of a POJO class. */
    private static final class Property {
        final Method setter;
        final Field field;
        final Type type;

        Property(Method setter, Field field) {
            this.setter = setter;
            this.field = field;
            this.type = setter != null ? setter.getGenericParameterTypes()[0] : field.getGenericType();
        }

        void set(Object target, Object value) throws ReflectiveOperationException {
            if (setter != null) {
                setter.invoke(target, value);
            } else {
                field.set(target, value);
            }
        }
    }

    // ----------------------------------------------------------------- reading

    /** Converts a parsed JSON value to {@code type}. */
    static Object convert(Object v, Type type) {
        if (type instanceof WildcardType) {
            Type[] upper = ((WildcardType) type).getUpperBounds();
            return convert(v, upper.length > 0 ? upper[0] : Object.class);
        }
        if (type instanceof TypeVariable) {
            Type[] bounds = ((TypeVariable<?>) type).getBounds();
            return convert(v, bounds.length > 0 ? bounds[0] : Object.class);
        }
        if (type instanceof GenericArrayType) {
            Type component = ((GenericArrayType) type).getGenericComponentType();
            return toArray(v, raw(component), component);
        }
        Class<?> c = raw(type);
        if (v == null) {
            if (c.isPrimitive()) {
                return defaultOf(c);
            }
            return c == Optional.class ? Optional.empty() : null;
        }
        if (c == Object.class) {
            return v;
        }
        if (c == String.class || c == CharSequence.class) {
            if (v instanceof Map || v instanceof List) {
                throw mismatch(v, c);
            }
            return v.toString();
        }
        if (c == boolean.class || c == Boolean.class) {
            if (v instanceof Boolean) {
                return v;
            }
            if (v instanceof String && ("true".equals(v) || "false".equals(v))) {
                return Boolean.valueOf((String) v);
            }
            if (v instanceof Number) {
                return ((Number) v).intValue() != 0;
            }
            throw mismatch(v, c);
        }
        if (c.isPrimitive() || Number.class.isAssignableFrom(c)) {
            return toNumber(v, c);
        }
        if (c == char.class || c == Character.class) {
            if (v instanceof String && ((String) v).length() == 1) {
                return ((String) v).charAt(0);
            }
            throw mismatch(v, c);
        }
        if (c.isEnum()) {
            if (!(v instanceof String)) {
                throw mismatch(v, c);
            }
            for (Object k : c.getEnumConstants()) {
                if (((Enum<?>) k).name().equals(v)) {
                    return k;
                }
            }
            throw new IllegalArgumentException("\"" + v + "\" is not one of the values of " + c.getName());
        }
        if (c.isArray()) {
            if (c == byte[].class && v instanceof String) {
                return Base64.getDecoder().decode((String) v);
            }
            return toArray(v, c.getComponentType(), c.getComponentType());
        }
        if (c == Optional.class) {
            return Optional.ofNullable(convert(v, typeArg(type, 0)));
        }
        if (Map.class.isAssignableFrom(c)) {
            if (!(v instanceof Map)) {
                throw mismatch(v, c);
            }
            Type vt = typeArg(type, 1);
            Map<String, Object> out = c.isInterface() || Modifier.isAbstract(c.getModifiers())
                    ? new LinkedHashMap<>()
                    : newMap(c);
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                out.put((String) e.getKey(), convert(e.getValue(), vt));
            }
            return out;
        }
        if (Collection.class.isAssignableFrom(c)) {
            if (!(v instanceof List)) {
                throw mismatch(v, c);
            }
            Type et = typeArg(type, 0);
            Collection<Object> out;
            if (c.isInterface() || Modifier.isAbstract(c.getModifiers())) {
                out = Set.class.isAssignableFrom(c) ? new LinkedHashSet<>() : new ArrayList<>();
            } else {
                out = newCollection(c);
            }
            for (Object e : (List<?>) v) {
                out.add(convert(e, et));
            }
            return out;
        }
        if (!(v instanceof Map)) {
            throw mismatch(v, c);
        }
        if (c.isRecord()) {
            return toRecord((Map<?, ?>) v, c);
        }
        return toPojo((Map<?, ?>) v, c);
    }

    private static IllegalArgumentException mismatch(Object v, Class<?> c) {
        String kind = v instanceof Map ? "a JSON object" : v instanceof List ? "a JSON array"
                : v instanceof String ? "a JSON string" : v instanceof Boolean ? "a JSON boolean" : "a JSON number";
        return new IllegalArgumentException("Cannot deserialize value of type `" + c.getTypeName() + "` from " + kind);
    }

    static Class<?> raw(Type t) {
        if (t instanceof Class) {
            return (Class<?>) t;
        }
        if (t instanceof ParameterizedType) {
            return (Class<?>) ((ParameterizedType) t).getRawType();
        }
        if (t instanceof GenericArrayType) {
            return Array.newInstance(raw(((GenericArrayType) t).getGenericComponentType()), 0).getClass();
        }
        return Object.class;
    }

    private static Type typeArg(Type t, int index) {
        if (t instanceof ParameterizedType) {
            Type[] args = ((ParameterizedType) t).getActualTypeArguments();
            if (index < args.length) {
                return args[index];
            }
        }
        return Object.class;
    }

    private static Object defaultOf(Class<?> c) {
        if (c == boolean.class) {
            return false;
        }
        if (c == char.class) {
            return '\0';
        }
        return toNumber(0, c);
    }

    private static Object toNumber(Object v, Class<?> c) {
        Number n;
        if (v instanceof Number) {
            n = (Number) v;
        } else if (v instanceof String) {
            try {
                n = new BigDecimal(((String) v).trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("Cannot deserialize value of type `" + c.getTypeName()
                        + "` from String \"" + v + "\": not a valid number");
            }
        } else {
            throw mismatch(v, c);
        }
        if (c == int.class || c == Integer.class) {
            return n.intValue();
        }
        if (c == long.class || c == Long.class) {
            return n.longValue();
        }
        if (c == double.class || c == Double.class) {
            return n.doubleValue();
        }
        if (c == float.class || c == Float.class) {
            return n.floatValue();
        }
        if (c == short.class || c == Short.class) {
            return n.shortValue();
        }
        if (c == byte.class || c == Byte.class) {
            return n.byteValue();
        }
        if (c == BigDecimal.class) {
            return n instanceof BigDecimal ? n : new BigDecimal(n.toString());
        }
        if (c == BigInteger.class) {
            return n instanceof BigInteger ? n : new BigDecimal(n.toString()).toBigInteger();
        }
        if (c == Number.class) {
            return n;
        }
        throw mismatch(v, c);
    }

    private static Object toArray(Object v, Class<?> component, Type componentType) {
        if (!(v instanceof List)) {
            throw mismatch(v, Array.newInstance(component, 0).getClass());
        }
        List<?> l = (List<?>) v;
        Object out = Array.newInstance(component, l.size());
        for (int k = 0; k < l.size(); k++) {
            Array.set(out, k, convert(l.get(k), componentType));
        }
        return out;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> newMap(Class<?> c) {
        try {
            return (Map<String, Object>) accessible(c.getDeclaredConstructor()).newInstance();
        } catch (ReflectiveOperationException e) {
            return new LinkedHashMap<>();
        }
    }

    @SuppressWarnings("unchecked")
    private static Collection<Object> newCollection(Class<?> c) {
        try {
            return (Collection<Object>) accessible(c.getDeclaredConstructor()).newInstance();
        } catch (ReflectiveOperationException e) {
            return Set.class.isAssignableFrom(c) ? new HashSet<>() : new ArrayList<>();
        }
    }

    private static <T extends java.lang.reflect.AccessibleObject> T accessible(T o) {
        try {
            o.setAccessible(true);
        } catch (RuntimeException e) {
            // A module boundary: public members still work.
        }
        return o;
    }

    private static Object toRecord(Map<?, ?> m, Class<?> c) {
        RecordComponent[] parts = c.getRecordComponents();
        Object[] args = new Object[parts.length];
        Class<?>[] types = new Class<?>[parts.length];
        Map<String, Object> lower = lowerKeys(m);
        for (int k = 0; k < parts.length; k++) {
            types[k] = parts[k].getType();
            Object raw = m.containsKey(parts[k].getName()) ? m.get(parts[k].getName())
                    : lower.get(parts[k].getName().toLowerCase(Locale.ROOT));
            args[k] = convert(raw, parts[k].getGenericType());
        }
        try {
            return accessible(c.getDeclaredConstructor(types)).newInstance(args);
        } catch (ReflectiveOperationException e) {
            throw new IllegalArgumentException("Cannot construct instance of `" + c.getName() + "`: " + e, e);
        }
    }

    private static Map<String, Object> lowerKeys(Map<?, ?> m) {
        Map<String, Object> out = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : m.entrySet()) {
            out.putIfAbsent(((String) e.getKey()).toLowerCase(Locale.ROOT), e.getValue());
        }
        return out;
    }

    private static Object toPojo(Map<?, ?> m, Class<?> c) {
        Object target;
        try {
            Constructor<?> k = c.getDeclaredConstructor();
            target = accessible(k).newInstance();
        } catch (NoSuchMethodException e) {
            throw new IllegalArgumentException("Cannot construct instance of `" + c.getName()
                    + "` (no Creators, like default constructor, exist)");
        } catch (ReflectiveOperationException e) {
            throw new IllegalArgumentException("Cannot construct instance of `" + c.getName() + "`: " + e, e);
        }
        Map<String, Property> props = PROPERTIES.computeIfAbsent(c, Mapper::properties);
        for (Map.Entry<?, ?> e : m.entrySet()) {
            Property p = props.get(((String) e.getKey()).toLowerCase(Locale.ROOT));
            if (p == null) {
                continue;
            }
            try {
                p.set(target, convert(e.getValue(), p.type));
            } catch (ReflectiveOperationException x) {
                Throwable cause = x.getCause() != null ? x.getCause() : x;
                throw new IllegalArgumentException("Cannot set property \"" + e.getKey() + "\" of `"
                        + c.getName() + "`: " + cause, cause);
            }
        }
        return target;
    }

    /** Settable properties by lower-cased name: setters first, then non-static fields. */
    private static Map<String, Property> properties(Class<?> c) {
        Map<String, Property> out = new LinkedHashMap<>();
        for (Method m : c.getMethods()) {
            if (m.getName().length() > 3 && m.getName().startsWith("set") && m.getParameterCount() == 1
                    && !Modifier.isStatic(m.getModifiers())) {
                out.putIfAbsent(m.getName().substring(3).toLowerCase(Locale.ROOT), new Property(m, null));
            }
        }
        for (Class<?> k = c; k != null && k != Object.class; k = k.getSuperclass()) {
            for (Field f : k.getDeclaredFields()) {
                int mod = f.getModifiers();
                if (Modifier.isStatic(mod) || Modifier.isTransient(mod) || Modifier.isFinal(mod) || f.isSynthetic()) {
                    continue;
                }
                out.putIfAbsent(f.getName().toLowerCase(Locale.ROOT), new Property(null, accessible(f)));
            }
        }
        return out;
    }

    // ----------------------------------------------------------------- writing

    /** The JSON text of a handler's result. */
    static String write(Object v) {
        StringBuilder b = new StringBuilder();
        write(b, v, 0);
        return b.toString();
    }

    private static void write(StringBuilder b, Object v, int depth) {
        if (depth > 500) {
            throw new IllegalArgumentException("Document nesting depth exceeds the maximum allowed (a cycle?)");
        }
        if (v == null) {
            b.append("null");
        } else if (v instanceof String || v instanceof Character || v instanceof CharSequence) {
            Json.quote(b, v.toString());
        } else if (v instanceof Boolean) {
            b.append(v.toString());
        } else if (v instanceof Number) {
            Json.number(b, (Number) v);
        } else if (v instanceof Enum) {
            Json.quote(b, ((Enum<?>) v).name());
        } else if (v instanceof Optional) {
            write(b, ((Optional<?>) v).orElse(null), depth + 1);
        } else if (v instanceof Map) {
            b.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                if (!first) {
                    b.append(',');
                }
                first = false;
                Json.quote(b, String.valueOf(e.getKey()));
                b.append(':');
                write(b, e.getValue(), depth + 1);
            }
            b.append('}');
        } else if (v instanceof Iterable) {
            b.append('[');
            boolean first = true;
            for (Object e : (Iterable<?>) v) {
                if (!first) {
                    b.append(',');
                }
                first = false;
                write(b, e, depth + 1);
            }
            b.append(']');
        } else if (v instanceof byte[]) {
            Json.quote(b, Base64.getEncoder().encodeToString((byte[]) v));
        } else if (v.getClass().isArray()) {
            b.append('[');
            int n = Array.getLength(v);
            for (int k = 0; k < n; k++) {
                if (k > 0) {
                    b.append(',');
                }
                write(b, Array.get(v, k), depth + 1);
            }
            b.append(']');
        } else if (v.getClass().isRecord()) {
            b.append('{');
            boolean first = true;
            for (RecordComponent rc : v.getClass().getRecordComponents()) {
                if (!first) {
                    b.append(',');
                }
                first = false;
                Json.quote(b, rc.getName());
                b.append(':');
                write(b, read(accessible(rc.getAccessor()), v), depth + 1);
            }
            b.append('}');
        } else {
            writePojo(b, v, depth);
        }
    }

    private static Object read(Method getter, Object target) {
        try {
            return getter.invoke(target);
        } catch (ReflectiveOperationException e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            throw new IllegalArgumentException("Cannot read " + getter.getName() + " of "
                    + target.getClass().getName() + ": " + cause, cause);
        }
    }

    private static void writePojo(StringBuilder b, Object v, int depth) {
        Map<String, Object> props = new LinkedHashMap<>();
        Class<?> c = v.getClass();
        for (Method m : c.getMethods()) {
            if (m.getParameterCount() != 0 || Modifier.isStatic(m.getModifiers())
                    || m.getDeclaringClass() == Object.class) {
                continue;
            }
            String n = m.getName();
            String name = null;
            if (n.length() > 3 && n.startsWith("get") && m.getReturnType() != void.class) {
                name = n.substring(3);
            } else if (n.length() > 2 && n.startsWith("is")
                    && (m.getReturnType() == boolean.class || m.getReturnType() == Boolean.class)) {
                name = n.substring(2);
            }
            if (name == null) {
                continue;
            }
            props.putIfAbsent(decapitalize(name), read(accessible(m), v));
        }
        for (Field f : c.getFields()) {
            if (!Modifier.isStatic(f.getModifiers())) {
                try {
                    props.putIfAbsent(f.getName(), f.get(v));
                } catch (IllegalAccessException e) {
                    // Not readable: skipped, as Jackson would.
                }
            }
        }
        if (props.isEmpty() && !(v instanceof java.io.Serializable)) {
            throw new IllegalArgumentException("No serializer found for class " + c.getName()
                    + " and no properties discovered to create BeanSerializer");
        }
        write(b, props, depth + 1);
    }

    /** Jackson's naming: {@code getURL} → {@code url}, {@code getName} → {@code name}. */
    private static String decapitalize(String s) {
        int upper = 0;
        while (upper < s.length() && Character.isUpperCase(s.charAt(upper))) {
            upper++;
        }
        if (upper <= 1) {
            return Character.toLowerCase(s.charAt(0)) + s.substring(1);
        }
        if (upper == s.length()) {
            return s.toLowerCase(Locale.ROOT);
        }
        return s.substring(0, upper - 1).toLowerCase(Locale.ROOT) + s.substring(upper - 1);
    }
}
