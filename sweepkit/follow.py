"""Follow a run's `.wandb` transaction log as it grows: each record read and parsed once.

The agent needs, while a run goes and when it ends, what the scheduler reads
of it: the sweep metric's points, the run's summary and its exit code. A
long run logs millions of records, so reading must cost what was added, not
what is there: `TransactionLog` keeps its place in the file and returns only
the records completed since the last call, and `RunMetrics` keeps only the
metric's count, extremes and last value, the points not yet handed on, and
the latest summary, so the agent's memory stays flat however long the run.

The file is the log wandb-core writes (the format of LevelDB's log, with a
header of wandb's own): 7 bytes ``:W&B``, magic ``0xBEE1``, version; then
32 KiB blocks of chunks, each a CRC-32 (of its type byte and data), a
length and a type; a record that does not fit the rest of a block is split
into FIRST, MIDDLE... LAST chunks. The records are wandb's own protobuf
`Record` messages. (wandb-core's `leet inspect --follow --json` reads the
same file, but prints every record as JSON, which costs the agent a share of
what the run itself spends: docs/performance.md, "Watching a run".)
"""

from __future__ import annotations

import json
import math
import struct
import time
import zlib
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

from sweepkit.core.records import MetricProgress, MetricTally, finite
from sweepkit.runlog import run_files

FILE_HEADER = struct.Struct("<4sHB")  # ident, magic, version
FILE_IDENT, FILE_MAGIC = b":W&B", 0xBEE1
CHUNK_HEADER = struct.Struct("<IHB")  # crc32, length, type
BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
READ_AT_MOST = 4 << 20  # bytes per call: one call never holds the agent for long
_TYPE_CRC = {kind: zlib.crc32(bytes([kind])) for kind in (FULL, FIRST, MIDDLE, LAST)}


class LogFormatError(Exception):
    """The file is not a wandb transaction log."""


class TransactionLog:
    """The records a run has added to its `.wandb` file since the last `read`.

    >>> TransactionLog("/nonexistent/run-x.wandb").read()
    []
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._offset = 0  # file position of the first chunk not yet consumed
        self._parts: list[bytes] = []  # the chunks so far of a record split across blocks

    def read(self, at_most: int = READ_AT_MOST) -> list[bytes]:
        """The complete records added since the last call (up to about `at_most` bytes),
        each the bytes of one protobuf `Record`.

        A chunk still being written (short, or failing its checksum) is left
        for the next call.

        Raises:
            LogFormatError: the file does not start with wandb's header.
        """
        try:
            with self.path.open("rb") as file:
                file.seek(self._offset)
                data = file.read(max(at_most, BLOCK))
        except FileNotFoundError:
            return []
        position = 0
        if self._offset == 0:
            if len(data) < FILE_HEADER.size:
                return []
            ident, magic, _version = FILE_HEADER.unpack_from(data)
            if ident != FILE_IDENT or magic != FILE_MAGIC:
                raise LogFormatError(f"{self.path} is not a wandb transaction log")
            position = FILE_HEADER.size
        records = []
        while True:
            in_block = BLOCK - (self._offset + position) % BLOCK
            if in_block < CHUNK_HEADER.size:  # the block's tail is padding
                if len(data) - position < in_block:
                    break
                position += in_block
                continue
            if len(data) - position < CHUNK_HEADER.size:
                break
            crc, length, kind = CHUNK_HEADER.unpack_from(data, position)
            end = position + CHUNK_HEADER.size + length
            if end > len(data):
                break
            chunk = data[position + CHUNK_HEADER.size : end]
            if kind not in _TYPE_CRC:  # zeros: the writer padded the block
                position += in_block
                continue
            if zlib.crc32(chunk, _TYPE_CRC[kind]) != crc:
                break  # not all written yet
            position = end
            if kind == FULL:
                records.append(chunk)
            elif kind == FIRST:
                self._parts = [chunk]
            elif kind == MIDDLE:
                self._parts.append(chunk)
            else:
                records.append(b"".join([*self._parts, chunk]))
                self._parts = []
        self._offset += position
        return records


class RunMetrics(MetricTally):
    """What the scheduler needs of one run, kept up to date from its records."""

    def __init__(self, metric: str | None, goal: str = "minimize") -> None:
        super().__init__(metric, goal)
        self.exit_code: int | None = None  # set by the run's exit record: it has ended cleanly
        self._needle = metric.encode() if metric else None
        self._item_prefix = _item_prefix(metric) if metric else None
        self._entry: tuple[str, str] | None = None  # the metric's summary entry: key, JSON value
        self._summary_pending: list[bytes] = []  # newer summary records whose bytes name it

    def add(self, records: list[bytes]) -> None:
        """Take in a run's records; only those that can matter are parsed.

        A long run writes one history and two summary records per `wandb.log`;
        parsing each would cost more than all the rest of the agent's work. So
        a record is looked at only if the metric's name is in its bytes (or it
        may be the exit record), its kind is read from its first bytes, and a
        history record's value of the metric is read where protobuf puts it
        (`_logged_value`), parsing the record only when it is not there.
        """
        needle = self._needle
        for raw in records:
            if needle is not None and needle in raw:
                kind = record_kind(raw)
                if kind == HISTORY:
                    value = _logged_value(raw, self._item_prefix)
                    if value is _UNREAD:
                        self._add_point(pb.Record.FromString(raw).history.item)
                    else:
                        self.add_value(value)
                elif kind == SUMMARY:
                    self._summary_pending.append(raw)
                elif kind == EXIT:
                    self.exit_code = pb.Record.FromString(raw).exit.exit_code
            elif _EXIT_TAG in raw and record_kind(raw) == EXIT:  # (confirmed: bytes may lie)
                self.exit_code = pb.Record.FromString(raw).exit.exit_code

    def _add_point(self, items: Any) -> None:
        if self.metric is None:
            return
        for item in items:
            if _key(item) == self.metric:
                self.add_value(_finite_json(item.value_json))
                return

    def progress(self) -> MetricProgress:
        """The metric so far; the new points are handed on once (the next call has none)."""
        return self.progress_with(self.summary())

    def summary(self) -> dict[str, Any]:
        """The run's summary entry for the metric (``{"acc": 0.9}``, ``{"acc": {"max": 0.9}}``).

        Only the newest summary record that sets (or removes) the metric's key
        matters, so the pending ones are read newest first until one does.
        """
        for raw in reversed(self._summary_pending):
            update = pb.Record.FromString(raw).summary
            removed = any(_covers(_key(item), self.metric) for item in update.remove)
            entry = next(
                ((k, i.value_json) for i in update.update if _covers(k := _key(i), self.metric)),
                None,
            )
            if entry is not None or removed:
                self._entry = entry
                break
        self._summary_pending = []
        return {} if self._entry is None else {self._entry[0]: json.loads(self._entry[1])}


def numeric_summary(summary: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The summary's finite numbers, nested keys joined with dots, wandb's `_` keys left out."""
    flat: dict[str, float] = {}
    for key, value in summary.items():
        if key.startswith("_"):
            continue
        if isinstance(value, dict):
            flat.update(numeric_summary(value, f"{prefix}{key}."))
        elif (number := finite(value)) is not None:
            flat[prefix + key] = number
    return flat


