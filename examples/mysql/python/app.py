"""kpy's Python MySQL sample, written as such services are: Flask, SQLAlchemy 2 over PyMySQL
(``mysql+pymysql://``), and redis-py as a read-through cache with a TTL. Nothing in it
knows about kpy. Environment: MYSQL_URL (or MYSQL_HOST, MYSQL_PORT, MYSQL_USER,
MYSQL_PASSWORD, MYSQL_DATABASE), REDIS_URL, PORT. Run: python app.py"""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import redis
from flask import Flask, Response, jsonify, request
from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Numeric,
    String,
    Text,
    create_engine,
    func,
    select,
    update,
)
from sqlalchemy.dialects.mysql import BIGINT
from sqlalchemy.engine import URL
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

CACHE_TTL = 60  # seconds a cached book lives in Redis


class Base(DeclarativeBase):
    pass


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    isbn: Mapped[int] = mapped_column(
        BigInteger().with_variant(BIGINT(unsigned=True), "mysql"), unique=True
    )
    title: Mapped[str] = mapped_column(String(200))
    author: Mapped[str] = mapped_column(String(200), index=True)
    summary: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    published: Mapped[date | None] = mapped_column(Date)
    available: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    def shown(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "isbn": self.isbn,
            "title": self.title,
            "author": self.author,
            "summary": self.summary,
            "price": str(self.price),  # to the cent
            "published": self.published.isoformat() if self.published else None,
            "available": self.available,
            "created_at": self.created_at.isoformat(sep=" "),
        }


class Loan(Base):
    __tablename__ = "loans"
    id: Mapped[int] = mapped_column(primary_key=True)
    book_id: Mapped[int] = mapped_column(ForeignKey("books.id", ondelete="CASCADE"))
    reader: Mapped[str] = mapped_column(String(100))
    loaned_on: Mapped[date] = mapped_column(Date, server_default=func.curdate())


def database_url() -> URL | str:
    if url := os.environ.get("MYSQL_URL"):
        return url.replace("mysql://", "mysql+pymysql://", 1)
    return URL.create(
        "mysql+pymysql",
        username=os.environ.get("MYSQL_USER"),
        password=os.environ.get("MYSQL_PASSWORD"),
        host=os.environ.get("MYSQL_HOST", "127.0.0.1"),
        port=int(os.environ.get("MYSQL_PORT", "3306")),
        database=os.environ.get("MYSQL_DATABASE"),
    )


engine = create_engine(database_url(), pool_size=4)
cache = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
app = Flask(__name__)


def cache_key(book_id: int) -> str:
    return f"book:{book_id}"


def refused(status: int, error: str) -> tuple[Response, int]:
    return jsonify(error=error), status


@app.post("/books")
def add_book() -> Any:
    given = request.get_json()
    if not all(given.get(k) for k in ("isbn", "title", "author")) or "price" not in given:
        return refused(400, "isbn, title, author and price are required")
    with Session(engine) as session, session.begin():
        book = Book(
            isbn=int(given["isbn"]),
            title=given["title"],
            author=given["author"],
            summary=given.get("summary"),
            price=Decimal(str(given["price"])),
            published=date.fromisoformat(given["published"]) if given.get("published") else None,
        )
        session.add(book)
        session.flush()
        session.refresh(book)  # created_at, as the server wrote it
        return jsonify(book.shown()), 201


@app.get("/books")
def books_by() -> Any:
    author = request.args.get("author", "")
    with Session(engine) as session:
        found = session.scalars(select(Book).where(Book.author == author).order_by(Book.id))
        return jsonify(author=author, books=[b.shown() for b in found])


@app.get("/books/<int:book_id>")
def get_book(book_id: int) -> Any:
    if (cached := cache.get(cache_key(book_id))) is not None:
        return Response(cached, mimetype="application/json", headers={"X-Cache": "hit"})
    with Session(engine) as session:
        book = session.get(Book, book_id)
        if book is None:
            return refused(404, "no such book")
        shown = json.dumps(book.shown())
    cache.set(cache_key(book_id), shown, ex=CACHE_TTL)
    return Response(shown, mimetype="application/json", headers={"X-Cache": "miss"})


@app.patch("/books/<int:book_id>")
def change_book(book_id: int) -> Any:
    given = request.get_json()
    with Session(engine) as session, session.begin():
        book = session.get(Book, book_id)
        if book is None:
            return refused(404, "no such book")
        if "price" in given:
            book.price = Decimal(str(given["price"]))
        if "summary" in given:
            book.summary = given["summary"]
        session.flush()
        shown = book.shown()
    cache.delete(cache_key(book_id))
    return jsonify(shown)


@app.delete("/books/<int:book_id>")
def delete_book(book_id: int) -> Any:
    with Session(engine) as session, session.begin():
        book = session.get(Book, book_id)
        if book is None:
            return refused(404, "no such book")
        session.delete(book)
    cache.delete(cache_key(book_id))
    return jsonify(deleted=book_id)


@app.post("/loans")
def lend() -> Any:
    given = request.get_json()
    book_id, reader = int(given["book_id"]), str(given["reader"])
    with Session(engine) as session, session.begin():
        book = session.scalar(select(Book).where(Book.id == book_id).with_for_update())
        if book is None or not book.available:
            return refused(409, "book not available")
        loan = Loan(book_id=book_id, reader=reader)
        session.add(loan)
        session.execute(update(Book).where(Book.id == book_id).values(available=False))
        session.flush()
        session.refresh(loan)
        made = {
            "id": loan.id,
            "book_id": loan.book_id,
            "reader": loan.reader,
            "loaned_on": loan.loaned_on.isoformat(),
        }
    cache.delete(cache_key(book_id))
    return jsonify(made), 201


@app.get("/stats")
def stats() -> Any:
    with Session(engine) as session:
        books, total, available, oldest = session.execute(
            select(
                func.count(Book.id),
                func.coalesce(func.sum(Book.price), 0),
                func.coalesce(func.sum(Book.available), 0),
                func.min(Book.published),
            )
        ).one()
    return jsonify(
        books=books,
        total_price=str(total),
        available=int(available),
        oldest=oldest.isoformat() if oldest else None,
    )


if __name__ == "__main__":
    Base.metadata.create_all(engine)
    app.run(host="127.0.0.1", port=int(os.environ["PORT"]))
