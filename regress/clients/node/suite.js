// node-postgres (pg) scenarios: run against PostgreSQL directly and through
// pgpool, outputs compared.  Environment and output format: see
// ../python/common.py (CLIENT_PORT, CLIENT_ONLY, CLIENT_AFTER, ...).
'use strict';
const crypto = require('crypto');
const pg = require('pg');

const cfg = {
  host: process.env.CLIENT_HOST || '127.0.0.1',
  port: parseInt(process.env.CLIENT_PORT || '5432', 10),
  user: process.env.CLIENT_USER || 'postgres',
  database: process.env.CLIENT_DB || 'test',
};
const SCENARIO_TIMEOUT = parseFloat(process.env.CLIENT_SCENARIO_TIMEOUT || '30') * 1000;

const lines = [];
function out(...parts) { process.stdout.write(parts.join(' ') + '\n'); }
const md5 = (s) => crypto.createHash('md5').update(s).digest('hex');

function fmt(v) {
  if (v === null || v === undefined) return 'NULL';
  if (Buffer.isBuffer(v)) return 'bytes[' + v.length + ']:' + (v.length <= 32 ? v.toString('hex') : md5(v));
  if (v instanceof Date) return 'date:' + v.toISOString();
  if (Array.isArray(v)) return '[' + v.map(fmt).join(',') + ']';
  if (typeof v === 'object') return 'obj:' + JSON.stringify(v);
  if (typeof v === 'string' && v.length > 200) return 'str[' + v.length + ']:' + md5(v);
  return typeof v + ':' + String(v);
}
function err(e) {
  if (e && e.code && /^[0-9A-Z]{5}$/.test(e.code)) out('ERROR', e.code, e.message);
  else out('EXC', e && e.name, e && String(e.message).split('\n')[0]);
}
function showResult(r) {
  for (const res of Array.isArray(r) ? r : [r]) {
    if (res.fields && res.fields.length) {
      for (const row of res.rows) out(' ', (Array.isArray(row) ? row : Object.values(row)).map(fmt).join('|'));
    } else {
      out(' ', res.command + (res.rowCount !== null && res.rowCount !== undefined ? ' ' + res.rowCount : ''));
    }
  }
}
async function connect(extra) {
  const c = new pg.Client(Object.assign({}, cfg, extra || {}));
  c.on('error', (e) => out('  client error event', e.code || e.message));
  await c.connect();
  return c;
}
async function q(c, text, values, opts) {
  try {
    showResult(await c.query(Object.assign({ text, values }, opts || {})));
    return true;
  } catch (e) { err(e); return false; }
}
const tbl = (n) => 'cl_node_' + n;
async function fresh(c, name, cols) {
  const t = tbl(name);
  await c.query('DROP TABLE IF EXISTS ' + t);
  await c.query('CREATE TABLE ' + t + ' (' + (cols || 'id int primary key, v text') + ')');
  return t;
}
// settle every promise, in order, and print each outcome
async function settleAll(promises) {
  const res = await Promise.allSettled(promises);
  res.forEach((r, i) => {
    if (r.status === 'fulfilled') {
      const x = r.value;
      if (x.fields && x.fields.length) out('  q' + i, 'rows', x.rows.map((row) => Object.values(row).map(fmt).join('|')).join(' '));
      else out('  q' + i, x.command, x.rowCount);
    } else { out('  q' + i, 'error'); err(r.reason); }
  });
}

const S = [];
const scenario = (name, fn) => S.push([name, fn]);

scenario('sql_prepare', async () => {
  const c = await connect();
  const t = await fresh(c, 'sql_prepare');
  await c.query(`INSERT INTO ${t} VALUES (1, 'one'), (2, 'two')`);
  await q(c, `PREPARE p(int) AS SELECT v FROM ${t} WHERE id = $1`);
  await q(c, 'EXECUTE p(1)');
  await q(c, 'EXECUTE p(2)');
  await q(c, 'DEALLOCATE p');
  await q(c, `PREPARE p(int) AS SELECT v || '!' FROM ${t} WHERE id = $1`);
  await q(c, 'EXECUTE p(2)');
  await q(c, 'DEALLOCATE p');
  await q(c, 'EXECUTE p(2)');
  await c.query('DROP TABLE ' + t);
  await c.end();
});

