"""The durable result store: one SQLite database per experiment folder.

Tables (schema version 1):

* ``runs``: one row per run, keyed by ``run_id`` (the hash of the resolved :class:`RunSpec`): experiment
  name, trainer ``label``, ``seed_index``, ``status`` (pending → running → ok | diverged | failed),
  ``message``, the resolved spec (JSON), final metrics (JSON), ``best_epoch``, the spending columns,
  the headline ``metric`` name, the environment (JSON), ``started_at``/``finished_at`` (ISO 8601 UTC)
  and ``attempts``.
* ``histories``: one row per recorded epoch (``run_id``, ``row``, ``epoch``, JSON ``data``).
* ``records``: what callbacks logged (``run_id``, ``name``, ``row``, JSON ``data``), among them the rows of
  the ``diagnostics`` table (names ``curvature``, ``sharpness``, ``ntk``, ``gradient_norm``); what the
  diagnostics cost is in the run's ``environment`` (``diagnostics_seconds``, ``diagnostics_cpu_seconds``).
* ``weights``: the selected weights of each run (``torch.save`` bytes), optional.
* ``meta``: key/value pairs (schema version, experiment name, the experiment file's text).

* ``claims``: which runner (owner, host, pid, heartbeat) is training a run; see :meth:`ResultStore.claim`.

Each runner process writes (its workers return their results to it); several runners on one store
cooperate through claims. The WAL journal lets readers read while a runner writes, and everything about
one run is written in a single transaction, so a kill at any moment leaves either the whole run or none
of it. Opening a store checks it first (not empty, ``PRAGMA quick_check``, the schema version) and
refuses a damaged one with :class:`StoreError` without writing to it.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import socket
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from trainlab.core.budget import Spending
from trainlab.core.config import ConfigError
from trainlab.data.task import SPLITS
from trainlab.trainers.result import RunResult, json_default

SCHEMA_VERSION = 1
LEASE = 60.0
"""Seconds after its last heartbeat when a runner's claims lapse (a runner renews them every LEASE / 6)."""
STORE_NAME = "store.sqlite"
STATUSES = ("pending", "running", "ok", "diverged", "failed")
FINISHED = ("ok", "diverged", "failed")
SPENDING = ("forward_samples", "backward_samples", "sample_evals", "steps", "evals", "epochs", "seconds")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL DEFAULT '',
    label TEXT NOT NULL DEFAULT '',
    seed_index INTEGER,
    status TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
    message TEXT NOT NULL DEFAULT '',
    spec TEXT NOT NULL,
    final TEXT,
    best_epoch INTEGER,
    {", ".join(f"{k} {'REAL' if k == 'seconds' else 'INTEGER'}" for k in SPENDING)},
    metric TEXT,
    environment TEXT,
    started_at TEXT,
    finished_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS histories (
    run_id TEXT NOT NULL, row INTEGER NOT NULL, epoch INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (run_id, row)
);
CREATE TABLE IF NOT EXISTS records (
    run_id TEXT NOT NULL, name TEXT NOT NULL, row INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (run_id, name, row)
);
CREATE TABLE IF NOT EXISTS weights (run_id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS claims (
    run_id TEXT PRIMARY KEY, owner TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, heartbeat REAL NOT NULL
);
"""


class StoreError(ConfigError):
    """A result store that must not be written into: corrupted, truncated, empty or of another schema."""

    def __init__(self, path: Path | str, allowed: str):
        super().__init__("store", str(path), allowed)


def _create(path: Path) -> None:
    """Create an empty store at ``path`` atomically: built beside it, then hard-linked into place, so that a
    runner starting at the same moment finds either no file or a whole store (never a half-made one)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
        os.close(fd)
    except OSError as err:
        raise StoreError(path, f"a location where a store can be created ({err.strerror})") from None
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript("BEGIN;" + _SCHEMA + "INSERT INTO meta (key, value) VALUES "
                               f"('schema_version', '{SCHEMA_VERSION}'); COMMIT;")
        finally:
            conn.close()
        os.link(tmp, path)
    except FileExistsError:
        pass  # another runner created it first
    except (OSError, sqlite3.Error) as err:
        raise StoreError(path, f"a location where a store can be created ({err})") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _check_file(path: Path) -> None:
    """Refuse an empty file before SQLite would take it for a new database. Only ``stat`` is used: opening
    the file with another descriptor would drop this process's SQLite locks on it (POSIX lock semantics)."""
    try:
        size = path.stat().st_size
    except OSError as err:
        raise StoreError(path, f"a readable result store ({err.strerror})") from None
    if size == 0:
        raise StoreError(path, "a result store, not an empty file (move it away or choose another --out)")


def _check_database(conn: sqlite3.Connection) -> None:
    """``PRAGMA quick_check`` and the schema version; raises :class:`StoreError` (path filled in by the
    caller) or ``sqlite3.DatabaseError``."""
    problems = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
    if problems != ["ok"]:
        raise StoreError("", "an intact result store (integrity check: " + "; ".join(problems[:3]) + ")")
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return
    version = None
    if "meta" in tables:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = row[0] if row else None
    if version != str(SCHEMA_VERSION):
        raise StoreError(
            "", f"a result store of schema version {SCHEMA_VERSION} (this one has {version or 'no version'}; "
            "it was written by another trainlab version or is not a trainlab store)",
        )


def _alive(held: Sequence[Any], host: str, now: float, lease: float) -> bool:
    """Whether a claim ``(owner, host, pid, heartbeat)`` still holds its run."""
    _, claim_host, pid, beat = held
    if now - beat > lease:
        return False
    if claim_host == host:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


def utc_now() -> str:
    """The current time as ISO 8601 UTC with seconds precision."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=json_default)


def _nan_safe(value: Any) -> Any:
    """JSON has no NaN/inf: encode them as strings so diverged runs round-trip."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def _decode_number(value: Any) -> Any:
    if value in ("nan", "inf", "-inf"):
        return float(value)
    return value


def _encode_row(row: Mapping[str, Any]) -> str:
    return _json({k: _nan_safe(v) for k, v in row.items()})


def _decode_row(text: str) -> dict[str, Any]:
    return {k: _decode_number(v) for k, v in json.loads(text).items()}


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys: ``{"budget": {"epochs": 5}}`` → ``{"budget.epochs": 5}``.

    Lists become JSON text so that every column holds scalars.
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out[name] = _json(list(value))
        else:
            out[name] = value
    return out


def config_id(spec: Mapping[str, Any]) -> str:
    """Hash of a resolved spec without its seed: the runs of one grid cell over seeds share it."""
    cell = {k: v for k, v in spec.items() if k != "seed"}
    return hashlib.sha256(_json(cell).encode()).hexdigest()[:16]


class ResultStore:
    """Runs, histories, callback records and weights of one experiment in one SQLite file.

    ``ResultStore(path)`` opens or creates the database at ``path``;
    ``ResultStore.open(experiment_dir)`` opens ``experiment_dir/store.sqlite``, which must exist.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            _create(self.path)
        _check_file(self.path)
        try:
            self._conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as err:
            raise StoreError(self.path, f"a result store that can be opened ({err})") from None
        try:
            self._conn.execute("PRAGMA busy_timeout=60000")
            _check_database(self._conn)
        except StoreError as err:
            self._conn.close()
            raise StoreError(self.path, err.allowed) from None
        except sqlite3.DatabaseError as err:
            self._conn.close()
            raise StoreError(self.path, f"an intact result store (SQLite says: {err})") from None
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=60000")
        with self._transaction() as cur:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)
            cur.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    @classmethod
    def open(cls, experiment_dir: str | Path) -> ResultStore:
        """The store of an experiment folder (``<dir>/store.sqlite``); raises if there is none."""
        path = Path(experiment_dir)
        if path.is_dir():
            path = path / STORE_NAME
        if not path.is_file():
            raise FileNotFoundError(f"no result store at {path} (run an experiment into {experiment_dir} first)")
        return cls(path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    # ------------------------------------------------------------------ writing
    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as cur:
            cur.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def register(
        self,
        run_id: str,
        spec_dict: Mapping[str, Any],
        *,
        experiment: str = "",
        label: str = "",
        seed_index: int | None = None,
    ) -> None:
        """Add a ``pending`` run if it is not in the store yet (a known run keeps its status)."""
        with self._transaction() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO runs (run_id, experiment, label, seed_index, status, spec)"
                " VALUES (?, ?, ?, ?, 'pending', ?)",
                (run_id, experiment, label, seed_index, _json(spec_dict)),
            )

    def mark_running(self, run_id: str, started_at: str | None = None) -> None:
        """``status = running``; a run still ``running`` when the experiment restarts was interrupted."""
        with self._transaction() as cur:
            cur.execute(
                "UPDATE runs SET status = 'running', message = '', started_at = ?, attempts = attempts + 1"
                " WHERE run_id = ?",
                (started_at or utc_now(), run_id),
            )
            if cur.rowcount == 0:
                raise KeyError(f"run {run_id!r} is not registered in {self.path}")

    def save(
        self,
        run_id: str,
        spec_dict: Mapping[str, Any],
        result: RunResult,
        *,
        experiment: str | None = None,
        label: str | None = None,
        seed_index: int | None = None,
        metric: str | None = None,
        started_at: str | None = None,
        finished_at: str | None = None,
        weights: bool = True,
    ) -> None:
        """Write a finished run (row, history, records, weights) in one transaction, replacing any earlier
        rows of the same ``run_id``. ``None`` keeps what :meth:`register` stored."""
        spending = result.spending.to_dict()
        blob = None
        if weights and result.state_dict is not None:
            buffer = io.BytesIO()
            torch.save(result.state_dict, buffer)
            blob = buffer.getvalue()
        with self._transaction() as cur:
            old = cur.execute(
                "SELECT experiment, label, seed_index, started_at, attempts FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            old = old or ("", "", None, None, 0)
            cur.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            for table in ("histories", "records", "weights", "claims"):
                cur.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            cur.execute(
                f"INSERT INTO runs (run_id, experiment, label, seed_index, status, message, spec, final, best_epoch,"
                f" {', '.join(SPENDING)}, metric, environment, started_at, finished_at, attempts)"
                f" VALUES ({', '.join('?' * (14 + len(SPENDING)))})",
                (
                    run_id,
                    old[0] if experiment is None else experiment,
                    old[1] if label is None else label,
                    old[2] if seed_index is None else seed_index,
                    result.status,
                    result.message,
                    _json(spec_dict),
                    _encode_row(result.final),
                    result.best_epoch,
                    *(spending[k] for k in SPENDING),
                    metric,
                    _json(result.environment),
                    started_at or old[3],
                    finished_at or utc_now(),
                    max(old[4], 1),
                ),
            )
            cur.executemany(
                "INSERT INTO histories (run_id, row, epoch, data) VALUES (?, ?, ?, ?)",
                [(run_id, i, int(row.get("epoch", i)), _encode_row(row)) for i, row in enumerate(result.history)],
            )
            cur.executemany(
                "INSERT INTO records (run_id, name, row, data) VALUES (?, ?, ?, ?)",
                [
                    (run_id, name, i, _encode_row(row))
                    for name, rows in result.records.items()
                    for i, row in enumerate(rows)
                ],
            )
            if blob is not None:
                cur.execute("INSERT INTO weights (run_id, data) VALUES (?, ?)", (run_id, blob))

    # ------------------------------------------------------------------ claims
    def claim(self, run_ids: Sequence[str], owner: str, skip: Sequence[str], lease: float = LEASE) -> list[str]:
        """Claim, in one transaction, those of ``run_ids`` whose status is not in ``skip`` and that no live
        runner holds; returns the claimed ids. A claim is live while its owner's heartbeat is younger than
        ``lease`` seconds and, on this host, while its process exists."""
        now = time.time()
        host = socket.gethostname()
        claimed = []
        with self._transaction() as cur:
            for run_id in run_ids:
                row = cur.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                if row is not None and row[0] in skip:
                    continue
                held = cur.execute("SELECT owner, host, pid, heartbeat FROM claims WHERE run_id = ?", (run_id,)).fetchone()
                if held is not None and held[0] != owner and _alive(held, host, now, lease):
                    continue
                cur.execute(
                    "INSERT OR REPLACE INTO claims (run_id, owner, host, pid, heartbeat) VALUES (?, ?, ?, ?, ?)",
                    (run_id, owner, host, os.getpid(), now),
                )
                claimed.append(run_id)
        return claimed

    def heartbeat(self, owner: str) -> None:
        """Renew every claim of ``owner``."""
        with self._transaction() as cur:
            cur.execute("UPDATE claims SET heartbeat = ? WHERE owner = ?", (time.time(), owner))

    def release(self, owner: str) -> None:
        """Drop every claim of ``owner`` (a runner that stops)."""
        with self._transaction() as cur:
            cur.execute("DELETE FROM claims WHERE owner = ?", (owner,))

    def claims(self) -> dict[str, str]:
        """``run_id → owner`` of every claim in the store."""
        return dict(self._conn.execute("SELECT run_id, owner FROM claims").fetchall())

    # ------------------------------------------------------------------ reading
    def status(self, run_id: str) -> str | None:
        """The run's status, or ``None`` if the store has never seen it."""
        row = self._conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    def runs(self) -> dict[str, str]:
        """``run_id → status`` for every run in the store, in insertion order."""
        return dict(self._conn.execute("SELECT run_id, status FROM runs ORDER BY rowid").fetchall())

    def counts(self) -> dict[str, int]:
        """How many runs have each status."""
        rows = self._conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
        return {s: 0 for s in STATUSES} | dict(rows)

    def runs_frame(self) -> pd.DataFrame:
        """One row per run: identity, trainer label, status, every leaf of the resolved spec as dotted columns
        (``trainer_options.lr``, ``budget.epochs``, ...), ``final_<split>_<loss|metric>``, ``best_epoch``,
        ``lr`` (the learning rate a gradient trainer used, e.g. the LR finder's suggestion; NaN for others),
        the spending, times, headline metric name, ``git_revision`` and ``config_id`` (same for all seeds of
        a grid cell)."""
        cur = self._conn.execute(
            "SELECT run_id, experiment, label, seed_index, status, message, spec, final, best_epoch,"
            f" {', '.join(SPENDING)}, metric, environment, started_at, finished_at, attempts"
            " FROM runs ORDER BY rowid"
        )
        names = [d[0] for d in cur.description]
        rows = []
        for values in cur.fetchall():
            raw = dict(zip(names, values))
            spec = json.loads(raw.pop("spec"))
            final = _decode_row(raw.pop("final")) if raw["final"] is not None else {}
            env = json.loads(raw.pop("environment")) if raw["environment"] else {}
            row: dict[str, Any] = {k: raw[k] for k in ("run_id", "experiment", "label", "seed_index", "status")}
            row["message"] = raw["message"]
            row.update({k: spec.get(k) for k in ("task", "model", "trainer", "loss", "seed", "device")})
            row.update(flatten({k: v for k, v in spec.items() if isinstance(v, Mapping)}))
            row["config_id"] = config_id(spec)
            for split in SPLITS:
                for kind in ("loss", "metric"):
                    row[f"final_{split}_{kind}"] = final.get(f"{split}_{kind}", math.nan)
            row["best_epoch"] = raw["best_epoch"]
            row["lr"] = final.get("lr", math.nan)
            row.update({k: raw[k] for k in SPENDING})
            row.update({k: raw[k] for k in ("started_at", "finished_at", "attempts", "metric")})
            row["git_revision"] = env.get("git_revision")
            row["device_name"] = env.get("device_name")
            row["cpu_seconds"] = env.get("cpu_seconds", math.nan)
            row["diagnostics_seconds"] = env.get("diagnostics_seconds", math.nan)
            rows.append(row)
        frame = pd.DataFrame(rows)
        if frame.empty:
            frame = pd.DataFrame(columns=["run_id", "experiment", "label", "status", "message", "task", "model",
                                          "trainer", "loss", "seed"])
        return frame

    def history_frame(self) -> pd.DataFrame:
        """One row per recorded epoch of every run: ``run_id`` plus the ``RunResult.history`` columns."""
        rows = [
            {"run_id": run_id, **_decode_row(data)}
            for run_id, data in self._conn.execute(
                "SELECT h.run_id, h.data FROM histories h JOIN runs r USING (run_id) ORDER BY r.rowid, h.row"
            )
        ]
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["run_id", "epoch"])

    def records_frame(self, name: str) -> pd.DataFrame:
        """The rows callbacks logged under ``name``, for every run: ``run_id`` plus the logged columns."""
        rows = [
            {"run_id": run_id, **_decode_row(data)}
            for run_id, data in self._conn.execute(
                "SELECT c.run_id, c.data FROM records c JOIN runs r USING (run_id) WHERE c.name = ?"
                " ORDER BY r.rowid, c.row",
                (name,),
            )
        ]
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["run_id", "step", "epoch"])

    def result(self, run_id: str, weights: bool = True) -> RunResult:
        """The stored run as a :class:`RunResult` (history, records, weights; ``config`` is the resolved
        spec with its ``run_id``)."""
        row = self._conn.execute(
            f"SELECT status, message, spec, final, best_epoch, {', '.join(SPENDING)}, environment"
            " FROM runs WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            raise KeyError(f"run {run_id!r} is not in {self.path}")
        status, message, spec, final, best_epoch, *rest = row
        spent = dict(zip(SPENDING, rest[: len(SPENDING)]))
        spent.pop("sample_evals")
        environment = rest[len(SPENDING)]
        history = [
            _decode_row(d)
            for (d,) in self._conn.execute("SELECT data FROM histories WHERE run_id = ? ORDER BY row", (run_id,))
        ]
        records: dict[str, list[dict[str, Any]]] = {}
        for name, data in self._conn.execute(
            "SELECT name, data FROM records WHERE run_id = ? ORDER BY name, row", (run_id,)
        ):
            records.setdefault(name, []).append(_decode_row(data))
        state = None
        if weights:
            blob = self._conn.execute("SELECT data FROM weights WHERE run_id = ?", (run_id,)).fetchone()
            if blob is not None:
                state = torch.load(io.BytesIO(blob[0]), map_location="cpu", weights_only=True)
        return RunResult(
            status=status,
            history=history,
            final=_decode_row(final) if final else {},
            best_epoch=best_epoch or 0,
            spending=Spending(**{k: (v if v is not None else 0) for k, v in spent.items()}),
            config={"run_id": run_id, **json.loads(spec)},
            environment=json.loads(environment) if environment else {},
            message=message,
            records=records,
            state_dict=state,
        )

    def export(self, out_dir: str | Path, fmt: str = "csv") -> list[Path]:
        """Write ``runs`` and ``histories`` (and one file per record name) as CSV or Parquet files."""
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"format: got {fmt!r}; allowed: csv, parquet")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        frames = {"runs": self.runs_frame(), "histories": self.history_frame()}
        for (name,) in self._conn.execute("SELECT DISTINCT name FROM records ORDER BY name"):
            frames[f"records_{name}"] = self.records_frame(name)
        written = []
        for name, frame in frames.items():
            path = out / f"{name}.{fmt}"
            if fmt == "csv":
                frame.to_csv(path, index=False)
            else:
                _parquet_safe(frame).to_parquet(path, index=False)
            written.append(path)
        return written


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet columns need one type: object columns mixing types become text."""
    frame = frame.copy()
    for col in frame.columns[frame.dtypes == object]:
        kinds = {type(v) for v in frame[col] if v is not None and not (isinstance(v, float) and math.isnan(v))}
        if len(kinds) > 1:
            frame[col] = [None if v is None else str(v) for v in frame[col]]
    return frame
