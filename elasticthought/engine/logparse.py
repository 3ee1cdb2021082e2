"""Read Caffe training logs (real Caffe's or ours) into train and test tables.

Reads the lines that Caffe's tools/extra/parse_log.py reads: `Iteration N`, `Train net output #k:
name = v`, `Test net output #k: name = v`, `lr = r`, and the glog timestamps (`I1128 ...` or
`I20261128 ...`). Each row has NumIters, Seconds (since the `Solving` line), LearningRate and one
column per output; test rows also have TestNet (the `Testing net (#k)` index). Unlike
parse_log.py, a row's LearningRate is the rate logged for that same iteration (the rate line
follows the outputs in Caffe's log), else the latest one logged before it.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime

_TIME = re.compile(r"^[IWEF](\d{8}|\d{4}) (\d\d):(\d\d):(\d\d)\.(\d+)")
_ITERATION = re.compile(r"Iteration (\d+)")
_TRAIN = re.compile(r"Train net output #(\d+): (\S+) = ([-+.\deEinfa]+)")
_TEST = re.compile(r"Test net output #(\d+): (\S+) = ([-+.\deEinfa]+)")
_LR = re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)")
_TESTING = re.compile(r"Testing net \(#(\d+)\)")


@dataclass
class LogTables:
    """Rows (dicts) of training outputs and of test outputs, in log order."""

    train: list[dict] = field(default_factory=list)
    test: list[dict] = field(default_factory=list)


def _timestamp(line: str, year: int, last: datetime | None) -> datetime | None:
    """The line's time; year-less (MMDD) stamps take `last`'s year, or `year`, and roll over
    to the next year when the month goes back."""
    match = _TIME.match(line)
    if not match:
        return None
    date, hh, mm, ss, frac = match.groups()
    micro = int(frac[:6].ljust(6, "0"))
    if len(date) == 8:
        return datetime(
            int(date[:4]), int(date[4:6]), int(date[6:]), int(hh), int(mm), int(ss), micro
        )
    base = last.year if last is not None else year
    when = datetime(base, int(date[:2]), int(date[2:]), int(hh), int(mm), int(ss), micro)
    if last is not None and when.month < last.month:
        when = when.replace(year=base + 1)
    return when


def parse_log(source: str | os.PathLike, year: int | None = None) -> LogTables:
    """Parse a log file (or, when `source` contains newlines, log text)."""
    if isinstance(source, str) and "\n" in source:
        text = source
    else:
        with open(source, encoding="utf-8", errors="replace") as f:
            text = f.read()
    if year is None:
        year = datetime.now().year
    lines = text.splitlines()
    start: datetime | None = None
    last: datetime | None = None
    for line in lines:
        stamp = _timestamp(line, year, last)
        if stamp is not None:
            last = stamp
            if "Solving " in line:
                start = stamp
                break
    last = None
    iteration = -1
    test_net = 0
    rates: dict[int, float] = {}
    tables = LogTables()
    train_row: dict | None = None
    test_row: dict | None = None
    for line in lines:
        stamp = _timestamp(line, year, last)
        if stamp is not None:
            last = stamp
            if start is None:
                start = stamp
        match = _ITERATION.search(line)
        if match:
            iteration = int(match.group(1))
        if iteration < 0:
            continue
        seconds = (last - start).total_seconds() if last and start else math.nan
        match = _LR.search(line)
        if match:
            rates[iteration] = float(match.group(1))
        match = _TESTING.search(line)
        if match:
            test_net = int(match.group(1))
        match = _TRAIN.search(line)
        if match:
            if train_row is None or train_row["NumIters"] != iteration:
                train_row = {"NumIters": iteration, "Seconds": seconds, "LearningRate": math.nan}
                tables.train.append(train_row)
            train_row[match.group(2)] = float(match.group(3))
        match = _TEST.search(line)
        if match:
            if (
                test_row is None
                or test_row["NumIters"] != iteration
                or test_row["TestNet"] != test_net
            ):
                test_row = {
                    "NumIters": iteration,
                    "Seconds": seconds,
                    "LearningRate": math.nan,
                    "TestNet": test_net,
                }
                tables.test.append(test_row)
            test_row[match.group(2)] = float(match.group(3))
    for row in tables.train + tables.test:
        row["LearningRate"] = _rate_for(rates, row["NumIters"])
    return tables


def _rate_for(rates: dict[int, float], iteration: int) -> float:
    if iteration in rates:
        return rates[iteration]
    earlier = [i for i in rates if i < iteration]
    return rates[max(earlier)] if earlier else math.nan


def to_csv(rows: list[dict]) -> str:
    """CSV text of a table (columns in first-seen order), like parse_log.py's output files."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