scenario('multi_set_show', async () => {
  const c = await connect();
  await q(c, "SET work_mem='8MB'; SHOW work_mem; SET work_mem='9MB'; SHOW work_mem");
  await q(c, 'SHOW work_mem');
  await q(c, "SELECT current_setting('work_mem')");
  await q(c, 'SHOW work_mem');
  await c.end();
});

scenario('read_your_writes', async () => {
  const c = await connect();
  const t = await fresh(c, 'ryw');
  for (let i = 1; i <= 3; i++) {
    await c.query(`INSERT INTO ${t} VALUES ($1, 'x')`, [i]);
    await q(c, `SELECT count(*) FROM ${t}`);
  }
  await q(c, 'BEGIN');
  await q(c, `SELECT count(*) FROM ${t}`);
  await q(c, `INSERT INTO ${t} VALUES ($1, 'tx')`, [100]);
  await q(c, `SELECT count(*) FROM ${t}`);
  await q(c, 'COMMIT');
  await c.query('DROP TABLE ' + t);
  await c.end();
});

// 50 INSERTs then a SELECT, then an error in the middle, none awaited in between; with
// `pipeline: true` pg's opt-in pipeline mode sends them all at once (Parse/Bind/Execute/Sync
// each) and reads the answers afterwards, so reads really follow writes still in flight.
async function pipelinedAutocommit(extra, name) {
  const c = await connect(extra);
  const t = await fresh(c, name);
  const ps = [];
  for (let i = 1; i <= 50; i++) ps.push(c.query(`INSERT INTO ${t} VALUES ($1, 'p')`, [i]));
  ps.push(c.query(`SELECT count(*) FROM ${t}`));
  await settleAll(ps);
  // Outside pipeline mode the error part goes as simple queries (no parameters).
  const ins = (v, w) => (extra.pipeline
    ? c.query(`INSERT INTO ${t} VALUES ($1, '${w}')`, [v])
    : c.query(`INSERT INTO ${t} VALUES (${v}, '${w}')`));
  await settleAll([ins(100, 'a'), ins(1, 'dup'), ins(101, 'b'), c.query(`SELECT count(*) FROM ${t}`)]);
  await c.query('DROP TABLE ' + t);
  await c.end();
}

async function pipelinedTransaction(extra, name) {
  const c = await connect(extra);
  const t = await fresh(c, name);
  const ps = [c.query('BEGIN')];
  for (let i = 1; i <= 50; i++) ps.push(c.query(`INSERT INTO ${t} VALUES ($1, 'p')`, [i]));
  ps.push(c.query(`SELECT count(*) FROM ${t}`));
  ps.push(c.query('COMMIT'));
  await settleAll(ps);
  await settleAll([
    c.query('BEGIN'),
    c.query(`INSERT INTO ${t} VALUES ($1, 'a')`, [100]),
    c.query(`INSERT INTO ${t} VALUES ($1, 'dup')`, [1]),
    c.query(`INSERT INTO ${t} VALUES ($1, 'b')`, [101]),
    c.query(`SELECT count(*) FROM ${t}`),
    c.query('COMMIT'),
    c.query(`SELECT count(*) FROM ${t}`),
  ]);
  await c.query('DROP TABLE ' + t);
  await c.end();
}

scenario('pipelined_autocommit', () => pipelinedAutocommit({}, 'pipe_ac'));
scenario('pipelined_transaction', () => pipelinedTransaction({}, 'pipe_tx'));
scenario('pipeline_mode_autocommit', () => pipelinedAutocommit({ pipeline: true }, 'pmode_ac'));
scenario('pipeline_mode_transaction', () => pipelinedTransaction({ pipeline: true }, 'pmode_tx'));

scenario('savepoints', async () => {
  const c = await connect();
  const t = await fresh(c, 'savepoints');
  for (const s of ['BEGIN', `INSERT INTO ${t} VALUES (1, 'a')`, 'SAVEPOINT s1', `INSERT INTO ${t} VALUES (2, 'b')`,
    `INSERT INTO ${t} VALUES (1, 'dup')`, `SELECT count(*) FROM ${t}`, 'ROLLBACK TO s1', `SELECT count(*) FROM ${t}`,
    'RELEASE s1', `INSERT INTO ${t} VALUES (3, 'c')`, 'COMMIT', `SELECT id FROM ${t} ORDER BY id`]) {
    await q(c, s);
  }
  await c.query('DROP TABLE ' + t);
  await c.end();
});

