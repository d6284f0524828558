// PgJDBC scenarios: run against PostgreSQL directly and through pgpool,
// outputs compared.  Environment and output format: see ../python/common.py.
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.sql.*;
import java.util.*;

import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.copy.CopyManager;
import org.postgresql.largeobject.LargeObject;
import org.postgresql.largeobject.LargeObjectManager;
import org.postgresql.util.PSQLException;
import org.postgresql.util.ServerErrorMessage;

public class Suite {
    static String host = env("CLIENT_HOST", "127.0.0.1");
    static String port = env("CLIENT_PORT", "5432");
    static String user = env("CLIENT_USER", "postgres");
    static String db = env("CLIENT_DB", "test");
    static double scenarioTimeout = Double.parseDouble(env("CLIENT_SCENARIO_TIMEOUT", "30"));

    static String env(String k, String d) { String v = System.getenv(k); return v == null || v.isEmpty() ? d : v; }
    static void out(Object... parts) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < parts.length; i++) { if (i > 0) sb.append(' '); sb.append(parts[i]); }
        System.out.println(sb);
    }
    static String md5(byte[] b) throws Exception {
        byte[] d = MessageDigest.getInstance("MD5").digest(b);
        StringBuilder sb = new StringBuilder();
        for (byte x : d) sb.append(String.format("%02x", x));
        return sb.toString();
    }
    static String md5(String s) throws Exception { return md5(s.getBytes(StandardCharsets.UTF_8)); }

    static Connection connect() throws SQLException { return connect(new Properties()); }
    static Connection connect(Properties p) throws SQLException {
        p.setProperty("user", user);
        return DriverManager.getConnection("jdbc:postgresql://" + host + ":" + port + "/" + db, p);
    }
    static void err(Throwable e) {
        if (e instanceof SQLException && ((SQLException) e).getSQLState() != null) {
            SQLException s = (SQLException) e;
            String msg = s.getMessage();
            if (s instanceof PSQLException && ((PSQLException) s).getServerErrorMessage() != null) {
                msg = ((PSQLException) s).getServerErrorMessage().getMessage();
            }
            out("ERROR", s.getSQLState(), msg.split("\n")[0]);
        } else {
            out("EXC", e.getClass().getSimpleName(), String.valueOf(e.getMessage()).split("\n")[0]);
        }
    }
    static String fmt(Object v) throws Exception {
        if (v == null) return "NULL";
        if (v instanceof byte[]) { byte[] b = (byte[]) v; return "bytes[" + b.length + "]:" + md5(b); }
        if (v instanceof java.sql.Array) return "array:" + Arrays.deepToString((Object[]) ((java.sql.Array) v).getArray());
        String s = v.toString();
        if (s.length() > 200) return "str[" + s.length() + "]:" + md5(s);
        return v.getClass().getSimpleName() + ":" + s;
    }
    static void show(Statement st, boolean had) throws Exception {
        while (true) {
            if (had) {
                try (ResultSet rs = st.getResultSet()) { showRs(rs); }
            } else {
                int n = st.getUpdateCount();
                if (n == -1) break;
                out("  count", n);
            }
            had = st.getMoreResults();
        }
    }
    static void showRs(ResultSet rs) throws Exception {
        int n = rs.getMetaData().getColumnCount();
        while (rs.next()) {
            StringBuilder sb = new StringBuilder(" ");
            for (int i = 1; i <= n; i++) { sb.append(i == 1 ? " " : "|").append(fmt(rs.getObject(i))); }
            out(sb);
        }
    }
    static boolean q(Connection c, String sql) {
        try (Statement st = c.createStatement()) { show(st, st.execute(sql)); return true; }
        catch (Exception e) { err(e); return false; }
    }
    static boolean p(Connection c, String sql, Object... args) {
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            for (int i = 0; i < args.length; i++) ps.setObject(i + 1, args[i]);
            show(ps, ps.execute());
            return true;
        } catch (Exception e) { err(e); return false; }
    }
    static String fresh(Connection c, String name, String cols) throws SQLException {
        String t = "cl_jdbc_" + name;
        try (Statement st = c.createStatement()) {
            st.execute("DROP TABLE IF EXISTS " + t);
            st.execute("CREATE TABLE " + t + " (" + cols + ")");
        }
        return t;
    }
    static String fresh(Connection c, String name) throws SQLException { return fresh(c, name, "id int primary key, v text"); }
    static void drop(Connection c, String t) throws SQLException {
        boolean ac = c.getAutoCommit();
        if (!ac) c.rollback();
        c.setAutoCommit(true);
        try (Statement st = c.createStatement()) { st.execute("DROP TABLE " + t); }
    }

    interface Body { void run() throws Exception; }
    static LinkedHashMap<String, Body> S = new LinkedHashMap<>();

    static void define() {
        S.put("sql_prepare", () -> {
            try (Connection c = connect()) {
                String t = fresh(c, "sql_prepare");
                q(c, "INSERT INTO " + t + " VALUES (1, 'one'), (2, 'two')");
                q(c, "PREPARE p(int) AS SELECT v FROM " + t + " WHERE id = $1");
                q(c, "EXECUTE p(1)");
                q(c, "EXECUTE p(2)");
                q(c, "DEALLOCATE p");
                q(c, "PREPARE p(int) AS SELECT v || '!' FROM " + t + " WHERE id = $1");
                q(c, "EXECUTE p(2)");
                q(c, "DEALLOCATE p");
                q(c, "EXECUTE p(2)");
                drop(c, t);
            }
        });
        S.put("multi_set_show", () -> {
            try (Connection c = connect()) {
                q(c, "SET work_mem='8MB'; SHOW work_mem; SET work_mem='9MB'; SHOW work_mem");
                q(c, "SHOW work_mem");
                q(c, "SELECT current_setting('work_mem')");
                q(c, "SHOW work_mem");
            }
        });
        S.put("read_your_writes", () -> {
            try (Connection c = connect()) {
                String t = fresh(c, "ryw");
                for (int i = 1; i <= 3; i++) {
                    p(c, "INSERT INTO " + t + " VALUES (?, 'x')", i);
                    q(c, "SELECT count(*) FROM " + t);
                }
                c.setAutoCommit(false);
                q(c, "SELECT count(*) FROM " + t);
                p(c, "INSERT INTO " + t + " VALUES (?, 'tx')", 100);
                p(c, "SELECT count(*) FROM " + t);
                c.commit();
                drop(c, t);
            }
        });
        S.put("batch_autocommit", () -> batch(true));
        S.put("batch_transaction", () -> batch(false));
        S.put("savepoints", () -> {
            try (Connection c = connect()) {
                String t = fresh(c, "savepoints");
                c.setAutoCommit(false);
                q(c, "INSERT INTO " + t + " VALUES (1, 'a')");
                Savepoint s1 = c.setSavepoint("s1");
                q(c, "INSERT INTO " + t + " VALUES (2, 'b')");
                q(c, "INSERT INTO " + t + " VALUES (1, 'dup')");
                c.rollback(s1);
                q(c, "SELECT count(*) FROM " + t);
                q(c, "INSERT INTO " + t + " VALUES (3, 'c')");
                c.commit();
                q(c, "SELECT id FROM " + t + " ORDER BY id");
                c.commit();
                drop(c, t);
            }
        });
        S.put("prepared_reuse", () -> {
            try (Connection c = connect()) {
                String t = fresh(c, "prep_reuse");
                q(c, "INSERT INTO " + t + " SELECT i, 'v' || i FROM generate_series(1, 100) i");
                int total = 0;
                try (PreparedStatement ps = c.prepareStatement("SELECT v FROM " + t + " WHERE id = ?")) {
                    for (int i = 1; i <= 50; i++) {
                        ps.setInt(1, i);
                        try (ResultSet rs = ps.executeQuery()) { rs.next(); total += rs.getString(1).length(); }
                    }
                    out("  50 executions, total length", total);
                    q(c, "DISCARD ALL");
                    total = 0;
                    for (int i = 1; i <= 10; i++) {
                        ps.setInt(1, i);
                        try (ResultSet rs = ps.executeQuery()) { rs.next(); total += rs.getString(1).length(); }
                        catch (SQLException e) { err(e); }
                    }
                    out("  after DISCARD ALL, total length", total);
                }
                try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + t + " VALUES (?, 'w')")) {
                    for (int i = 0; i < 10; i++) { ps.setInt(1, 1000 + i); ps.executeUpdate(); }
                }
                q(c, "SELECT count(*) FROM " + t);
                drop(c, t);
            }
        });
        S.put("types_text", () -> types("extended"));
        S.put("types_binary", () -> types("binary"));
        S.put("copy_manager", () -> {
            try (Connection c = connect()) {
                String t = fresh(c, "copy", "id int primary key, v text");
                CopyManager cm = c.unwrap(PGConnection.class).getCopyAPI();
                StringBuilder sb = new StringBuilder();
                for (int i = 1; i <= 10000; i++) sb.append(i).append('\t').append("row ").append(i).append(" ünï ").append("x".repeat(i % 50)).append('\n');
                byte[] data = sb.toString().getBytes(StandardCharsets.UTF_8);
                out("  copyIn", cm.copyIn("COPY " + t + " FROM STDIN", new ByteArrayInputStream(data), 65536));
                q(c, "SELECT count(*), sum(id), md5(string_agg(v, ',' ORDER BY id)) FROM " + t);
                ByteArrayOutputStream bo = new ByteArrayOutputStream();
                out("  copyOut", cm.copyOut("COPY (SELECT * FROM " + t + " ORDER BY id) TO STDOUT", bo));
                out("  copied out", bo.size(), md5(bo.toByteArray()), Arrays.equals(bo.toByteArray(), data));
                try { cm.copyIn("COPY " + t + " FROM STDIN", new ByteArrayInputStream("1\tdup\n".getBytes())); }
                catch (SQLException e) { err(e); }
                c.setAutoCommit(false);
                q(c, "SELECT count(*) FROM " + t);
                out("  copyIn in tx", cm.copyIn("COPY " + t + " FROM STDIN", new ByteArrayInputStream("20001\ta\n20002\tb\n".getBytes())));
                q(c, "SELECT count(*) FROM " + t);
                c.commit();
                drop(c, t);
            }
        });
        S.put("fetch_size_cursor", () -> {
            try (Connection c = connect()) {
                String t = fresh(c, "fetchsize");
                q(c, "INSERT INTO " + t + " SELECT i, 'v' || i FROM generate_series(1, 1000) i");
                c.setAutoCommit(false);
                try (Statement st = c.createStatement()) {
                    st.setFetchSize(50);
                    long n = 0, s = 0;
                    try (ResultSet rs = st.executeQuery("SELECT id FROM " + t + " ORDER BY id")) {
                        while (rs.next()) { n++; s += rs.getInt(1); }
                    }
                    out("  fetched", n, s);
                }
                try (PreparedStatement ps = c.prepareStatement("SELECT id, v FROM " + t + " WHERE id > ? ORDER BY id")) {
                    ps.setFetchSize(10);
                    ps.setInt(1, 900);
                    long n = 0;
                    try (ResultSet rs = ps.executeQuery()) { while (rs.next()) n++; }
                    out("  prepared fetched", n);
                }
                q(c, "DECLARE cur CURSOR FOR SELECT id FROM " + t + " ORDER BY id");
                q(c, "FETCH 2 FROM cur");
                q(c, "MOVE 5 IN cur");
                q(c, "FETCH 1 FROM cur");
                c.commit();
                drop(c, t);
            }
        });
        S.put("listen_notify", () -> {
            try (Connection c = connect(); Connection other = connect()) {
                PGConnection pc = c.unwrap(PGConnection.class);
                int me = pc.getBackendPID(), them = other.unwrap(PGConnection.class).getBackendPID();
                q(c, "LISTEN cl_jdbc_ch");
                q(c, "NOTIFY cl_jdbc_ch, 'from me'");
                q(other, "NOTIFY cl_jdbc_ch, 'from other'");
                q(c, "SELECT pg_notify('cl_jdbc_ch', 'from me via function')");
                List<String> got = new ArrayList<>();
                long end = System.currentTimeMillis() + 3000;
                while (got.size() < 3 && System.currentTimeMillis() < end) {
                    PGNotification[] ns = pc.getNotifications(500);
                    if (ns == null) continue;
                    for (PGNotification n : ns)
                        got.add(n.getParameter() + " " + n.getName() + " " + (n.getPID() == me ? "own-pid" : n.getPID() == them ? "other-pid" : "unknown-pid"));
                }
                Collections.sort(got);
                for (String g : got) out("  notify", g);
            }
        });
        S.put("cancel_and_timeout", () -> {
            try (Connection c = connect(); Statement st = c.createStatement()) {
                Thread th = new Thread(() -> { try { Thread.sleep(500); st.cancel(); } catch (Exception e) { err(e); } });
                th.start();
                try { st.execute("SELECT pg_sleep(5)"); out("  not cancelled"); } catch (SQLException e) { err(e); }
                th.join();
                q(c, "SELECT 1");
                st.setQueryTimeout(1);
                try { st.execute("SELECT pg_sleep(5)"); out("  no timeout"); } catch (SQLException e) { err(e); }
                st.setQueryTimeout(0);
                q(c, "SET statement_timeout = '300ms'");
                q(c, "SELECT pg_sleep(3)");
                q(c, "SHOW statement_timeout");
            }
        });
        S.put("temp_table", () -> {
            try (Connection c = connect()) {
                q(c, "CREATE TEMP TABLE cl_jdbc_tmp (id int, v text)");
                q(c, "INSERT INTO cl_jdbc_tmp VALUES (1, 'a'), (2, 'b')");
                q(c, "SELECT count(*) FROM cl_jdbc_tmp");
                p(c, "SELECT v FROM cl_jdbc_tmp WHERE id = ?", 2);
                q(c, "DROP TABLE cl_jdbc_tmp");
                q(c, "SELECT count(*) FROM cl_jdbc_tmp");
            }
        });
        S.put("big_value_and_result", () -> {
            try (Connection c = connect()) {
                String t = fresh(c, "big");
                String big = "0123456789abcdef".repeat(10 * 1024 * 1024 / 16);
                p(c, "INSERT INTO " + t + " VALUES (1, ?)", big);
                q(c, "SELECT length(v), md5(v) FROM " + t);
                try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT v FROM " + t)) {
                    rs.next();
                    out("  fetched", rs.getString(1).length(), rs.getString(1).equals(big));
                }
                try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT i, md5(i::text) FROM generate_series(1, 100000) i")) {
                    MessageDigest d = MessageDigest.getInstance("MD5");
                    int n = 0;
                    while (rs.next()) { n++; d.update((rs.getInt(1) + " " + rs.getString(2) + "\n").getBytes()); }
                    StringBuilder sb = new StringBuilder();
                    for (byte x : d.digest()) sb.append(String.format("%02x", x));
                    out("  rows", n, sb);
                }
                drop(c, t);
            }
        });
        S.put("unicode", () -> {
            try (Connection c = connect()) {
                p(c, "SELECT ?::text, length(?::text), octet_length(?::text)", "héllo wörld 日本語 🐘 ñ", "héllo wörld 日本語 🐘 ñ", "héllo wörld 日本語 🐘 ñ");
                q(c, "SELECT 1 AS \"çolümn 名\"");
            }
        });
        S.put("large_objects", () -> {
            try (Connection c = connect()) {
                c.setAutoCommit(false);
                LargeObjectManager lom = c.unwrap(PGConnection.class).getLargeObjectAPI();
                long oid = lom.createLO(LargeObjectManager.READWRITE);
                byte[] data = new byte[1 << 20];
                for (int i = 0; i < data.length; i++) data[i] = (byte) (i % 251);
                try (LargeObject lo = lom.open(oid, LargeObjectManager.WRITE)) { lo.write(data); }
                c.commit();
                try (LargeObject lo = lom.open(oid, LargeObjectManager.READ)) {
                    byte[] got = lo.read(data.length + 10);
                    out("  read back", got.length, Arrays.equals(got, data));
                    lo.seek(1000);
                    out("  at 1000", Arrays.toString(lo.read(4)));
                }
                c.commit();
                p(c, "SELECT length(lo_get(?)), md5(lo_get(?))", oid, oid);
                c.commit();
                lom.delete(oid);
                c.commit();
                p(c, "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = ?", oid);
                c.commit();
            }
        });
    }

    static void batch(boolean autocommit) throws Exception {
        try (Connection c = connect()) {
            String t = fresh(c, autocommit ? "batch_ac" : "batch_tx");
            c.setAutoCommit(autocommit);
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + t + " VALUES (?, 'b')")) {
                for (int i = 1; i <= 100; i++) { ps.setInt(1, i); ps.addBatch(); }
                out("  batch", Arrays.toString(ps.executeBatch()));
            }
            q(c, "SELECT count(*) FROM " + t);
            if (!autocommit) c.commit();
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + t + " VALUES (?, 'e')")) {
                for (int i : new int[] {200, 201, 50, 202}) { ps.setInt(1, i); ps.addBatch(); }
                out("  batch", Arrays.toString(ps.executeBatch()));
            } catch (BatchUpdateException e) {
                out("  counts", Arrays.toString(e.getUpdateCounts()));
                err(e.getNextException() != null ? e.getNextException() : e);
            }
            if (!autocommit) c.rollback();
            q(c, "SELECT count(*) FROM " + t);
            if (!autocommit) c.commit();
            try (Statement st = c.createStatement()) {
                st.addBatch("INSERT INTO " + t + " VALUES (300, 's')");
                st.addBatch("UPDATE " + t + " SET v = 'u' WHERE id <= 10");
                st.addBatch("DELETE FROM " + t + " WHERE id = 100");
                out("  statement batch", Arrays.toString(st.executeBatch()));
            }
            q(c, "SELECT count(*), count(*) FILTER (WHERE v = 'u') FROM " + t);
            if (!autocommit) c.commit();
            drop(c, t);
        }
    }

    static void types(String mode) throws Exception {
        Properties pr = new Properties();
        if (mode.equals("binary")) { pr.setProperty("prepareThreshold", "-1"); pr.setProperty("binaryTransfer", "true"); }
        else pr.setProperty("binaryTransfer", "false");
        try (Connection c = connect(pr)) {
            q(c, "SET TimeZone = 'UTC'");
            Object[][] vals = {
                {"int2", (short) 7}, {"int4", Integer.MIN_VALUE}, {"int8", Long.MAX_VALUE}, {"float8", 1.5e300},
                {"float4", 0.25f}, {"numeric", new BigDecimal("12345678901234567890.123456789")},
                {"text", "plain 'quoted' \\ text"}, {"bytea", new byte[] {0, 1, 2, (byte) 254, (byte) 255}},
                {"bool", true}, {"date", java.sql.Date.valueOf("2024-02-29")},
                {"timestamp", java.sql.Timestamp.valueOf("2001-02-03 04:05:06.000789")},
                {"uuid", UUID.fromString("12345678-1234-5678-1234-567812345678")},
            };
            for (Object[] v : vals) {
                try (PreparedStatement ps = c.prepareStatement("SELECT ?::" + v[0] + ", pg_typeof(?::" + v[0] + ")::text, (?::" + v[0] + ")::text")) {
                    ps.setObject(1, v[1]); ps.setObject(2, v[1]); ps.setObject(3, v[1]);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        out(" ", v[0], fmt(rs.getObject(1)), rs.getString(2), rs.getString(3));
                    }
                } catch (SQLException e) { out(" ", v[0]); err(e); }
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT ?::int4[], ?::text[], ?::jsonb, ?::timestamptz")) {
                ps.setArray(1, c.createArrayOf("int4", new Integer[] {1, 2, 3}));
                ps.setArray(2, c.createArrayOf("text", new String[] {"a", "b c", null}));
                ps.setString(3, "{\"a\": [1, 2, {\"b\": null}]}");
                ps.setObject(4, java.time.OffsetDateTime.parse("2001-02-03T04:05:06Z"));
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    out("  arrays", fmt(rs.getArray(1)), fmt(rs.getArray(2)), rs.getString(3), rs.getObject(4, java.time.OffsetDateTime.class));
                }
            } catch (SQLException e) { err(e); }
        }
    }

    public static void main(String[] a) throws Exception {
        define();
        List<String> names = new ArrayList<>(S.keySet());
        String only = env("CLIENT_ONLY", "");
        if (!only.isEmpty()) names.retainAll(Arrays.asList(only.split(",")));
        String after = env("CLIENT_AFTER", "");
        if (!after.isEmpty() && names.contains(after)) names = names.subList(names.indexOf(after) + 1, names.size());
        out("# pgjdbc", org.postgresql.util.DriverInfo.DRIVER_VERSION, "java", System.getProperty("java.version"));
        for (Map.Entry<String, Body> e : S.entrySet()) {
            if (!names.contains(e.getKey())) continue;
            out("==", e.getKey());
            System.out.flush();
            Timer wd = new Timer(true);
            wd.schedule(new TimerTask() {
                public void run() {
                    System.out.println("!! HUNG: no answer within " + scenarioTimeout + "s");
                    System.out.flush();
                    Runtime.getRuntime().halt(3);
                }
            }, (long) (scenarioTimeout * 1000));
            try { e.getValue().run(); } catch (Throwable ex) { out("!! scenario aborted:"); err(ex); }
            wd.cancel();
            System.out.flush();
        }
        System.exit(0);
    }
}
