// tokens.py in Node.js: the same routes, answers and clock.
const http = require("http");
const crypto = require("crypto");

const SECRET = "clock-test-secret";
const LIFETIME = Number(process.env.LIFETIME || 3);
const sign = (exp) => crypto.createHmac("sha256", SECRET).update(String(exp)).digest("hex").slice(0, 16);

function answer(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) });
  res.end(data);
}

http.createServer((req, res) => {
  req.resume();
  req.on("end", () => setTimeout(() => {
    if (req.method === "POST") {
      const exp = Math.floor(Date.now() / 1000) + LIFETIME;
      answer(res, 200, { token: `${exp}.${sign(exp)}`, issued: new Date().toISOString() });
      return;
    }
    const [exp, sig] = String(req.headers["x-token"] || "").split(".");
    if (!/^\d+$/.test(exp || "") || sig !== sign(Number(exp))) answer(res, 403, { error: "bad token" });
    else if (Number(exp) * 1000 <= Date.now()) answer(res, 401, { error: "expired" });
    else answer(res, 200, { ok: true });
  }, 5));
}).listen(Number(process.env.PORT), "127.0.0.1");
