"""What the real clients do against a MySQL server at ``port``, as functions returning what
they got: run once through the recording relay to the real MariaDB, and again against kpy's
mock server, they must return the same."""

from __future__ import annotations

import datetime
import decimal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import mysql.connector
import pymysql  # type: ignore[import-untyped]
import pymysql.constants.CLIENT  # type: ignore[import-untyped]
import sqlalchemy
from sqlalchemy import orm

from kpy_ci.protocols.mysql.packets import Framer, Reader
from tests.servers import MariaDB

UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def client_secrets(client_side: bytes) -> list[bytes]:
    """What a client sent to authenticate, read from the raw bytes it sent on one
    connection: the HandshakeResponse's auth response, every auth packet before its first
    command, and those of each COM_CHANGE_USER (its auth response, and what follows)."""
    packets = Framer().feed(client_side, 0)
    if not packets:
        return []
    first = Reader(packets[0].payload, 32)
    first.nul()
    secrets = [first.lenenc_required()]
    authenticating = True
    for p in packets[1:]:
        if p.seq == 0:
            authenticating = p.payload[:1] == b"\x11"  # COM_CHANGE_USER
            if authenticating:
                change = Reader(p.payload, 1)
                change.nul()
                secrets.append(change.take(change.uint(1)))
        elif authenticating:
            secrets.append(p.payload)
    return [s for s in secrets if len(s) >= 4]


def pymysql_session(port: int, password: str, infile: Path) -> list[Any]:
    """Text queries, multi-statements, a procedure with two result sets, LOAD DATA LOCAL
    INFILE, an error and a warning."""
    conn = pymysql.connect(
        host="127.0.0.1",
        port=port,
        user="app",
        password=password,
        database="app",
        client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS,
        local_infile=True,
        autocommit=True,
    )
    out: list[Any] = []
    with conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS people; DROP PROCEDURE IF EXISTS two_sets")
        while cur.nextset():
            pass
        cur.execute(
            "CREATE TABLE people (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(40),"
            " born DATE, score DECIMAL(6,2), note TEXT)"
        )
        cur.execute(
            "INSERT INTO people (name, born, score, note)"
            " VALUES (%s, %s, %s, %s), (%s, %s, %s, %s)",
            (
                "Ada",
                datetime.date(1815, 12, 10),
                decimal.Decimal("9.50"),
                None,
                "Émile",
                datetime.date(1901, 1, 2),
                decimal.Decimal("-1.25"),
                "naïve",
            ),
        )
        out.append((cur.rowcount, cur.lastrowid))
        cur.execute("SELECT  id, name, born, score, note\n FROM people ORDER BY id")
        out.append(cur.fetchall())
        cur.execute(
            "SELECT 1 AS one; SELECT 'two' AS two, NULL AS nothing; UPDATE people SET score = 1"
        )
        sets = [cur.fetchall()]
        while cur.nextset():
            sets.append(cur.fetchall() if cur.description else cur.rowcount)
        out.append(sets)
        cur.execute(
            "CREATE PROCEDURE two_sets() BEGIN SELECT COUNT(*) AS n FROM people;"
            " SELECT name FROM people ORDER BY id; END"
        )
        cur.execute("CALL two_sets()")
        sets = [cur.fetchall()]
        while cur.nextset():
            sets.append(cur.fetchall())
        out.append(sets)
        cur.execute(
            f"LOAD DATA LOCAL INFILE '{infile}' INTO TABLE people FIELDS TERMINATED BY ','"
            " (name, score)"
        )
        out.append(cur.rowcount)
        try:
            cur.execute("SELECT * FROM no_such_table")
        except pymysql.MySQLError as e:
            out.append(e.args)
        cur.execute("SELECT 1/0 AS x, CAST('12abc' AS SIGNED) AS y")
        out.append((cur.fetchall(), conn.warning_count if hasattr(conn, "warning_count") else None))
        out.append(cur._result.warning_count)
        conn.ping()
        conn.select_db("app")
        out.append(conn.get_server_info())
    return out


