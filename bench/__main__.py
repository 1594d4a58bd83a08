"""``python -m bench [--quick] [--sizes N,N]``: measure, print a table, write BENCHMARKS.md.

Figures (each server in a fresh process, on a generated Maildir):
  1. index build: wall time, rate and peak RSS; load time, bytes per message, snapshot
     size; rescan with nothing changed;
  2. initial sync of the INBOX, JMAP vs Dovecot IMAP on the same Maildir (round trips,
     bytes on the wire with and without gzip, wall time);
  3. resync after 50 flag changes and 10 new messages, JMAP /changes vs IMAP QRESYNC;
  4. list view and text search latency;
  5. push latency from a Dovecot-side change, and the cost of 1,000 idle listeners;
  6. throughput with 50 concurrent clients mixing list views and flag writes.
Times are medians of repeated runs where a run is cheap enough to repeat.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.generate import generate
from bench.machine import commit, machine
from bench.workloads import ROWS as WORKLOAD_ROWS

ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import gc, json, os, sys, time, resource
from pathlib import Path
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
mode, maildir, state = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
from maildir_jmap.store.account import Account
import tracemalloc
gc.collect()
before = rss()
if mode == "trace":
    tracemalloc.start()
start = time.perf_counter()
account = Account.open("bench", maildir, state, scan=(mode not in ("load", "trace")))
if mode == "build":
    account.compact()
elapsed = time.perf_counter() - start
gc.collect()
after = rss()
out = {"seconds": elapsed, "rss_delta": after - before, "messages": len(account.index.emails),
       "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
if mode == "trace":
    gc.collect()
    out["traced"] = tracemalloc.get_traced_memory()[0]
if mode == "rescan":
    start = time.perf_counter()
    account.rescan()
    out["rescan"] = time.perf_counter() - start
print(json.dumps(out))
"""


