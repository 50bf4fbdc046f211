"""Instance state, history, the event inbox and blob receipts in one SQLite file (WAL).

Everything the engine needs to continue after a `kill -9` is here: an instance row (status,
input, output, custom status, and the pending-work bookkeeping of its current execution), its
history, and the events that arrived but were not yet applied. One connection guarded by a lock;
several calls can share one transaction, so an episode is applied all or nothing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY, name TEXT NOT NULL, execution_id TEXT NOT NULL, runtime_status TEXT NOT NULL,
    input TEXT, output TEXT, custom_status TEXT, created_time TEXT NOT NULL, last_updated_time TEXT NOT NULL,
    bookkeeping TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (instance_id, seq));
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, instance_id TEXT NOT NULL, execution_id TEXT NOT NULL, event TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blob_receipts (
    function TEXT NOT NULL, blob TEXT NOT NULL, etag TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
    last_error TEXT, updated TEXT NOT NULL, PRIMARY KEY (function, blob, etag));
"""
EMPTY_BOOKKEEPING = {"next_id": 0, "known_actions": 0, "pending": {}}


@dataclass
class InstanceRow:
    instance_id: str
    name: str
    execution_id: str
    runtime_status: str
    input: str | None
    created_time: str
    last_updated_time: str
    output: str | None = None  # JSON text
    custom_status: str | None = None  # JSON text
    bookkeeping: dict = field(default_factory=lambda: dict(EMPTY_BOOKKEEPING))


@dataclass(frozen=True)
class InboxItem:
    id: int
    instance_id: str
    execution_id: str
    event: dict


@dataclass(frozen=True)
class Receipt:
    status: str  # done | failed | poison
    attempts: int
    last_error: str | None


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._depth = 0
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a process kill
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    def _query(self, sql: str, *args) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # instances -----------------------------------------------------------------------------------
    def instance(self, instance_id: str) -> InstanceRow | None:
        rows = self._query("SELECT instance_id, name, execution_id, runtime_status, input, created_time, "
                           "last_updated_time, output, custom_status, bookkeeping FROM instances "
                           "WHERE instance_id = ?", instance_id)
        return _row(rows[0]) if rows else None

    def instances(self, statuses: set[str] | None = None, prefix: str | None = None) -> list[InstanceRow]:
        rows = self._query("SELECT instance_id, name, execution_id, runtime_status, input, created_time, "
                           "last_updated_time, output, custom_status, bookkeeping FROM instances "
                           "ORDER BY created_time, instance_id")
        found = [_row(row) for row in rows]
        return [row for row in found if (not statuses or row.runtime_status in statuses)
                and (not prefix or row.instance_id.startswith(prefix))]

    def save_instance(self, row: InstanceRow) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO instances VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (row.instance_id, row.name, row.execution_id, row.runtime_status, row.input, row.output,
                 row.custom_status, row.created_time, row.last_updated_time, json.dumps(row.bookkeeping)))

    def delete_instance(self, instance_id: str) -> int:
        with self.transaction():
            self.clear_history(instance_id)
            self._db.execute("DELETE FROM inbox WHERE instance_id = ?", (instance_id,))
            return self._db.execute("DELETE FROM instances WHERE instance_id = ?", (instance_id,)).rowcount

    # history -------------------------------------------------------------------------------------
    def history(self, instance_id: str) -> list[dict]:
        rows = self._query("SELECT event FROM history WHERE instance_id = ? ORDER BY seq", instance_id)
        return [json.loads(text) for (text,) in rows]

    def append_history(self, instance_id: str, first_seq: int, events: list[dict]) -> None:
        with self._lock:
            self._db.executemany("INSERT INTO history VALUES (?, ?, ?)",
                                 [(instance_id, first_seq + i, json.dumps(item)) for i, item in enumerate(events)])

    def clear_history(self, instance_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM history WHERE instance_id = ?", (instance_id,))

    # inbox ---------------------------------------------------------------------------------------
    def enqueue(self, instance_id: str, execution_id: str, event: dict) -> None:
        with self._lock:
            self._db.execute("INSERT INTO inbox (instance_id, execution_id, event) VALUES (?, ?, ?)",
                             (instance_id, execution_id, json.dumps(event)))

    def next_event(self) -> InboxItem | None:
        rows = self._query("SELECT id, instance_id, execution_id, event FROM inbox ORDER BY id LIMIT 1")
        return InboxItem(rows[0][0], rows[0][1], rows[0][2], json.loads(rows[0][3])) if rows else None

    def inbox(self, instance_id: str) -> list[InboxItem]:
        rows = self._query("SELECT id, instance_id, execution_id, event FROM inbox WHERE instance_id = ? ORDER BY id",
                           instance_id)
        return [InboxItem(row[0], row[1], row[2], json.loads(row[3])) for row in rows]

    def drop_event(self, item_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM inbox WHERE id = ?", (item_id,))

    # blob receipts -------------------------------------------------------------------------------
    def receipt(self, function: str, blob: str, etag: str) -> Receipt | None:
        rows = self._query("SELECT status, attempts, last_error FROM blob_receipts "
                           "WHERE function = ? AND blob = ? AND etag = ?", function, blob, etag)
        return Receipt(*rows[0]) if rows else None

    def record_receipt(self, function: str, blob: str, etag: str, receipt: Receipt, updated: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO blob_receipts VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (function, blob, etag, receipt.status, receipt.attempts, receipt.last_error, updated))


def _row(values: tuple) -> InstanceRow:
    *fields, bookkeeping = values
    return InstanceRow(*fields, bookkeeping=json.loads(bookkeeping))