scenario('prepared_reuse', async () => {
  const c = await connect();
  const t = await fresh(c, 'prep_reuse');
  await c.query(`INSERT INTO ${t} SELECT i, 'v' || i FROM generate_series(1, 100) i`);
  let total = 0;
  for (let i = 1; i <= 50; i++) {
    const r = await c.query({ name: 'sel', text: `SELECT v FROM ${t} WHERE id = $1`, values: [i] });
    total += r.rows[0].v.length;
  }
  out('  50 executions, total length', total);
  await q(c, 'DISCARD ALL');
  try {
    const r = await c.query({ name: 'sel', text: `SELECT v FROM ${t} WHERE id = $1`, values: [1] });
    out('  named statement after DISCARD ALL', fmt(r.rows[0].v));
  } catch (e) { err(e); }
  for (let i = 0; i < 5; i++) {
    try {
      await c.query({ name: 'ins', text: `INSERT INTO ${t} VALUES ($1, 'w')`, values: [1000 + i] });
    } catch (e) { err(e); }
  }
  await q(c, `SELECT count(*) FROM ${t}`);
  await c.query('DROP TABLE ' + t);
  await c.end();
});

const TYPES = [
  ['int2', 7], ['int4', -2147483648], ['int8', '9223372036854775807'], ['float8', 1.5e300], ['float4', 0.25],
  ['numeric', '12345678901234567890.123456789'], ['text', "plain 'quoted' \\ text"], ['bytea', Buffer.from([0, 1, 2, 254, 255])],
  ['bool', true], ['date', '2024-02-29'], ['timestamp', '2001-02-03 04:05:06.000789'],
  ['timestamptz', '2001-02-03 04:05:06+00'], ['interval', '3 days 00:00:07.000005'],
  ['uuid', '12345678-1234-5678-1234-567812345678'], ['jsonb', { a: [1, 2, { b: null }] }], ['int4[]', [1, 2, 3]],
  ['text[]', ['a', 'b c', null]],
];

async function types(binary) {
  const c = await connect();
  await c.query("SET TimeZone = 'UTC'");
  for (const [typ, val] of TYPES) {
    try {
      // binary results: node-pg's binary parsers are incomplete, so compare the raw bytes
      const raw = { getTypeParser: (oid, format) => (v) => (Buffer.isBuffer(v) ? v : Buffer.from(v, 'utf8')) };
      const r = await c.query({ text: `SELECT $1::${typ} AS v, pg_typeof($1::${typ})::text AS t`, values: [val], rowMode: 'array', binary, types: binary ? raw : undefined });
      out(' ', typ, fmt(r.rows[0][0]), Buffer.isBuffer(r.rows[0][1]) ? r.rows[0][1].toString() : r.rows[0][1]);
    } catch (e) { out(' ', typ); err(e); }
  }
  await c.end();
}
scenario('types_text', () => types(false));
scenario('types_binary', () => types(true));

scenario('cursor_sql', async () => {
  const c = await connect();
  for (const s of ['BEGIN', 'DECLARE cur CURSOR FOR SELECT i FROM generate_series(1, 10) i', 'FETCH 3 FROM cur',
    'MOVE 2 IN cur', 'FETCH 2 FROM cur', 'CLOSE cur', 'COMMIT']) await q(c, s);
  await c.end();
});

scenario('listen_notify', async () => {
  const c = await connect();
  const other = await connect();
  const got = [];
  let done;
  const all = new Promise((res) => { done = res; });
  c.on('notification', (n) => { got.push(n); if (got.length === 3) done(); });
  await c.query('LISTEN cl_node_ch');
  await c.query("NOTIFY cl_node_ch, 'from me'");
  await other.query("NOTIFY cl_node_ch, 'from other'");
  await c.query("SELECT pg_notify('cl_node_ch', 'from me via function')");
  await Promise.race([all, new Promise((res) => setTimeout(res, 3000))]);
  got.sort((a, b) => (a.payload < b.payload ? -1 : 1));
  for (const n of got) {
    out('  notify', n.payload, n.channel, n.processId === c.processID ? 'own-pid' : n.processId === other.processID ? 'other-pid' : 'unknown-pid');
  }
  await c.end();
  await other.end();
});

