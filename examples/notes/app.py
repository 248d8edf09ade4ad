"""kpy's FastAPI sample: SQLAlchemy over psycopg2 with a connection pool (and its connect-time
queries and pre-ping), redis-py, and uvicorn. Nothing in it knows about kpy.

Environment: DATABASE_URL (postgresql://...), REDIS_URL, PORT. Run: ``python3 app.py``.
"""

from __future__ import annotations

import os

import redis
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import create_engine, text

DATABASE_URL = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://", 1)
engine = create_engine(DATABASE_URL, pool_size=3, pool_pre_ping=True)
cache = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
app = FastAPI()


class Note(BaseModel):
    body: str


@app.get("/notes")
def list_notes() -> list[dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, body FROM notes ORDER BY id")).mappings().all()
    return [dict(r) for r in rows]


@app.post("/notes", status_code=201)
def add_note(note: Note) -> dict[str, object]:
    with engine.begin() as conn:  # BEGIN ... COMMIT
        sql = text("INSERT INTO notes (body) VALUES (:body) RETURNING id")
        new_id = conn.execute(sql, {"body": note.body}).scalar_one()
    cache.incr("notes:added")
    return {"id": new_id, "body": note.body}


@app.get("/notes/{note_id}")
def get_note(note_id: int) -> dict[str, object]:
    with engine.connect() as conn:
        sql = text("SELECT id, body FROM notes WHERE id = :id")
        row = conn.execute(sql, {"id": note_id}).mappings().first()
    if row is None:
        raise HTTPException(404, "no such note")
    return {**dict(row), "added": int(cache.get("notes:added") or 0)}


def main() -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text)"))
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="info")


if __name__ == "__main__":
    main()
