"""kpy's Python sign-in sample, written as such services are: Flask, SQLAlchemy over psycopg 3,
passwords hashed by passlib's bcrypt (a random salt each time), JWTs from PyJWT that expire
after TOKEN_LIFETIME seconds, created_at/updated_at written by the ORM. Nothing in it knows
about kpy. Environment: DATABASE_URL, PORT, JWT_SECRET. Run: python app.py"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

import jwt
from flask import Flask, Response, jsonify, request
from passlib.hash import bcrypt
from sqlalchemy import String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

TOKEN_LIFETIME = 30  # seconds
HASH_COST = 10
SECRET = os.environ["JWT_SECRET"]
ROLES = ("user", "editor", "admin")


def now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20), default="user")
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)

    def shown(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


url = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
engine = create_engine(url, pool_size=4)
hasher = bcrypt.using(rounds=HASH_COST)
app = Flask(__name__)


def refused(status: int, error: str) -> tuple[Response, int]:
    return jsonify(error=error), status


def claims_of() -> dict[str, Any] | tuple[Response, int]:
    """The caller's claims, or an answer refusing them."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer" or not token:
        return refused(401, "sign in first")
    try:
        # the expiry is checked below, to tell an expired token from a forged one
        claims: dict[str, Any] = jwt.decode(
            token, SECRET, algorithms=["HS256"], options={"verify_exp": False}
        )
    except jwt.InvalidTokenError:
        return refused(401, "bad token")
    if claims["exp"] <= time.time():
        return refused(401, "token expired")
    return claims


@app.post("/signup")
def sign_up() -> Any:
    given = request.get_json()
    with Session(engine) as session, session.begin():
        if session.scalar(select(User).where(User.email == given["email"])) is not None:
            return refused(409, "email taken")
        first = session.scalar(select(func.count()).select_from(User)) == 0
        user = User(
            email=given["email"],
            name=given["name"],
            password_hash=hasher.hash(given["password"]),
            role="admin" if first else "user",  # the first user runs the place
        )
        session.add(user)
        session.flush()
        return jsonify(user.shown()), 201


@app.post("/signin")
def sign_in() -> Any:
    given = request.get_json()
    with Session(engine) as session:
        user = session.scalar(select(User).where(User.email == given["email"]))
        if user is None or not hasher.verify(given["password"], user.password_hash):
            return refused(401, "wrong email or password")
        issued = int(time.time())
        claims = {"sub": str(user.id), "role": user.role, "iat": issued}
        token = jwt.encode(claims | {"exp": issued + TOKEN_LIFETIME}, SECRET, algorithm="HS256")
        return jsonify(token=token, expiresIn=TOKEN_LIFETIME)


@app.get("/me")
def me() -> Any:
    claims = claims_of()
    if isinstance(claims, tuple):
        return claims
    with Session(engine) as session:
        user = session.get(User, int(claims["sub"]))
        if user is None:
            return refused(404, "no such user")
        return jsonify(user.shown())


@app.patch("/users/<int:user_id>/role")
def change_role(user_id: int) -> Any:
    claims = claims_of()
    if isinstance(claims, tuple):
        return claims
    if claims["role"] != "admin":
        return refused(403, "admins only")
    role = request.get_json()["role"]
    if role not in ROLES:
        return refused(400, f"role must be one of {','.join(ROLES)}")
    with Session(engine) as session, session.begin():
        user = session.get(User, user_id)
        if user is None:
            return refused(404, "no such user")
        user.role = role
        session.flush()
        return jsonify(user.shown())


if __name__ == "__main__":
    Base.metadata.create_all(engine)
    app.run(host="127.0.0.1", port=int(os.environ["PORT"]))
