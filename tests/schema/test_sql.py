"""sql.py: real statements of the sample services and of SQLAlchemy, and the shapes a service's
SQL takes (joins, CTEs, upserts, UPDATE ... FROM, subqueries, windows), each with exactly what it
reads and writes."""

from __future__ import annotations

import pytest

from kpy_ci.protocols.postgres.replay import match_key
from kpy_ci.schema.sql import QueryUse, analyze, normalize

Q = QueryUse

SHOP = [  # examples/shop/app.py, as psycopg 3 sends it ($n parameters)
    (
        "SELECT id, sku, name, price, stock FROM products ORDER BY id",
        Q(reads={"products": ("id", "sku", "name", "price", "stock")}, tables=("products",)),
    ),
    (
        "SELECT id, sku, name, price, stock FROM products WHERE id = $1",
        Q(reads={"products": ("id", "sku", "name", "price", "stock")}, tables=("products",)),
    ),
    (
        "SELECT price, stock FROM products WHERE id = $1 FOR UPDATE",
        Q(reads={"products": ("price", "stock", "id")}, tables=("products",)),
    ),
    (
        "INSERT INTO orders (product_id, quantity, total_usd, currency, total)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id",
        Q(
            reads={"orders": ("id",)},
            writes={"orders": ("product_id", "quantity", "total_usd", "currency", "total")},
            inserts={"orders": ("product_id", "quantity", "total_usd", "currency", "total")},
            tables=("orders",),
        ),
    ),
    (
        "UPDATE products SET stock = stock - $1 WHERE id = $2",
        Q(
            reads={"products": ("stock", "id")},
            writes={"products": ("stock",)},
            tables=("products",),
        ),
    ),
    (
        "SELECT id, product_id, quantity, total_usd, currency, total FROM orders WHERE id = $1",
        Q(
            reads={"orders": ("id", "product_id", "quantity", "total_usd", "currency", "total")},
            tables=("orders",),
        ),
    ),
]

NOTES = [  # examples/notes/app.py: SQLAlchemy over psycopg2, literals in the text on the wire
    (
        "SELECT id, body FROM notes ORDER BY id",
        Q(reads={"notes": ("id", "body")}, tables=("notes",)),
    ),
    (
        "INSERT INTO notes (body) VALUES ('it''s 100%% done') RETURNING id",
        Q(
            reads={"notes": ("id",)},
            writes={"notes": ("body",)},
            inserts={"notes": ("body",)},
            tables=("notes",),
        ),
    ),
    (
        "SELECT id, body FROM notes WHERE id = 7",
        Q(reads={"notes": ("id", "body")}, tables=("notes",)),
    ),
    ("CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text)", Q()),
    # the ORM's spelling
    (
        "SELECT notes.id AS notes_id, notes.body AS notes_body FROM notes WHERE notes.id = 5",
        Q(reads={"notes": ("id", "body")}, tables=("notes",)),
    ),
    (
        "UPDATE notes SET body='new' WHERE notes.id = 5",
        Q(reads={"notes": ("id",)}, writes={"notes": ("body",)}, tables=("notes",)),
    ),
    (
        "DELETE FROM notes WHERE notes.id = 5",
        Q(reads={"notes": ("id",)}, deletes=("notes",), tables=("notes",)),
    ),
    (
        "SELECT count(*) AS count_1 FROM (SELECT notes.id AS notes_id FROM notes) AS anon_1",
        Q(reads={"notes": ("id",)}, tables=("notes",)),
    ),
    (  # insertmanyvalues with a sentinel, as SQLAlchemy 2 batches an INSERT
        "INSERT INTO notes (body) SELECT p0::VARCHAR FROM (VALUES ('a', 0), ('b', 1))"
        " AS imp_sen(p0, sen_counter) ORDER BY sen_counter RETURNING notes.id, notes.id AS id__1",
        Q(
            reads={"notes": ("id",)},
            writes={"notes": ("body",)},
            inserts={"notes": ("body",)},
            tables=("notes",),
        ),
    ),
    # connect-time and pre-ping queries: no table of the service
    ("select pg_catalog.version()", Q()),
    ("select current_schema()", Q()),
    ("show standard_conforming_strings", Q()),
    ("SELECT 1", Q()),
    ("BEGIN", Q()),
    ("ROLLBACK", Q()),
    (
        "SELECT t.oid, typarray FROM pg_type t JOIN pg_namespace ns ON typnamespace = ns.oid"
        " WHERE typname = 'hstore'",
        Q(),
    ),
    (
        "SELECT pg_catalog.pg_class.relname FROM pg_catalog.pg_class JOIN pg_catalog.pg_namespace"
        " ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace"
        " WHERE pg_catalog.pg_class.relname = 'notes'",
        Q(),
    ),
]