scenario('cancel_and_timeout', async () => {
  const c = await connect();
  const p = c.query('SELECT pg_sleep(5)');
  await new Promise((res) => setTimeout(res, 500));
  // node-pg cancels through a second connection sending CancelRequest with processID/secretKey
  const canceller = new pg.Client(cfg);
  try {
    await new Promise((resolve, reject) => {
      const con = canceller.connection;
      con.on('connect', () => { con.cancel(c.processID, c.secretKey); resolve(); });
      con.on('error', reject);
      con.connect(cfg.port, cfg.host);
    });
  } catch (e) { err(e); }
  try { await p; out('  not cancelled'); } catch (e) { err(e); }
  await q(c, 'SELECT 1 AS one');
  await c.end();
  // statement_timeout on a connection of its own: a cancel PostgreSQL delivers late (seen
  // directly on a loaded machine) must not turn its "statement timeout" into "user request".
  const t = await connect();
  await q(t, "SET statement_timeout = '300ms'");
  await q(t, 'SELECT pg_sleep(3)');
  await q(t, 'SHOW statement_timeout');
  await t.end();
});

scenario('temp_table', async () => {
  const c = await connect();
  for (const s of ['CREATE TEMP TABLE cl_node_tmp (id int, v text)', "INSERT INTO cl_node_tmp VALUES (1, 'a'), (2, 'b')",
    'SELECT count(*) FROM cl_node_tmp']) await q(c, s);
  await q(c, 'SELECT v FROM cl_node_tmp WHERE id = $1', [2]);
  await q(c, 'DROP TABLE cl_node_tmp');
  await q(c, 'SELECT count(*) FROM cl_node_tmp');
  await c.end();
});

scenario('big_value_and_result', async () => {
  const c = await connect();
  const t = await fresh(c, 'big');
  const big = '0123456789abcdef'.repeat(10 * 1024 * 1024 / 16);
  await c.query(`INSERT INTO ${t} VALUES (1, $1)`, [big]);
  await q(c, `SELECT length(v), md5(v) FROM ${t}`);
  const r = await c.query(`SELECT v FROM ${t}`);
  out('  fetched', r.rows[0].v.length, md5(r.rows[0].v) === md5(big));
  const rows = (await c.query({ text: 'SELECT i, md5(i::text) FROM generate_series(1, 100000) i', rowMode: 'array' })).rows;
  out('  rows', rows.length, md5(rows.map((x) => x[0] + ' ' + x[1] + '\n').join('')));
  await c.query('DROP TABLE ' + t);
  await c.end();
});

scenario('unicode', async () => {
  const c = await connect();
  const s = 'héllo wörld 日本語 🐘 ñ';
  await q(c, 'SELECT $1::text, length($1::text), octet_length($1::text)', [s]);
  await q(c, 'SELECT 1 AS "çolümn 名"');
  await c.end();
});

scenario('large_objects', async () => {
  const c = await connect();
  const data = Buffer.alloc(1 << 20);
  for (let i = 0; i < data.length; i++) data[i] = i % 256;
  await q(c, 'BEGIN');
  const oid = (await c.query('SELECT lo_from_bytea(0, $1) AS oid', [data])).rows[0].oid;
  await q(c, 'SELECT length(lo_get($1)), md5(lo_get($1))', [oid]);
  await q(c, 'COMMIT');
  const got = (await c.query('SELECT lo_get($1) AS b', [oid])).rows[0].b;
  out('  read back', got.length, md5(got) === md5(data));
  await q(c, 'SELECT lo_unlink($1)', [oid]);
  await c.end();
});

async function main() {
  let names = S.map((s) => s[0]);
  const only = (process.env.CLIENT_ONLY || '').split(',').filter(Boolean);
  if (only.length) names = names.filter((n) => only.includes(n));
  const after = process.env.CLIENT_AFTER || '';
  if (after && names.includes(after)) names = names.slice(names.indexOf(after) + 1);
  out('# node-postgres', require('pg/package.json').version, 'node', process.version);
  for (const [name, fn] of S) {
    if (!names.includes(name)) continue;
    out('==', name);
    const wd = setTimeout(() => {
      process.stdout.write('!! HUNG: no answer within ' + SCENARIO_TIMEOUT / 1000 + 's\n', () => process.exit(3));
    }, SCENARIO_TIMEOUT);
    try { await fn(); } catch (e) { out('!! scenario aborted:'); err(e); }
    clearTimeout(wd);
  }
}
main().then(() => process.exit(0));