def record_kind(raw: bytes) -> int:
    """The field number of a serialized `Record`'s kind (history 2, summary 3, exit 18, ...).

    Reads the record's fields in order (protobuf writes them by field number)
    up to the one that belongs to the `record_type` oneof, skipping the others
    (`num`, and `control` before the kinds numbered above it) by their wire
    type; nothing is decoded. 0 if the record has no kind.
    """
    position = 0
    if raw[:1] == b"\x08":  # the usual start: num, then (for history, summary) the kind's tag
        position = 1
        while position < len(raw) and raw[position] >= 0x80:
            position += 1
        position += 1
        if position < len(raw) and raw[position] < 0x80 and raw[position] >> 3 in _KINDS:
            return raw[position] >> 3
    while position < len(raw):
        tag, position = _varint(raw, position)
        field, wire_type = tag >> 3, tag & 7
        if field in _KINDS:
            return field
        if wire_type == 0:  # varint
            _value, position = _varint(raw, position)
        elif wire_type == 2:  # length-delimited
            length, position = _varint(raw, position)
            position += length
        elif wire_type in (1, 5):  # fixed 64 / 32 bits
            position += 8 if wire_type == 1 else 4
        else:
            return 0
    return 0


def _varint(raw: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while position < len(raw):
        byte = raw[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    return value, position


_KINDS = {f.number for f in pb.Record.DESCRIPTOR.oneofs_by_name["record_type"].fields}
HISTORY = pb.Record.DESCRIPTOR.fields_by_name["history"].number
SUMMARY = pb.Record.DESCRIPTOR.fields_by_name["summary"].number
EXIT = pb.Record.DESCRIPTOR.fields_by_name["exit"].number


_UNREAD = object()
_EXIT_TAG = bytes([EXIT << 3 | 2, 1])  # the exit field's tag, as a two-byte varint


def _item_prefix(metric: str) -> bytes | None:
    """How a `HistoryItem` of the metric starts when serialized: its one `nested_key`
    (field 2) then its `value_json` (field 16), the form wandb-core writes numbers in."""
    name = metric.encode()
    if "." in metric or len(name) > 127:  # a nested key (several fields), or a long one
        return None
    return bytes([0x12, len(name)]) + name + bytes([16 << 3 | 2, 1])


def _logged_value(raw: bytes, prefix: bytes | None) -> float | object | None:
    """The metric's value in a serialized history record, read without parsing the record:
    a finite number, None (logged, but not a finite number), or _UNREAD (not in the form
    `_item_prefix` expects: the caller parses the record)."""
    if prefix is None:
        return _UNREAD
    start = raw.find(prefix)
    while start >= 2:
        at = start + len(prefix)
        length = raw[at] if at < len(raw) else 128  # value_json's length: one byte for numbers
        # A whole item (field 1 of HistoryRecord, tag 0x0a) of exactly these two fields, not
        # the tail of another's key ("nested.loss" ends in the same bytes).
        if length < 128 and raw[start - 2] == 0x0A and raw[start - 1] == len(prefix) + 1 + length:
            return _finite_json(raw[at + 1 : at + 1 + length].decode(errors="replace"))
        start = raw.find(prefix, start + 1)
    return _UNREAD


def _covers(key: str, metric: str | None) -> bool:
    """The summary key holds the metric: it is the metric, or a value the metric reaches into."""
    return metric is not None and (key == metric or metric.startswith(key + "."))


def _key(item: Any) -> str:
    return ".".join(item.nested_key) if item.nested_key else item.key


def _finite_json(text: str) -> float | None:
    """A finite number from a value's JSON text (cheaper than json.loads for the usual number)."""
    try:
        return finite(float(text))  # NaN and Infinity parse, and are refused by finite
    except ValueError:
        return None  # a string, a list, an object, null, true


class RunFollower:
    """One run's log, followed from the moment wandb creates it until its exit record."""

    FIND_EVERY_S = 0.5  # how often to look for the run's folder until wandb has made it
    QUIET_S = 1.5  # a log unchanged this long after the process ended has nothing more coming
    EXIT_WAIT_S = 10.0  # the longest wait for the exit record after the process ended

    def __init__(self, wandb_dir: str | Path, run_id: str, metric: str | None, goal: str) -> None:
        self.wandb_dir, self.run_id = Path(wandb_dir), run_id
        self.metrics = RunMetrics(metric, goal)
        self.run_file: Path | None = None
        self.restarts = 0  # wandb runs after the first under this run's id
        self._log: TransactionLog | None = None
        self._looked_at = -math.inf

    def poll(self) -> bool:
        """Read what the run added since the last call; True if there was anything."""
        if self._log is None or self.metrics.exit_code is not None:
            self._find_newest()
            if self._log is None:
                return False
        records = self._log.read()
        self.metrics.add(records)
        return bool(records)

    def _find_newest(self, *, now: bool = False) -> None:
        """Follow the newest wandb run folder of the run's id (looked for now and then).

        A function may call `wandb.init` again after its first run ended (W&B's
        agent lets it; each gets the sweep run's id): the last run's metric is
        the one that counts, as on W&B, where it is the same run.
        """
        moment = time.monotonic()
        if not now and moment - self._looked_at < self.FIND_EVERY_S:
            return
        self._looked_at = moment
        found = run_files(self.wandb_dir, self.run_id)
        # Counted from the folders, not from the ones seen: a busy agent may first look
        # after the function's first wandb run has come and gone.
        self.restarts = max(self.restarts, len(found) - 1)
        if not found or found[-1] == self.run_file:
            return
        if self.run_file is not None:
            self.metrics = RunMetrics(self.metrics.metric, self.metrics.goal)
        self.run_file, self._log = found[-1], TransactionLog(found[-1])

    def finish(self) -> None:
        """After the run's process ended: read on until its (last) wandb run's exit record, or
        until nothing more comes (a killed run writes none; a function run's shared wandb
        service may still be writing its last records)."""
        started = last_news = time.monotonic()
        self._looked_at = -math.inf
        while True:
            if self.metrics.exit_code is not None:
                self._find_newest(now=True)  # a later wandb run of the same id resets exit_code
                if self.metrics.exit_code is not None:
                    return
            moment = time.monotonic()
            if self.poll():
                last_news = moment
            elif moment - last_news > self.QUIET_S or moment - started > self.EXIT_WAIT_S:
                return
            else:
                time.sleep(0.05)

    def problems(self) -> list[str]:
        """What went unsaid about how the run logged: a second wandb run, values left out."""
        said = []
        if self.restarts:
            said.append(
                f"it called wandb.init {self.restarts + 1} times; the last run's metric counts"
            )
        metric, dropped = self.metrics.metric, self.metrics.dropped
        if dropped:
            said.append(
                f"{metric} was logged {dropped} time(s) as NaN, inf or not a number: "
                "those values are left out"
            )
        return said
