-- The sample shop's schema and seed rows. Safe to run again: the tables are created once,
-- then emptied with their ids restarted, so every run of traffic.py sees the same rows and
-- the same ids. TRUNCATE rather than DROP keeps the tables' OIDs, which PostgreSQL sends in
-- every RowDescription, so two recordings of the same traffic can be byte-identical.
SET client_min_messages = warning;

BEGIN;

CREATE TABLE IF NOT EXISTS products (
    id serial PRIMARY KEY,
    sku text NOT NULL UNIQUE,
    name text NOT NULL,
    price numeric(10, 2) NOT NULL CHECK (price >= 0),
    stock integer NOT NULL CHECK (stock >= 0)
);

CREATE TABLE IF NOT EXISTS orders (
    id serial PRIMARY KEY,
    product_id integer NOT NULL REFERENCES products (id),
    quantity integer NOT NULL CHECK (quantity > 0),
    total_usd numeric(12, 2) NOT NULL,
    currency text NOT NULL,
    total numeric(12, 2) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()  -- never in a response: it changes per run
);

TRUNCATE orders, products RESTART IDENTITY;

INSERT INTO products (sku, name, price, stock) VALUES
    ('MUG-01', 'Coffee mug', 12.50, 10),
    ('TEE-01', 'kpy T-shirt', 19.99, 25),
    ('STK-01', 'Sticker pack', 3.25, 5);

COMMIT;
