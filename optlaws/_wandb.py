"""W&B run folders: the history and config recorded in a run's ``run-<id>.wandb`` file.

W&B writes every run, online or offline, as a transaction log beside its files: a 7-byte header
(``:W&B``, magic ``0xBEE1``, version 0), then the LevelDB log format (32 KiB blocks; each chunk
a CRC-32 of its type and data, a length, a type: full, first, middle or last piece of a record),
each record one ``wandb_internal_pb2.Record`` protobuf. The framing is read here; the records are
decoded with W&B's own message classes (``pip install 'optlaws[wandb]'``).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from ._curves import InvalidCurveError

__all__ = ["run_file", "run_history"]

HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
BLOCK = 32768
CHUNK_HEADER = struct.Struct("<IHB")  # CRC-32, length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def run_file(path: Path) -> Path:
    """The ``run-<id>.wandb`` file of a W&B run folder (``wandb/run-...``, ``wandb/offline-run-...``,
    ``wandb/latest-run``), or ``path`` itself when it is one."""
    if path.is_file():
        return path
    found = sorted(path.glob("run-*.wandb"))
    if len(found) != 1:
        raise InvalidCurveError(
            f"{path}: a W&B run folder holds one run-<id>.wandb file; found {len(found) or 'none'}."
        )
    return found[0]


def _records(path: Path) -> Iterator[bytes]:
    """The records of a W&B transaction log, checked; a run still being written ends at its last
    whole record."""
    data = path.read_bytes()
    if not data.startswith(HEADER[:4]):
        raise InvalidCurveError(f"{path}: not a W&B run file (no ':W&B' header).")
    if data[:len(HEADER)] != HEADER:
        raise InvalidCurveError(f"{path}: a W&B run file of an unknown version ({data[4:7].hex()}).")
    offset, pending = len(HEADER), None
    while offset + CHUNK_HEADER.size <= len(data):
        left = BLOCK - offset % BLOCK
        if left < CHUNK_HEADER.size:  # a block's tail too short for a chunk header is padding
            offset += left
            continue
        checksum, length, kind = CHUNK_HEADER.unpack_from(data, offset)
        start = offset + CHUNK_HEADER.size
        if kind == 0:  # preallocated zeros: the end
            return
        if length > left - CHUNK_HEADER.size:  # a writer never lets a chunk cross its block
            raise InvalidCurveError(f"{path}: damaged at byte {offset} (a chunk of {length} bytes "
                                    f"runs past its {BLOCK // 1024} KiB block).")
        chunk = data[start:start + length]
        if len(chunk) < length:  # cut short by the end of the file: a run still being written
            return
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != checksum:
            raise InvalidCurveError(f"{path}: damaged at byte {offset} (checksum mismatch).")
        offset = start + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind in (MIDDLE, LAST) and pending is not None:
            pending += chunk
            if kind == LAST:
                yield pending
                pending = None
        else:
            raise InvalidCurveError(f"{path}: damaged at byte {offset - length} (chunk type {kind}).")


def _key(item) -> str:
    return item.key or ".".join(item.nested_key)


def run_history(path: Path) -> tuple[list[dict], dict]:
    """The logged rows (``wandb.log`` calls, with ``_step``) and the config of a W&B run file."""
    try:
        from wandb.proto import wandb_internal_pb2
    except ImportError:
        raise ImportError(f"{path}: reading a W&B run needs W&B's record format: pip install 'optlaws[wandb]' "
                          "(or export the history: wandb.Api().run(...).history() and LossCurve.from_dataframe).")
    rows, config = [], {}
    for data in _records(path):
        record = wandb_internal_pb2.Record()
        try:
            record.ParseFromString(data)
        except Exception as e:  # protobuf's DecodeError, whichever implementation is installed
            raise InvalidCurveError(f"{path}: a record is not a W&B record ({e}).") from None
        kind = record.WhichOneof("record_type")
        if kind == "history":
            rows.append({_key(item): json.loads(item.value_json) for item in record.history.item})
        elif kind in ("run", "config"):
            updates = record.run.config if kind == "run" else record.config
            config.update({_key(item): json.loads(item.value_json) for item in updates.update})
            for item in updates.remove:
                config.pop(_key(item), None)
    return rows, config
