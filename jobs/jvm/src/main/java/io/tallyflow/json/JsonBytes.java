package io.tallyflow.json;

import java.nio.charset.StandardCharsets;
import java.time.LocalDate;
import java.util.Arrays;
import org.apache.flink.table.data.DecimalData;
import org.apache.flink.table.data.StringData;

/**
 * A reusable UTF-8 JSON writer for the documents RouteEvents emits. Strings are escaped on their
 * UTF-8 bytes as they sit in Flink's rows (no decoding to Java strings): only '"', '\\' and
 * control characters need escapes, every other byte, multi-byte sequences included, is copied.
 * Escapes follow Jackson's (the escaping Flink's JSON functions use).
 */
public final class JsonBytes {
    private static final byte[] HEX = "0123456789ABCDEF".getBytes(StandardCharsets.US_ASCII);
    private static final int[] LIMIT = {1, 10, 100, 1000, 10000};
    private byte[] buf = new byte[512];
    private int len;

    public JsonBytes reset() {
        len = 0;
        return this;
    }

    public int length() {
        return len;
    }

    public byte[] toBytes() {
        return Arrays.copyOf(buf, len);
    }

    @Override
    public String toString() {
        return new String(buf, 0, len, StandardCharsets.UTF_8);
    }

    private void ensure(int extra) {
        if (len + extra > buf.length) {
            buf = Arrays.copyOf(buf, Math.max(buf.length * 2, len + extra));
        }
    }

    public JsonBytes ch(char c) {
        ensure(1);
        buf[len++] = (byte) c;
        return this;
    }

    /** ASCII text as is (field names and punctuation this class's callers control). */
    public JsonBytes raw(String ascii) {
        int n = ascii.length();
        ensure(n);
        for (int i = 0; i < n; i++) {
            buf[len++] = (byte) ascii.charAt(i);
        }
        return this;
    }

    /** Another writer's bytes, as they are. */
    public JsonBytes append(JsonBytes other) {
        ensure(other.len);
        System.arraycopy(other.buf, 0, buf, len, other.len);
        len += other.len;
        return this;
    }

    public JsonBytes number(long v) {
        return raw(Long.toString(v));
    }

    public JsonBytes bool(boolean v) {
        return raw(v ? "true" : "false");
    }

    public JsonBytes string(StringData s) {
        return string(s.toBytes());
    }

    public JsonBytes string(String s) {
        return string(s.getBytes(StandardCharsets.UTF_8));
    }

    private JsonBytes string(byte[] utf8) {
        ensure(utf8.length + 2);
        buf[len++] = '"';
        for (byte b : utf8) {
            if (b == '"' || b == '\\') {
                ensure(2 + 1);
                buf[len++] = '\\';
                buf[len++] = b;
            } else if (b >= 0 && b < 0x20) {
                ensure(6 + 1);
                buf[len++] = '\\';
                switch (b) {
                    case '\n' -> buf[len++] = 'n';
                    case '\r' -> buf[len++] = 'r';
                    case '\t' -> buf[len++] = 't';
                    case '\b' -> buf[len++] = 'b';
                    case '\f' -> buf[len++] = 'f';
                    default -> {
                        buf[len++] = 'u';
                        buf[len++] = '0';
                        buf[len++] = '0';
                        buf[len++] = HEX[b >> 4];
                        buf[len++] = HEX[b & 0xF];
                    }
                }
            } else {
                ensure(1 + 1);
                buf[len++] = b;
            }
        }
        ensure(1);
        buf[len++] = '"';
        return this;
    }

    /** A plain decimal number without trailing fractional zeros: 12.500000000000 -> 12.5, 3.0 -> 3. */
    public JsonBytes decimal(DecimalData d) {
        String plain = d.toBigDecimal().toPlainString();
        int end = plain.length();
        if (plain.indexOf('.') >= 0) {
            while (plain.charAt(end - 1) == '0') {
                end--;
            }
            if (plain.charAt(end - 1) == '.') {
                end--;
            }
        }
        return raw(plain.substring(0, end));
    }

    /** ISO-8601 UTC with milliseconds, quoted: "2026-10-31T23:59:59.999Z". */
    public JsonBytes time(long epochMs) {
        long days = Math.floorDiv(epochMs, 86_400_000L);
        int ms = (int) Math.floorMod(epochMs, 86_400_000L);
        LocalDate d = LocalDate.ofEpochDay(days);
        ensure(26);
        buf[len++] = '"';
        digits(d.getYear(), 4).ch('-');
        digits(d.getMonthValue(), 2).ch('-');
        digits(d.getDayOfMonth(), 2).ch('T');
        digits(ms / 3_600_000, 2).ch(':');
        digits(ms / 60_000 % 60, 2).ch(':');
        digits(ms / 1000 % 60, 2).ch('.');
        digits(ms % 1000, 3).raw("Z\"");
        return this;
    }

    private JsonBytes digits(int v, int width) {
        if (v >= LIMIT[width] || v < 0) {
            return raw(Integer.toString(v));  // a year past 9999: longer, still valid
        }
        ensure(width);
        for (int i = width - 1; i >= 0; i--) {
            buf[len + i] = (byte) ('0' + v % 10);
            v /= 10;
        }
        len += width;
        return this;
    }
}