def probe(mode: str, maildir: Path, state: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, mode, str(maildir), str(state)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    data: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def measure(count: int, repeats: int, workdir: Path) -> dict[str, float]:
    maildir = workdir / f"Maildir-{count}"
    started = time.perf_counter()
    generated = generate(maildir, count)
    gen_seconds = time.perf_counter() - started
    builds = []
    peak = 0.0
    for n in range(repeats):
        state = workdir / f"state-{count}-{n}"
        result = probe("build", maildir, state)
        builds.append(result["seconds"])
        peak = max(peak, result["peak_rss"])
        if n < repeats - 1:
            shutil.rmtree(state)
    state = workdir / f"state-{count}-{repeats - 1}"
    loads = [probe("load", maildir, state) for _ in range(repeats)]
    rescan = probe("rescan", maildir, state)
    traced = probe("trace", maildir, state)["traced"]
    snapshot = next(state.rglob("snapshot.msgpack")).stat().st_size
    build = statistics.median(builds)
    from bench.listview import measure as list_view

    views = list_view(maildir, state, 10 if repeats == 1 else 40)
    from bench.compare import compare, throughput

    versus = compare(maildir, state, workdir, repeats)
    busy = throughput(maildir, state, 50, 3.0 if repeats == 1 else 15.0)
    return {
        **views,
        **versus,
        **{f"busy_{k}": v for k, v in busy.items()},
        "messages": count,
        "maildir_mb": generated.bytes / 1e6,
        "generate_s": gen_seconds,
        "build_s": build,
        "rate": count / build,
        "peak_rss_mb": peak / 2**20,
        "load_s": statistics.median(r["seconds"] for r in loads),
        "bytes_per_msg": statistics.median(r["rss_delta"] for r in loads) / count,
        "live_per_msg": traced / count,
        "snapshot_mb": snapshot / 1e6,
        "rescan_s": rescan["rescan"],
    }


ROWS = [
    ("messages", "messages", "{:.0f}"),
    ("maildir_mb", "Maildir size (MB)", "{:.0f}"),
    ("build_s", "index build from nothing (s, median)", "{:.2f}"),
    ("rate", "index build rate (messages/s)", "{:.0f}"),
    ("peak_rss_mb", "peak RSS while building (MiB)", "{:.0f}"),
    ("load_s", "index load at start-up (s, median)", "{:.2f}"),
    ("bytes_per_msg", "resident bytes per message after load (RSS growth)", "{:.0f}"),
    ("live_per_msg", "live Python bytes per message in the index (tracemalloc)", "{:.0f}"),
    ("snapshot_mb", "snapshot size (MB)", "{:.1f}"),
    ("rescan_s", "full rescan, nothing changed (s)", "{:.2f}"),
    ("list_first_ms", "list view, first request after a change (ms)", "{:.0f}"),
    ("list_p50_ms", "list view p50 (ms)", "{:.1f}"),
    ("list_p95_ms", "list view p95 (ms)", "{:.1f}"),
    (
        "search_build_s",
        "first text search after start-up (s; search is indexed with the rest)",
        "{:.1f}",
    ),
    ("search_p50_ms", "text search + list view p50 (ms)", "{:.0f}"),
    ("search_p95_ms", "text search + list view p95 (ms)", "{:.0f}"),
    ("inbox_messages", "INBOX messages (JMAP / IMAP sync below)", "{:.0f}"),
    ("sync_imap_rt", "initial sync, IMAP round trips", "{:.0f}"),
    ("sync_jmap_rt", "initial sync, JMAP round trips", "{:.0f}"),
    ("sync_imap_kb", "initial sync, IMAP bytes on the wire (KiB)", "{:.0f}"),
    ("sync_jmap_kb", "initial sync, JMAP bytes, gzip (KiB)", "{:.0f}"),
    ("sync_jmap_plain_kb", "initial sync, JMAP bytes, no gzip (KiB)", "{:.0f}"),
    ("sync_imap_ms", "initial sync, IMAP wall time (ms, median)", "{:.0f}"),
    ("sync_jmap_ms", "initial sync, JMAP wall time (ms, median)", "{:.0f}"),
    ("sync_jmap_bytes_rt", "initial sync, JMAP round trips, answers read as bytes", "{:.0f}"),
    ("sync_jmap_bytes_ms", "initial sync, JMAP answers read as bytes like IMAP's (ms)", "{:.0f}"),
    ("resync_imap_rt", "resync after 50 flags + 10 new, IMAP QRESYNC round trips", "{:.0f}"),
    ("resync_jmap_rt", "resync, JMAP round trips", "{:.0f}"),
    ("resync_imap_kb", "resync, IMAP bytes (KiB)", "{:.1f}"),
    ("resync_jmap_kb", "resync, JMAP bytes, gzip (KiB)", "{:.1f}"),
    ("resync_jmap_plain_kb", "resync, JMAP bytes, no gzip (KiB)", "{:.1f}"),
    ("resync_imap_ms", "resync, IMAP wall time (ms, median)", "{:.0f}"),
    ("resync_jmap_ms", "resync, JMAP wall time (ms, median)", "{:.0f}"),
    (
        "busy_requests_per_s",
        "50 clients, 40 looping list views + 10 flag writes: requests/s",
        "{:.0f}",
    ),
    ("busy_write_share", "50 clients: flag writes among the requests (share)", "{:.2f}"),
    ("busy_load", "50 clients: load from wrk (1) or Python clients (0)", "{:.0f}"),
    ("busy_stolen", "50 clients: CPU time the hypervisor took meanwhile (share)", "{:.2f}"),
    ("busy_read_p50_ms", "50 clients: list view p50 (ms)", "{:.0f}"),
    ("busy_read_p95_ms", "50 clients: list view p95 (ms)", "{:.0f}"),
    ("busy_write_p50_ms", "50 clients: flag write p50 (ms)", "{:.0f}"),
    ("busy_write_p95_ms", "50 clients: flag write p95 (ms)", "{:.0f}"),
    ("busy_errors", "50 clients: failed requests", "{:.0f}"),
    *WORKLOAD_ROWS,
]


def table(results: list[dict[str, float]]) -> str:
    header = "| figure | " + " | ".join(f"N = {int(r['messages'])}" for r in results) + " |"
    lines = [header, "|---" * (len(results) + 1) + "|"]
    for key, label, fmt in ROWS[1:]:
        lines.append(f"| {label} | " + " | ".join(fmt.format(r[key]) for r in results) + " |")
    return "\n".join(lines)


def push_figures(workdir: Path, quick: bool, largest: int, repeats: int) -> str:
    from bench.push import idle_listeners, push_latency

    samples, listeners, requests = (10, 200, 50) if quick else (50, 1000, 300)
    lines = ["", "## Push", ""]
    try:
        runs = [("200", push_latency(workdir, samples))]
        big = workdir / f"Maildir-{largest}"
        if largest > 200 and big.is_dir():
            state = workdir / f"state-{largest}-{repeats - 1}"
            runs.append((f"{largest:,}", push_latency(workdir, samples, big, state, "bench")))
        lines += [
            "Method: the Maildir served by `maildir-jmap serve` (its own process) "
            "and by a private Dovecot on loopback; one EventSource stream is open; an "
            f"imaplib client toggles \\Flagged on INBOX message 1 with STORE {samples} times, "
            "100 ms apart; each figure is the time from sending STORE to the `state` event "
            "arriving (Dovecot's rename, inotify, the debounce, reconcile, journal fsync, "
            "push). The large Maildir is the index benchmark's, already indexed.",
            "",
            "| messages | " + " | ".join(label for label, _ in runs) + " |",
            "|---|" + "---|" * len(runs),
            "| push latency, IMAP STORE -> EventSource, p50 (ms) | "
            + " | ".join(f"{r['push_p50_ms']:.0f}" for _, r in runs)
            + " |",
            "| push latency, p95 (ms) | "
            + " | ".join(f"{r['push_p95_ms']:.0f}" for _, r in runs)
            + " |",
            "| of which Dovecot's own STORE round trip, p50 (ms) | "
            + " | ".join(f"{r['store_p50_ms']:.0f}" for _, r in runs)
            + " |",
        ]
    except RuntimeError as exc:
        lines.append(f"Push latency not measured: {exc}.")
    idle = idle_listeners(workdir, listeners, requests)
    lines += [
        "",
        f"Idle listeners: Core/echo round trips ({requests} sequential requests, one "
        f"keep-alive connection) before and while {listeners} EventSource streams are open "
        "on the same server process.",
        "",
        "| figure | no listeners | with listeners |",
        "|---|---|---|",
        f"| API p50 (ms) | {idle['api_p50_quiet_ms']:.1f} | {idle['api_p50_listeners_ms']:.1f} |",
        f"| API p95 (ms) | {idle['api_p95_quiet_ms']:.1f} | {idle['api_p95_listeners_ms']:.1f} |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["soak"]:
        from bench.soak import main as soak

        return soak(argv[1:])
    if argv[:1] == ["dovecot-race"]:
        from bench.dovecot_race import main as dovecot_race

        return dovecot_race(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each (CI)")
    parser.add_argument("--sizes", help="comma-separated message counts")
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--workdir", help="where to generate Maildirs (default: a temp dir)")
    parser.add_argument("--no-push", action="store_true", help="skip the push figures")
    args = parser.parse_args(argv)
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    else:
        sizes = [2000] if args.quick else [10_000, 100_000]
    repeats = 1 if args.quick else 3
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="mj-bench-"))
    results = []
    push_section = ""
    try:
        for count in sizes:
            print(f"bench: {count} messages ...", file=sys.stderr, flush=True)
            results.append(measure(count, repeats, workdir))
        if not args.no_push:
            print("bench: push ...", file=sys.stderr, flush=True)
            push_section = push_figures(workdir, args.quick, max(sizes), repeats)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    rendered = table(results)
    print(rendered)
    print(push_section)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    Path(args.output).write_text(
        "# Benchmarks\n\n"
        f"Written by `python -m bench{' --quick' if args.quick else ''}` on {now}, "
        f"commit {commit()}.\n\nMachine: {machine()}.\n\n"
        "## Index\n\n"
        "Method: a Maildir++ tree generated by `bench/generate.py` (seed 42: INBOX, "
        "Archive, Sent, two list folders, Trash, Drafts; 40 % replies in threads; 60 % "
        "text/plain, 20 % multipart/alternative, 20 % with a base64 attachment; "
        "non-ASCII headers; long-tailed sizes; dates over four years). Each figure "
        "runs in a fresh Python process: *build* is `Account.open` on an empty state "
        "directory (scan, parse in a process pool, journal, snapshot); *load* opens "
        "the built index without scanning; resident bytes per message is the RSS "
        "growth over that load divided by the message count (it includes allocator "
        "slack and the msgpack buffers freed after loading), and the live bytes are "
        "what tracemalloc still sees allocated once the index is loaded; *rescan* is a full "
        f"reconcile with nothing changed. Build and load are medians of {repeats} "
        "run(s). *List view* is one HTTP request to the real app (own process, loopback, "
        "keep-alive): Email/query (INBOX, receivedAt descending, collapseThreads, limit 50) "
        "plus Email/get of from, subject, preview, keywords, mailboxIds, threadId, "
        "receivedAt, hasAttachment by back-reference; *first* is right after start-up (no "
        "cached order), p50/p95 over repeated requests; *text search* replaces the filter "
        "with {text: <a different 4-letter prefix each time>}, after a first search (the "
        "search index is built with the index since issue 18). The generator's bodies draw on 36 words, so every such "
        "prefix matches about 95 % of the account: the worst case for a search, whose "
        "matches are read newest first only as far as the page needs.\n\n"
        "*JMAP vs IMAP* (bench/compare.py): the same Maildir served by this server (its "
        "own process, following changes with inotify) and by a private Dovecot "
        "(Debian's dovecot-imapd, loopback, plaintext); every byte goes through a "
        "counting TCP proxy. *Initial sync* of the INBOX: IMAP is LOGIN, SELECT INBOX "
        "(CONDSTORE), UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE "
        "BODYSTRUCTURE); JMAP is the Session, Mailbox/query for the inbox, then "
        "Email/query + Email/get pairs of maxObjectsInGet, maxCallsInRequest / 2 pairs "
        "per request, both read from the Session, "
        "for threadId, mailboxIds, keywords, size, receivedAt, the envelope properties, "
        "hasAttachment and preview (no bodyStructure: the list-view equivalent). A round "
        "trip is a command or request the client waits for (IMAP counts the greeting). "
        "The JMAP client is httpx, decoding every answer with json (gzip, and without); "
        "the rows *read as bytes* are JMAP through the standard library's http.client "
        "reading answers as bytes, without compression, as imaplib reads IMAP's FETCH "
        "data without decoding ENVELOPE or BODYSTRUCTURE (bench/rawclient.py; the "
        "inbox's size comes with its id from Mailbox/get). "
        "Medians of the runs after a first warm-up run of each. *Resync*: another IMAP "
        "client sets \\Flagged on 50 random INBOX messages and APPENDs 10; once the JMAP "
        "server has reconciled, IMAP does ENABLE QRESYNC, SELECT (QRESYNC (uidvalidity "
        "modseq)) and UID FETCH of the new UIDs; JMAP sends one request: Email/changes, "
        "Email/get of the created (sync properties) and of the updated (keywords, "
        "mailboxIds) by back-reference. *50 clients*: one account, 50 concurrent "
        "keep-alive HTTP clients (maxConcurrentRequests raised to 50) from wrk (C; Python "
        "clients took a core of the two), 40 looping list views at random positions "
        "and 10 looping Email/set keyword toggles (without wrk: 50 Python clients "
        "mixing the two 80/20). *Full "
        "messages* and *attachment-name search* (bench/workloads.py): the 50 newest INBOX "
        "messages, IMAP UID FETCH BODY.PEEK[] vs JMAP Email/get with bodyStructure and "
        "fetchAllBodyValues; the word 'photo' that only attachments' file names carry, "
        "IMAP UID SEARCH TEXT vs JMAP Email/query text in the INBOX (hits and time).\n\n"
        + rendered
        + "\n"
        + push_section
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