def connector_session(port: int, password: str) -> list[Any]:
    """mysql-connector-python (pure): its auth switch, prepared statements and binary rows
    of many column types (not YEAR: this connector misreads a binary YEAR before other
    columns; results.py's YEAR is checked from bytes)."""
    conn = mysql.connector.connect(
        host="127.0.0.1",
        port=port,
        user="app",
        password=password,
        database="app",
        use_pure=True,
        auth_plugin="caching_sha2_password",
        autocommit=True,
    )
    out: list[Any] = []
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS typed")
    cur.execute(
        "CREATE TABLE typed (id INT PRIMARY KEY, t TINYINT, tu TINYINT UNSIGNED, s SMALLINT,"
        " su SMALLINT UNSIGNED, m MEDIUMINT, i INT, iu INT UNSIGNED, b BIGINT,"
        " bu BIGINT UNSIGNED, f FLOAT, d DOUBLE, dec_ DECIMAL(20,6), dt DATE, dtt DATETIME(6),"
        " ts TIMESTAMP NULL, tm TIME(3), c CHAR(3), vc VARCHAR(50), tx TEXT,"
        " bl BLOB, uid BINARY(16), e ENUM('a','b'), st SET('x','y'), bits BIT(8), j JSON,"
        " n INT NULL)"
    )
    cur.close()
    prepared = conn.cursor(prepared=True)
    insert = "INSERT INTO typed VALUES (" + ", ".join(["%s"] * 27) + ")"
    rows = [
        (1, -128, 255, -32768, 65535, -8388608, -2147483648, 4294967295,
         -9223372036854775808, 18446744073709551615, 1.5, -2.25, decimal.Decimal("12345.678901"),
         datetime.date(2024, 2, 29), datetime.datetime(2024, 2, 29, 13, 14, 15, 123456),
         datetime.datetime(2024, 1, 1, 0, 0, 0), datetime.timedelta(hours=-30, minutes=-5),
         "abc", "héllo", "long text", b"\x00\x01\xfe\xff", UUID.bytes, "b", "x,y",
         b"\x05", '{"k": [1, 2]}', None),
        (2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, decimal.Decimal("0"),
         datetime.date(2000, 1, 1), datetime.datetime(2000, 1, 1), None,
         datetime.timedelta(0), "", "", "", b"", bytes(16), "a", "", b"\x00", "null", 7),
    ]  # fmt: skip
    for row in rows:
        prepared.execute(insert, row)
    prepared.execute("SELECT * FROM typed WHERE id >= %s ORDER BY id", (1,))
    out.append(prepared.fetchall())
    prepared.execute("SELECT * FROM typed WHERE id >= %s ORDER BY id", (2,))
    out.append(prepared.fetchall())
    prepared.execute("SELECT uid, dtt FROM typed WHERE uid = %s", (UUID.bytes,))
    out.append(prepared.fetchall())
    prepared.close()
    cur = conn.cursor()
    cur.execute("SELECT id, t, f, dtt, tm, bits FROM typed ORDER BY id")
    out.append(cur.fetchall())
    cur.close()
    conn.cmd_change_user(username="app", password=password, database="app")  # COM_CHANGE_USER
    cur = conn.cursor()
    cur.execute("SELECT CURRENT_USER(), DATABASE()")
    out.append(cur.fetchall())
    cur.close()
    conn.close()
    return out


def sqlalchemy_session(port: int, password: str) -> list[Any]:
    """SQLAlchemy's ORM over PyMySQL: create, insert, select."""

    class Base(orm.DeclarativeBase):
        pass

    class Pet(Base):
        __tablename__ = "pets"
        id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
        name: orm.Mapped[str] = orm.mapped_column(sqlalchemy.String(30))

    engine = sqlalchemy.create_engine(
        f"mysql+pymysql://app:{password}@127.0.0.1:{port}/app", poolclass=sqlalchemy.NullPool
    )
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with orm.Session(engine) as session:
        session.add_all([Pet(name="Rex"), Pet(name="Tom")])
        session.commit()
        names = [p.name for p in session.scalars(sqlalchemy.select(Pet).order_by(Pet.id))]
    engine.dispose()
    return names


def cli_session(server: MariaDB, port: int) -> str:
    argv = server.cli("-e", "SELECT 1 AS a; SELECT DATABASE(); SHOW TABLES LIKE 'people'")
    argv = [a if not a.startswith("--port=") else f"--port={port}" for a in argv]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout


def slap_session(server: MariaDB, port: int) -> str:
    argv = [
        "mysqlslap",
        "--no-defaults",
        "--protocol=TCP",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--user={server.user}",
        f"--password={server.password}",
        "--concurrency=2",
        "--iterations=2",
        "--auto-generate-sql",
        "--number-of-queries=50",
    ]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
