package org.rescoresidecar.bridge.core;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Typed reads of the generic map an engine's XContent parser produces for the {@code sidecar}
 * object, with the messages both engines return as a 400 ({@link IllegalArgumentException}).
 */
final class DslValues {
    private DslValues() {}

    static <V> Map<String, V> frozen(Map<String, V> map) {
        return map == null || map.isEmpty() ? Map.of() : Collections.unmodifiableMap(new LinkedHashMap<>(map));
    }

    static IllegalArgumentException error(String message) {
        return new IllegalArgumentException("[" + RescoreParams.NAME + "] " + message);
    }

    static String string(Object value, String key) {
        if (value == null) {
            return null;
        }
        if (!(value instanceof String s)) {
            throw error(key + " must be a string, got " + describe(value));
        }
        return s;
    }

    static Integer integer(Object value, String key) {
        if (value == null) {
            return null;
        }
        if (value instanceof Integer || value instanceof Long || value instanceof Short) {
            long v = ((Number) value).longValue();
            if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) {
                throw error(key + " is out of range: " + v);
            }
            return (int) v;
        }
        throw error(key + " must be an integer, got " + describe(value));
    }

    static Float floatValue(Object value, String key) {
        if (value == null) {
            return null;
        }
        if (!(value instanceof Number n)) {
            throw error(key + " must be a number, got " + describe(value));
        }
        return n.floatValue();
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> object(Object value, String key) {
        if (value == null) {
            return Map.of();
        }
        if (!(value instanceof Map)) {
            throw error(key + " must be an object, got " + describe(value));
        }
        return (Map<String, Object>) value;
    }

    /** {@code name → number}; a null value is left out (the sidecar's "missing"), like an absent key. */
    static Map<String, Double> numbers(Object value, String key) {
        Map<String, Double> out = new LinkedHashMap<>();
        for (Map.Entry<String, Object> e : object(value, key).entrySet()) {
            Object v = e.getValue();
            if (v == null) {
                continue;
            }
            if (!(v instanceof Number n) || v instanceof Byte) {
                throw error(key + "." + e.getKey() + " must be a number, got " + describe(v));
            }
            double d = n.doubleValue();
            if (!Double.isFinite(d)) {
                throw error(key + "." + e.getKey() + " must be a finite number, got " + d);
            }
            out.put(e.getKey(), d);
        }
        return out;
    }

    /** {@code name → string}; a null value is left out. */
    static Map<String, String> strings(Object value, String key) {
        Map<String, String> out = new LinkedHashMap<>();
        for (Map.Entry<String, Object> e : object(value, key).entrySet()) {
            if (e.getValue() == null) {
                continue;
            }
            if (!(e.getValue() instanceof String s)) {
                throw error(key + "." + e.getKey() + " must be a string, got " + describe(e.getValue()));
            }
            out.put(e.getKey(), s);
        }
        return out;
    }

    /** {@code fields}: a list of field names (feature name = field name) or {@code {"feature": "field"}}. */
    static Map<String, String> fields(Object value) {
        if (value == null) {
            return Map.of();
        }
        Map<String, String> out = new LinkedHashMap<>();
        if (value instanceof List<?> list) {
            for (Object o : list) {
                String field = string(o, "fields[]");
                if (field == null || field.isEmpty()) {
                    throw error("fields must be non-empty field names");
                }
                if (out.put(field, field) != null) {
                    throw error("fields contains a duplicate name: " + list);
                }
            }
            return out;
        }
        if (value instanceof Map) {
            Map<String, String> map = strings(value, "fields");
            for (Map.Entry<String, String> e : map.entrySet()) {
                if (e.getKey().isEmpty() || e.getValue().isEmpty()) {
                    throw error("fields must map non-empty feature names to non-empty field names");
                }
            }
            return map;
        }
        throw error("fields must be a list of field names or an object {\"feature\": \"field\"}, got " + describe(value));
    }

    static String describe(Object value) {
        if (value instanceof Map) {
            return "an object";
        }
        if (value instanceof List) {
            return "an array";
        }
        if (value instanceof String s) {
            return "the string [" + (s.length() > 64 ? s.substring(0, 64) + "..." : s) + "]";
        }
        if (value instanceof Boolean) {
            return "a boolean";
        }
        return "[" + value + "]";
    }
}
