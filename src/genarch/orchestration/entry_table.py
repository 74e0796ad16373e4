"""The entry table of a vector store: ids, tenants and metadata, row by row.

Every backend keeps its vectors in the table's row order, so the table alone
answers "which rows may this search rank" (:meth:`EntryTable.candidates`: the
handle's tenant, then the ``where`` filter, as vectorised comparisons of
interned metadata codes) and turns ranked rows back into
:class:`~genarch.schemas.Hit` records. It saves itself as an SQLite table
(``entries.sqlite``: one row per entry with its tenant, id and metadata JSON).
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import torch

from genarch.errors import IntegrityError, NotFoundError
from genarch.orchestration.vector_validation import check_metadata_mapping, trusted_record
from genarch.schemas import Hit, Metadata, MetadataValue

__all__ = ["EntryTable"]

logger = logging.getLogger(__name__)

_HIT_FIELDS = {"id", "score", "metadata"}


def _value_key(value: MetadataValue) -> tuple[str, MetadataValue]:
    # bool is an int in Python (True == 1); keep them apart. int and float share
    # a kind so that 1 == 1.0 matches, as in JSON and SQLite.
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if value is None:
        return ("z", None)
    return ("s", value)


class EntryTable:
    """Ids, tenants and metadata of the rows of a vector store, in row order.

    Shared by every backend: the backend keeps vectors in the same row order.
    Metadata is also kept column-wise, each value interned to an int code, so a
    ``where`` clause becomes a few vectorised comparisons.
    """

    def __init__(self) -> None:
        self.keys: list[tuple[str, str]] = []  # row -> (tenant, id)
        self.rows: dict[tuple[str, str], int] = {}
        self.metadata: list[Metadata] = []
        self.tenant_codes: dict[str, int] = {}
        self.tenant_column = torch.empty(0, dtype=torch.int32)
        self.tenant_sizes: Counter[str] = Counter()
        self.columns: dict[
            str, torch.Tensor
        ] = {}  # key -> (capacity,) int64 value codes, -1 = absent
        self.value_codes: dict[str, dict[tuple[str, MetadataValue], int]] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def _grow(self, needed: int) -> None:
        capacity = self.tenant_column.shape[0]
        if needed <= capacity:
            return
        new = max(needed, 2 * capacity, 1024)
        column = torch.empty(new, dtype=torch.int32)
        column[:capacity] = self.tenant_column
        self.tenant_column = column
        for key, old in self.columns.items():
            grown = torch.full((new,), -1, dtype=torch.int64)
            grown[:capacity] = old
            self.columns[key] = grown

    def assign(self, tenant: str, ids: list[str], metadata: list[Metadata]) -> torch.Tensor:
        """Give each id a row (its existing one, or a new one at the end); set its metadata.

        Returns the ``(len(ids),)`` int64 rows, for the backend to write the vectors to.
        """
        before = len(self.keys)
        self._grow(before + len(ids))
        code = self.tenant_codes.setdefault(tenant, len(self.tenant_codes))
        rows: list[int] = []
        cleared: dict[str, list[int]] = {}  # key -> rows whose old value goes
        written: dict[str, tuple[list[int], list[int]]] = {}  # key -> (rows, value codes)
        for id_, meta in zip(ids, metadata, strict=True):
            key = (tenant, id_)
            row = self.rows.get(key)
            if row is None:
                row = len(self.keys)
                self.keys.append(key)
                self.rows[key] = row
                self.metadata.append(meta)
            else:
                for old in self.metadata[row]:
                    cleared.setdefault(old, []).append(row)
                self.metadata[row] = meta
            for name, value in meta.items():
                codes = self.value_codes.setdefault(name, {})
                targets, values = written.setdefault(name, ([], []))
                targets.append(row)
                values.append(codes.setdefault(_value_key(value), len(codes)))
            rows.append(row)
        self.tenant_sizes[tenant] += len(self.keys) - before
        self.tenant_column[before : len(self.keys)] = code  # new rows are all at the end
        for name, targets in cleared.items():
            self.columns[name][torch.tensor(targets, dtype=torch.int64)] = -1
        for name, (targets, values) in written.items():
            column = self.columns.get(name)
            if column is None:
                column = self.columns[name] = torch.full(
                    (self.tenant_column.shape[0],), -1, dtype=torch.int64
                )
            column[torch.tensor(targets, dtype=torch.int64)] = torch.tensor(
                values, dtype=torch.int64
            )
        return torch.tensor(rows, dtype=torch.int64)

    def rows_of(self, tenant: str, ids: list[str], where: str) -> list[int]:
        """Rows of ``ids`` in ``tenant``; raises NotFoundError naming unknown ids."""
        missing = [i for i in ids if (tenant, i) not in self.rows]
        if missing:
            raise NotFoundError(
                f"{where}: no entry with id(s) {missing[:5]} in tenant {tenant!r} "
                f"({self.tenant_sizes[tenant]} entries there)"
            )
        return [self.rows[(tenant, i)] for i in ids]

    def remove(self, rows: list[int]) -> torch.Tensor:
        """Drop ``rows``, keeping the order of the rest; returns the boolean keep mask."""
        n = len(self.keys)
        keep = torch.ones(n, dtype=torch.bool)
        keep[torch.tensor(rows, dtype=torch.int64)] = False
        survivors = keep.nonzero().flatten()
        m = survivors.shape[0]
        for row in rows:
            self.tenant_sizes[self.keys[row][0]] -= 1
        kept = set(survivors.tolist()) if m < n else None
        if kept is not None:
            self.keys = [key for r, key in enumerate(self.keys) if r in kept]
            self.metadata = [meta for r, meta in enumerate(self.metadata) if r in kept]
        self.rows = {key: r for r, key in enumerate(self.keys)}
        self.tenant_column[:m] = self.tenant_column[:n][survivors]
        for column in self.columns.values():
            column[:m] = column[:n][survivors]
            column[m:n] = -1
        return keep

    def candidates(
        self, tenant: str, where: Mapping[str, MetadataValue] | None
    ) -> torch.Tensor | None:
        """Rows a search through ``tenant``'s handle may rank, ascending; ``None`` means all rows.

        The tenant restriction comes from the handle, never from ``where``.
        """
        n = len(self.keys)
        only_tenant = self.tenant_sizes[tenant] == n
        if not where and only_tenant:
            return None
        code = self.tenant_codes.get(tenant)
        if code is None or self.tenant_sizes[tenant] == 0:
            return torch.empty(0, dtype=torch.int64)
        mask = None if only_tenant else self.tenant_column[:n] == code
        for key, value in (where or {}).items():
            column = self.columns.get(key)
            value_code = None if column is None else self.value_codes[key].get(_value_key(value))
            if column is None or value_code is None:
                return torch.empty(0, dtype=torch.int64)
            match = column[:n] == value_code
            mask = match if mask is None else mask & match
        assert mask is not None
        return mask.nonzero().flatten()

    def hits(self, rows: list[int], scores: list[float], tenant: str) -> list[Hit]:
        """Hit records for ``rows`` of ``tenant`` (metadata copied, so callers cannot edit the store).

        The one place where ranked rows become entries, so the one place that
        makes sure no backend answer can leak: a row that is not a row of this
        table (faiss's "no result" label ``-1`` would otherwise index the last
        row, whoever's it is), a row of another tenant, or a non-finite score
        is dropped, never returned.
        """
        keys, metadata, fields, n = self.keys, self.metadata, _HIT_FIELDS, len(self.keys)
        out = []
        for r, s in zip(rows, scores, strict=True):
            if not 0 <= r < n or keys[r][0] != tenant or not math.isfinite(s):
                logger.warning("dropped a search result: row %d of %d, score %r", r, n, s)
                continue
            # values are validated on the way in; skip pydantic's per-hit validation
            out.append(
                trusted_record(
                    Hit, fields, {"id": keys[r][1], "score": s, "metadata": dict(metadata[r])}
                )
            )
        return out

    # ------------------------------------------------------------- persistence

    def sqlite_bytes(self) -> bytes:
        """Every row (tenant, id, metadata JSON) as the bytes of an SQLite database file."""
        connection = sqlite3.connect(":memory:")
        try:
            connection.execute(
                "CREATE TABLE entries (row INTEGER PRIMARY KEY, tenant TEXT NOT NULL, "
                "id TEXT NOT NULL, metadata TEXT NOT NULL, UNIQUE (tenant, id))"
            )
            connection.executemany(
                "INSERT INTO entries VALUES (?, ?, ?, ?)",
                (
                    (row, tenant, id_, json.dumps(meta, sort_keys=True, allow_nan=False))
                    for row, ((tenant, id_), meta) in enumerate(
                        zip(self.keys, self.metadata, strict=True)
                    )
                ),
            )
            connection.commit()
            return connection.serialize()
        finally:
            connection.close()

    def write_sqlite(self, path: Path) -> None:
        """Write :meth:`sqlite_bytes` to a new SQLite file at ``path``."""
        path.write_bytes(self.sqlite_bytes())

    @classmethod
    def read_sqlite(cls, path: Path) -> EntryTable:
        """Rebuild a table from :meth:`write_sqlite`'s file.

        The file's bytes are read once and opened in memory
        (:meth:`from_sqlite_bytes`): no SQLite URI is built from the path, so
        no character of a directory name (``%``, ``?``, ``#``) can redirect
        the read to another file or create one.

        Raises:
            IntegrityError: the file is unreadable or not a valid entry table.
        """
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise IntegrityError(
                f"{path}: cannot read the vector-store entry table: {error}"
            ) from None
        return cls.from_sqlite_bytes(data, str(path))

    @classmethod
    def from_sqlite_bytes(cls, data: bytes, where: str) -> EntryTable:
        """Rebuild a table from :meth:`sqlite_bytes`, checking every row and field.

        Args:
            data: the bytes of the SQLite database.
            where: the file they came from, for error messages.

        Raises:
            IntegrityError: the bytes are not an entry table, or a row breaks
                the format (rows not contiguous, an empty or non-text tenant or
                id, an id repeated within a tenant, metadata that is not a
                flat JSON object of finite scalars); the message names the
                file, the row and the field.
        """
        connection = sqlite3.connect(":memory:")
        try:
            connection.deserialize(data)
            rows = connection.execute(
                "SELECT row, tenant, id, metadata FROM entries ORDER BY row"
            ).fetchall()
        except (sqlite3.Error, OverflowError, ValueError) as error:
            raise IntegrityError(
                f"{where} is not a readable vector-store entry table: {error}"
            ) from None
        finally:
            connection.close()
        table = cls()
        run_tenant: str | None = None
        run_ids: list[str] = []
        run_metas: list[Metadata] = []
        seen: set[tuple[str, str]] = set()
        for expected, (row, tenant, id_, meta) in enumerate(rows):
            if row != expected:
                raise IntegrityError(
                    f"{where}: rows are not contiguous (row {row!r} at {expected})"
                )
            for field, value in (("tenant", tenant), ("id", id_)):
                if not isinstance(value, str) or not value:
                    raise IntegrityError(
                        f"{where} row {row}: field {field!r} must be non-empty text, got {value!r}"
                    )
            if (tenant, id_) in seen:
                raise IntegrityError(f"{where} row {row}: id {id_!r} repeats in tenant {tenant!r}")
            seen.add((tenant, id_))
            if tenant != run_tenant and run_tenant is not None:
                table.assign(run_tenant, run_ids, run_metas)  # rows keep their saved order
                run_ids, run_metas = [], []
            run_tenant = tenant
            run_ids.append(id_)
            run_metas.append(_saved_metadata(meta, f"{where} row {row}"))
        if run_tenant is not None:
            table.assign(run_tenant, run_ids, run_metas)
        return table


def _saved_metadata(text: object, where: str) -> Metadata:
    """The metadata column of one saved row: a JSON object of finite scalars."""
    if not isinstance(text, str):
        raise IntegrityError(
            f"{where}: field 'metadata' must be JSON text, got {type(text).__name__}"
        )
    try:
        value = json.loads(text)
        return check_metadata_mapping(value, f"{where} field 'metadata'")
    except (ValueError, RecursionError) as error:  # InvalidInputError is a ValueError
        raise IntegrityError(f"{where}: field 'metadata' is invalid: {error}") from None
