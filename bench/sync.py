"""What one audit `fdatasync` costs on a filesystem, appended to versus pre-zeroed.

The audit log is appended to and synced once per batch (`docs/audit.md`). On ext4 an
append changes the file's size, so each `fdatasync` also commits the journal; overwriting
blocks that were written (zeroed) beforehand changes no metadata, so the sync flushes the
data alone. This measures both, plus `fallocate` with and without FALLOC_FL_KEEP_SIZE, with
lines the size of an audit event: wall-clock latency per write + sync (p50, p99) and the
CPU the process spends per sync (user + system, which on a VM includes the virtio
notifications).

It informs a format decision the audit log has not taken: a pre-zeroed tail means the file
ends in NUL padding, which readers (`strongroom audit verify`, log shippers that tail the
file) would have to accept. Nothing in Strongroom writes such a tail today.

Usage: python3 bench/sync.py [DIR] [--count N] [--rounds R]
DIR defaults to the current directory; use the filesystem the audit log lives on. Prints a
Markdown table. Never a test.
"""

import argparse
import ctypes
import os
import statistics
import time

LINE = b"x" * 299 + b"\n"  # about one serialised audit event
FALLOC_FL_KEEP_SIZE = 1


def prepare(path, kind, count):
    """Opens a fresh file for `kind`; returns (fd, write), write(i) writing line i."""
    room = len(LINE) * count + 4096
    if kind in ("append", "keep-size"):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        if kind == "keep-size":
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.fallocate(fd, FALLOC_FL_KEEP_SIZE, ctypes.c_long(0), ctypes.c_long(room)):
                raise OSError(ctypes.get_errno(), "fallocate(KEEP_SIZE)")
        os.fsync(fd)
        return fd, lambda i: os.write(fd, LINE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    if kind == "pre-zeroed":
        os.write(fd, b"\0" * room)
    else:  # "fallocate": unwritten extents, the size set
        os.posix_fallocate(fd, 0, room)
    os.fsync(fd)
    return fd, lambda i: os.pwrite(fd, LINE, i * len(LINE))


def measure(directory, kind, count):
    path = os.path.join(directory, f".strongroom-sync-{kind}.tmp")
    fd, write = prepare(path, kind, count)
    try:
        lat = []
        cpu0 = time.process_time()
        for i in range(count):
            t = time.perf_counter()
            write(i)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t)
        cpu = (time.process_time() - cpu0) / count
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99)], cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", nargs="?", default=".", help="a directory on the audit log's filesystem")
    ap.add_argument("--count", type=int, default=3000, help="write + sync pairs per round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, the kinds alternating")
    args = ap.parse_args()
    kinds = ("append", "keep-size", "fallocate", "pre-zeroed")
    got = {k: [] for k in kinds}
    for _ in range(args.rounds):
        for k in kinds:
            got[k].append(measure(args.dir, k, args.count))
    base = statistics.median(r[2] for r in got["append"])
    print(f"{args.count} writes of {len(LINE)} B + fdatasync, median of {args.rounds} rounds, in {os.path.abspath(args.dir)}\n")
    print("| file | p50 µs | p99 µs | CPU µs / sync | CPU vs append |")
    print("|---|---:|---:|---:|---:|")
    for k in kinds:
        p50, p99, cpu = (statistics.median(r[j] for r in got[k]) for j in range(3))
        print(f"| {k} | {p50 * 1e6:.0f} | {p99 * 1e6:.0f} | {cpu * 1e6:.1f} | {cpu / base:.2f} |")


if __name__ == "__main__":
    main()
