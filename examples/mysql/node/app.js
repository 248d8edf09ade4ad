// kpy's Node.js MySQL sample, written as such services are: Express, a mysql2/promise pool
// (pool.query, the text protocol, on some routes; pool.execute, prepared statements with
// binary rows, on others) and the redis client as a read-through cache with a TTL. Nothing
// in it knows about kpy. Environment: MYSQL_URL (or MYSQL_HOST, MYSQL_PORT, MYSQL_USER,
// MYSQL_PASSWORD, MYSQL_DATABASE), REDIS_URL, PORT. Run: node app.js
"use strict";
const express = require("express");
const mysql = require("mysql2/promise");
const { createClient } = require("redis");

const CACHE_TTL = 60; // seconds a cached book lives in Redis

const env = process.env;
const pool = mysql.createPool({
  ...(env.MYSQL_URL
    ? { uri: env.MYSQL_URL }
    : {
        host: env.MYSQL_HOST || "127.0.0.1",
        port: Number(env.MYSQL_PORT || 3306),
        user: env.MYSQL_USER,
        password: env.MYSQL_PASSWORD,
        database: env.MYSQL_DATABASE,
      }),
  connectionLimit: 4,
  dateStrings: true, // DATE and DATETIME as the server wrote them, not shifted to local time
  supportBigNumbers: true, // BIGINT UNSIGNED
});
const redis = createClient({ url: env.REDIS_URL });
redis.on("error", (err) => console.error("redis:", err.message));

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS books (
     id INT AUTO_INCREMENT PRIMARY KEY,
     isbn BIGINT UNSIGNED NOT NULL UNIQUE,
     title VARCHAR(200) NOT NULL,
     author VARCHAR(200) NOT NULL,
     summary TEXT NULL,
     price DECIMAL(8,2) NOT NULL,
     published DATE NULL,
     available BOOLEAN NOT NULL DEFAULT TRUE,
     created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
   )`,
  `CREATE TABLE IF NOT EXISTS loans (
     id INT AUTO_INCREMENT PRIMARY KEY,
     book_id INT NOT NULL,
     reader VARCHAR(100) NOT NULL,
     loaned_on DATE NOT NULL,
     created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
   )`,
];
const COLUMNS = "id, isbn, title, author, summary, price, published, available, created_at";
const cacheKey = (id) => `book:${id}`;

const shown = (row) => ({
  id: row.id,
  isbn: row.isbn,
  title: row.title,
  author: row.author,
  summary: row.summary,
  price: row.price, // DECIMAL: a string, to the cent
  published: row.published,
  available: !!row.available,
  created_at: row.created_at,
});

async function findBook(id) {
  const [rows] = await pool.execute(`SELECT ${COLUMNS} FROM books WHERE id = ?`, [id]);
  return rows[0];
}

const app = express();
app.use(express.json());

app.post("/books", async (req, res) => {
  const { isbn, title, author, summary, price, published } = req.body;
  if (!isbn || !title || !author || price === undefined) {
    return res.status(400).json({ error: "isbn, title, author and price are required" });
  }
  const [done] = await pool.execute(
    "INSERT INTO books (isbn, title, author, summary, price, published) VALUES (?, ?, ?, ?, ?, ?)",
    [String(isbn), title, author, summary ?? null, String(price), published ?? null],
  );
  res.status(201).json(shown(await findBook(done.insertId)));
});

app.get("/books", async (req, res) => {
  const author = String(req.query.author || "");
  const [rows] = await pool.execute(
    `SELECT ${COLUMNS} FROM books WHERE author = ? ORDER BY id`,
    [author],
  );
  res.json({ author, books: rows.map(shown) });
});

app.get("/books/:id", async (req, res) => {
  const id = Number(req.params.id);
  const cached = await redis.get(cacheKey(id));
  if (cached) return res.set("X-Cache", "hit").json(JSON.parse(cached));
  const [rows] = await pool.query(`SELECT ${COLUMNS} FROM books WHERE id = ?`, [id]);
  if (!rows.length) return res.status(404).json({ error: "no such book" });
  const book = shown(rows[0]);
  await redis.set(cacheKey(id), JSON.stringify(book), { EX: CACHE_TTL });
  res.set("X-Cache", "miss").json(book);
});

app.patch("/books/:id", async (req, res) => {
  const id = Number(req.params.id);
  const { price, summary } = req.body;
  const [done] = await pool.execute(
    "UPDATE books SET price = COALESCE(?, price), summary = COALESCE(?, summary) WHERE id = ?",
    [price === undefined ? null : String(price), summary ?? null, id],
  );
  if (!done.affectedRows) return res.status(404).json({ error: "no such book" });
  await redis.del(cacheKey(id));
  res.json(shown(await findBook(id)));
});

app.delete("/books/:id", async (req, res) => {
  const id = Number(req.params.id);
  const [done] = await pool.query("DELETE FROM books WHERE id = ?", [id]);
  if (!done.affectedRows) return res.status(404).json({ error: "no such book" });
  await redis.del(cacheKey(id));
  res.json({ deleted: id });
});

app.post("/loans", async (req, res) => {
  const bookId = Number(req.body.book_id);
  const reader = String(req.body.reader || "");
  const conn = await pool.getConnection();
  try {
    await conn.beginTransaction();
    const [rows] = await conn.execute("SELECT available FROM books WHERE id = ? FOR UPDATE", [
      bookId,
    ]);
    if (!rows.length || !rows[0].available) {
      await conn.rollback();
      return res.status(409).json({ error: "book not available" });
    }
    const [loan] = await conn.execute(
      "INSERT INTO loans (book_id, reader, loaned_on) VALUES (?, ?, CURDATE())",
      [bookId, reader],
    );
    await conn.execute("UPDATE books SET available = FALSE WHERE id = ?", [bookId]);
    await conn.commit();
    await redis.del(cacheKey(bookId));
    const [[made]] = await conn.query(
      "SELECT id, book_id, reader, loaned_on FROM loans WHERE id = ?",
      [loan.insertId],
    );
    res.status(201).json(made);
  } catch (err) {
    await conn.rollback();
    throw err;
  } finally {
    conn.release();
  }
});

app.get("/stats", async (req, res) => {
  const [[row]] = await pool.query(
    "SELECT COUNT(*) AS books, COALESCE(SUM(price), 0) AS total_price, " +
      "SUM(available) AS available, MIN(published) AS oldest FROM books",
  );
  res.json({
    books: row.books,
    total_price: row.total_price,
    available: Number(row.available || 0),
    oldest: row.oldest,
  });
});

app.use((err, req, res, next) => {
  console.error(err);
  res.status(500).json({ error: "internal error" });
});

async function main() {
  for (const statement of SCHEMA) await pool.query(statement);
  await redis.connect();
  app.listen(Number(env.PORT), "127.0.0.1", () => console.log("listening"));
}

main();
