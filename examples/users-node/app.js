// kpy's Node.js sample: an http server over node-postgres with a pool, parameterized queries,
// a named prepared statement (prepared once per pooled connection) and a transaction.
// Nothing in it knows about kpy. Environment: DATABASE_URL, PORT. Run: node app.js
"use strict";
const http = require("http");
const { Pool } = require("pg");

const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: 4 });

async function route(req) {
  const url = new URL(req.url, "http://localhost");
  if (req.method === "GET" && url.pathname === "/users") {
    return [200, (await pool.query("SELECT id, name FROM users ORDER BY id")).rows];
  }
  if (req.method === "GET" && url.pathname.startsWith("/users/")) {
    const id = Number(url.pathname.split("/")[2]);
    const byId = { name: "user-by-id", text: "SELECT id, name FROM users WHERE id = $1", values: [id] };
    const { rows } = await pool.query(byId);
    return rows.length ? [200, rows[0]] : [404, { error: "not found" }];
  }
  if (req.method === "POST" && url.pathname === "/users") {
    let body = "";
    for await (const chunk of req) body += chunk;
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      const insert = "INSERT INTO users (name) VALUES ($1) RETURNING id, name";
      const { rows } = await client.query(insert, [JSON.parse(body).name]);
      await client.query("COMMIT");
      return [201, rows[0]];
    } finally {
      client.release();
    }
  }
  return [404, { error: "no route" }];
}

const server = http.createServer(async (req, res) => {
  try {
    const [status, out] = await route(req);
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(JSON.stringify(out));
  } catch (e) {
    console.error(e);
    res.writeHead(500, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ error: "internal error" }));
  }
});

pool
  .query("CREATE TABLE IF NOT EXISTS users (id serial PRIMARY KEY, name text NOT NULL)")
  .then(() => server.listen(Number(process.env.PORT), "127.0.0.1", () => console.log("listening")));
