// kpy's Node.js sign-in sample, written as such services are: Express, Sequelize over
// node-postgres, passwords hashed with bcryptjs (a random salt each time), JWTs from
// jsonwebtoken that expire after TOKEN_LIFETIME seconds, createdAt/updatedAt written by
// Sequelize. Nothing in it knows about kpy. Environment: DATABASE_URL, PORT, JWT_SECRET.
// Run: node app.js
"use strict";
const express = require("express");
const bcrypt = require("bcryptjs");
const jwt = require("jsonwebtoken");
const { DataTypes, Sequelize } = require("sequelize");

const TOKEN_LIFETIME = 30; // seconds
const HASH_COST = 10;
const SECRET = process.env.JWT_SECRET;
const ROLES = ["user", "editor", "admin"];

const sequelize = new Sequelize(process.env.DATABASE_URL, { logging: false, pool: { max: 4 } });
const User = sequelize.define("User", {
  email: { type: DataTypes.STRING, allowNull: false, unique: true },
  name: { type: DataTypes.STRING, allowNull: false },
  passwordHash: { type: DataTypes.STRING, allowNull: false },
  role: { type: DataTypes.STRING, allowNull: false, defaultValue: "user" },
});

const shown = (user) => ({
  id: user.id,
  email: user.email,
  name: user.name,
  role: user.role,
  createdAt: user.createdAt,
  updatedAt: user.updatedAt,
});

// The caller's claims, or an answer refusing them.
function claimsOf(req) {
  const [scheme, token] = String(req.get("authorization") || "").split(" ");
  if (scheme !== "Bearer" || !token) return [401, { error: "sign in first" }];
  let claims;
  try {
    // the expiry is checked below, to tell an expired token from a forged one
    claims = jwt.verify(token, SECRET, { algorithms: ["HS256"], ignoreExpiration: true });
  } catch {
    return [401, { error: "bad token" }];
  }
  if (claims.exp <= Date.now() / 1000) return [401, { error: "token expired" }];
  return [200, claims];
}

const app = express();
app.use(express.json());

app.post("/signup", async (req, res) => {
  const { email, name, password } = req.body;
  if (await User.findOne({ where: { email } })) return res.status(409).json({ error: "email taken" });
  const first = (await User.count()) === 0; // the first user runs the place
  const passwordHash = await bcrypt.hash(password, HASH_COST);
  const user = await User.create({ email, name, passwordHash, role: first ? "admin" : "user" });
  res.status(201).json(shown(user));
});

app.post("/signin", async (req, res) => {
  const { email, password } = req.body;
  const user = await User.findOne({ where: { email } });
  if (!user || !(await bcrypt.compare(password, user.passwordHash))) {
    return res.status(401).json({ error: "wrong email or password" });
  }
  const token = jwt.sign({ sub: String(user.id), role: user.role }, SECRET, {
    algorithm: "HS256",
    expiresIn: TOKEN_LIFETIME,
  });
  res.json({ token, expiresIn: TOKEN_LIFETIME });
});

app.get("/me", async (req, res) => {
  const [status, claims] = claimsOf(req);
  if (status !== 200) return res.status(status).json(claims);
  const user = await User.findByPk(Number(claims.sub));
  if (!user) return res.status(404).json({ error: "no such user" });
  res.json(shown(user));
});

app.patch("/users/:id/role", async (req, res) => {
  const [status, claims] = claimsOf(req);
  if (status !== 200) return res.status(status).json(claims);
  if (claims.role !== "admin") return res.status(403).json({ error: "admins only" });
  const { role } = req.body;
  if (!ROLES.includes(role)) return res.status(400).json({ error: `role must be one of ${ROLES}` });
  const user = await User.findByPk(Number(req.params.id));
  if (!user) return res.status(404).json({ error: "no such user" });
  await user.update({ role });
  res.json(shown(user));
});

app.use((err, req, res, next) => {
  console.error(err);
  res.status(500).json({ error: "internal error" });
});

sequelize.sync().then(() => {
  app.listen(Number(process.env.PORT), "127.0.0.1", () => console.log("listening"));
});