USERS_NODE = [  # examples/users-node/app.js (node-postgres)
    (
        "SELECT id, name FROM users ORDER BY id",
        Q(reads={"users": ("id", "name")}, tables=("users",)),
    ),
    (
        "SELECT id, name FROM users WHERE id = $1",
        Q(reads={"users": ("id", "name")}, tables=("users",)),
    ),
    (
        "INSERT INTO users (name) VALUES ($1) RETURNING id, name",
        Q(
            reads={"users": ("id", "name")},
            writes={"users": ("name",)},
            inserts={"users": ("name",)},
            tables=("users",),
        ),
    ),
]


@pytest.mark.parametrize(("sql", "expected"), SHOP + NOTES + USERS_NODE)
def test_sample_services(sql: str, expected: QueryUse) -> None:
    assert analyze(sql) == expected


SHAPES = [
    (  # aliases; an unqualified column of a join goes to every table that could have it
        "SELECT p.name, o.quantity FROM products p JOIN orders o ON o.product_id = p.id"
        " WHERE stock > 0",
        Q(
            reads={
                "products": ("name", "id", "stock"),
                "orders": ("quantity", "product_id", "stock"),
            },
            tables=("products", "orders"),
        ),
    ),
    (
        "SELECT o.id FROM sales.orders o LEFT JOIN public.products p ON p.id = o.product_id",
        Q(
            reads={"sales.orders": ("id", "product_id"), "products": ("id",)},
            tables=("sales.orders", "products"),
        ),
    ),
    (
        'SELECT "Name", u."Email" FROM "Users" u WHERE u.id = $1',
        Q(reads={"Users": ("Name", "Email", "id")}, tables=("Users",)),
    ),
    (
        'SELECT o."Total" FROM "Sales"."Orders" o, "Sales".lines',
        Q(reads={"Sales.Orders": ("Total",)}, tables=("Sales.Orders", "Sales.lines")),
    ),
    (
        "SELECT a.id FROM a JOIN b USING (id) JOIN c ON c.b_id = b.id",
        Q(reads={"a": ("id",), "b": ("id",), "c": ("b_id",)}, tables=("a", "b", "c")),
    ),
    (  # a CTE is no table; its columns come from the table behind it
        "WITH big AS (SELECT id, price FROM products WHERE price > 10)"
        " SELECT b.id, b.price FROM big b JOIN orders ON orders.product_id = b.id",
        Q(
            reads={"products": ("id", "price"), "orders": ("product_id",)},
            tables=("products", "orders"),
        ),
    ),
    (
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5)"
        " SELECT n FROM t",
        Q(),
    ),
    (
        "WITH RECURSIVE tree AS (SELECT id, parent_id FROM cats WHERE parent_id IS NULL"
        " UNION ALL SELECT c.id, c.parent_id FROM cats c JOIN tree t ON c.parent_id = t.id)"
        " SELECT * FROM tree",
        Q(reads={"cats": ("id", "parent_id")}, tables=("cats",)),
    ),
    (  # a subquery's own output column is no table's; ORDER BY an output alias neither
        "SELECT d.total, d.sku FROM (SELECT sku, price * 2 AS total FROM products) AS d"
        " WHERE d.total > 3 ORDER BY total",
        Q(reads={"products": ("sku", "price")}, tables=("products",)),
    ),
    (  # through a subquery's *, to the table behind it
        "SELECT x.name FROM (SELECT * FROM products) x WHERE x.stock > 0",
        Q(reads={"products": ("name", "stock")}, star=("products",), tables=("products",)),
    ),
    (
        "INSERT INTO archive (id, total)"
        " SELECT o.id, o.total FROM orders o WHERE o.created < now()",
        Q(
            reads={"orders": ("id", "total", "created")},
            writes={"archive": ("id", "total")},
            inserts={"archive": ("id", "total")},
            tables=("archive", "orders"),
        ),
    ),
    (
        "INSERT INTO archive SELECT * FROM orders",
        Q(
            writes={"archive": ()},
            inserts={"archive": None},
            star=("orders",),
            tables=("archive", "orders"),
        ),
    ),
    (
        "INSERT INTO orders VALUES (1, 2, 3)",
        Q(writes={"orders": ()}, inserts={"orders": None}, tables=("orders",)),
    ),
    (
        "INSERT INTO orders DEFAULT VALUES",
        Q(writes={"orders": ()}, inserts={"orders": None}, tables=("orders",)),
    ),
    (
        "INSERT INTO products (sku, name) VALUES ($1, $2) ON CONFLICT (sku) DO UPDATE"
        " SET name = excluded.name, stock = products.stock + 1 WHERE products.active",
        Q(
            reads={"products": ("sku", "name", "stock", "active")},
            writes={"products": ("sku", "name", "stock")},
            inserts={"products": ("sku", "name")},
            tables=("products",),
        ),
    ),
    (
        "INSERT INTO hits (path) VALUES ($1) ON CONFLICT ON CONSTRAINT hits_path_key DO NOTHING",
        Q(writes={"hits": ("path",)}, inserts={"hits": ("path",)}, tables=("hits",)),
    ),
    (
        "UPDATE orders o SET total = o.quantity * p.price FROM products p"
        " WHERE p.id = o.product_id RETURNING o.id, p.sku",
        Q(
            reads={"orders": ("quantity", "product_id", "id"), "products": ("price", "id", "sku")},
            writes={"orders": ("total",)},
            tables=("orders", "products"),
        ),
    ),
    (
        "UPDATE products SET (name, stock) = (SELECT name, qty FROM incoming"
        " WHERE incoming.sku = products.sku)",
        Q(
            reads={"products": ("sku",), "incoming": ("name", "qty", "sku")},
            writes={"products": ("name", "stock")},
            tables=("products", "incoming"),
        ),
    ),
    (
        "DELETE FROM orders o USING products p WHERE o.product_id = p.id AND p.stock = 0"
        " RETURNING *",
        Q(
            reads={"orders": ("product_id",), "products": ("id", "stock")},
            star=("orders", "products"),
            deletes=("orders",),
            tables=("orders", "products"),
        ),
    ),
    (
        "UPDATE products SET price = price * 2 RETURNING old.price, new.price",
        Q(reads={"products": ("price",)}, writes={"products": ("price",)}, tables=("products",)),
    ),
    ("SELECT * FROM products", Q(star=("products",), tables=("products",))),
    (  # the alias renames columns by position: depends on every column's place
        "SELECT p.a, p.stock FROM products AS p(a, b)",
        Q(reads={"products": ("stock",)}, star=("products",), tables=("products",)),
    ),
    (
        "SELECT k, name FROM (SELECT 1 AS k) x, products",
        Q(reads={"products": ("name",)}, tables=("products",)),
    ),
    (
        "INSERT INTO users (email) VALUES ($1) ON CONFLICT (lower(email)) WHERE active DO NOTHING",
        Q(
            reads={"users": ("email", "active")},
            writes={"users": ("email",)},
            inserts={"users": ("email",)},
            tables=("users",),
        ),
    ),
    (
        "SELECT o.*, p.name FROM orders o JOIN products p ON p.id = o.product_id",
        Q(
            reads={"products": ("name", "id"), "orders": ("product_id",)},
            star=("orders",),
            tables=("orders", "products"),
        ),
    ),
    ("SELECT count(*) FROM products", Q(tables=("products",))),
    (
        "SELECT count(*) FILTER (WHERE stock = 0) FROM products",
        Q(reads={"products": ("stock",)}, tables=("products",)),
    ),
    ("SELECT row_to_json(p.*) FROM products p", Q(star=("products",), tables=("products",))),
    (  # EXISTS (SELECT * ...) reads no column of its own
        "SELECT o.id FROM orders o WHERE EXISTS (SELECT * FROM products WHERE id = o.product_id)",
        Q(
            reads={"orders": ("id", "product_id"), "products": ("id",)},
            tables=("orders", "products"),
        ),
    ),
    (
        "SELECT name, (SELECT max(total) FROM orders WHERE orders.product_id = products.id) AS top"
        " FROM products WHERE id IN (SELECT product_id FROM orders WHERE quantity > $1)",
        Q(
            reads={"orders": ("total", "product_id", "quantity"), "products": ("name", "id")},
            tables=("orders", "products"),
        ),
    ),
    (
        "SELECT id, rank() OVER (PARTITION BY category ORDER BY price DESC) AS r"
        " FROM products ORDER BY r",
        Q(reads={"products": ("id", "category", "price")}, tables=("products",)),
    ),
    (
        "SELECT sum(price) OVER w FROM products WINDOW w AS (PARTITION BY category ORDER BY id)",
        Q(reads={"products": ("price", "category", "id")}, tables=("products",)),
    ),
    (
        "SELECT category, count(*) AS n FROM products GROUP BY category HAVING count(*) > 1"
        " ORDER BY n DESC",
        Q(reads={"products": ("category",)}, tables=("products",)),
    ),
    (  # function arguments, CASE, COALESCE, ANY, JSON operators
        "SELECT CASE WHEN stock > 0 THEN lower(name) ELSE coalesce(sku, 'none') END"
        " FROM products WHERE id = ANY($1) AND meta->>'k' = 'v'",
        Q(reads={"products": ("stock", "name", "sku", "id", "meta")}, tables=("products",)),
    ),
    (
        "SELECT id FROM products UNION SELECT product_id FROM orders ORDER BY id",
        Q(reads={"products": ("id",), "orders": ("product_id",)}, tables=("products", "orders")),
    ),
    (
        "SELECT p.id, t.tag FROM products p, LATERAL unnest(p.tags) AS t(tag) WHERE tag <> ''",
        Q(reads={"products": ("id", "tags")}, tables=("products",)),
    ),
    (
        "SELECT v.a FROM (VALUES (1, 'x')) AS v(a, b) JOIN products ON products.id = v.a",
        Q(reads={"products": ("id",)}, tables=("products",)),
    ),
    (  # a data-modifying CTE
        "WITH gone AS (DELETE FROM orders WHERE created < now() RETURNING *)"
        " INSERT INTO archive SELECT * FROM gone",
        Q(
            reads={"orders": ("created",)},
            writes={"archive": ()},
            inserts={"archive": None},
            star=("orders",),
            deletes=("orders",),
            tables=("orders", "archive"),
        ),
    ),
    (
        "MERGE INTO products p USING incoming i ON p.sku = i.sku"
        " WHEN MATCHED THEN UPDATE SET stock = i.stock"
        " WHEN NOT MATCHED THEN INSERT (sku, stock) VALUES (i.sku, i.stock)",
        Q(
            reads={"products": ("sku",), "incoming": ("sku", "stock")},
            writes={"products": ("stock", "sku")},
            inserts={"products": ("sku", "stock")},
            tables=("products", "incoming"),
        ),
    ),
    (
        "TRUNCATE orders, products RESTART IDENTITY",
        Q(deletes=("orders", "products"), tables=("orders", "products")),
    ),
    (
        "COPY products (sku, name) FROM STDIN",
        Q(
            writes={"products": ("sku", "name")},
            inserts={"products": ("sku", "name")},
            tables=("products",),
        ),
    ),
    ("COPY orders TO STDOUT", Q(star=("orders",), tables=("orders",))),
    ("EXPLAIN SELECT id FROM products", Q(reads={"products": ("id",)}, tables=("products",))),
    (  # several statements: the union
        "SELECT id FROM products; UPDATE orders SET total = 0 WHERE id = 1",
        Q(
            reads={"products": ("id",), "orders": ("id",)},
            writes={"orders": ("total",)},
            tables=("products", "orders"),
        ),
    ),
    ("SET search_path TO public; SHOW TimeZone; COMMIT", Q()),
    ("ALTER TABLE products ADD COLUMN note text", Q()),
]


@pytest.mark.parametrize(("sql", "expected"), SHAPES)
def test_shapes(sql: str, expected: QueryUse) -> None:
    assert analyze(sql) == expected


def test_what_pglast_cannot_parse_is_an_error_and_nothing_else() -> None:
    use = analyze("SELEC id FROM products")
    assert use == Q(error='syntax error at or near "SELEC", at index 0')
    # psycopg2's placeholders never reach the wire; unsubstituted, they are no SQL
    assert analyze("SELECT id FROM notes WHERE id = %(pk_1)s").error is not None


def test_normalize_is_the_replay_matchers_spelling() -> None:
    sql = "SELECT id,\n       body\n  FROM notes\tWHERE id = $1  "
    assert normalize(sql) == "SELECT id, body FROM notes WHERE id = $1"
    request = {"sql": sql, "messages": [{"type": "Query", "sql": sql}]}
    assert match_key(request)[0] == (normalize(sql),)
