#!/usr/bin/env python3
"""Checks for sip-tests/e2e.sh, e2e-acd.sh and bench-calls.sh (standard library only).

Subcommands print one line per assertion, "OK <text>" or "BAD <text>", and the shell
scripts count them; anything else they print is detail for a human.

  ports N1 [N2 ...]        free blocks of N1, N2 ... consecutive ports on 127.0.0.1 (UDP
                           and TCP both bindable), each block starting on an even port;
                           prints the first port of each block.
  records ...              the call records printed by `siaga calls --json`.
  timeline ...             the call_events rows of one call, read from the SQLite file.
  agents ...               operators' state changes printed by `siaga agents --json`.
  rtp ...                  RTP packets through siaga's relay, counted in a pcap capture.
  latency ...              trunk INVITE -> operator INVITE delays in a pcap capture.
  sipp-stat ...            totals from a SIPp -trace_stat CSV file.
"""

import argparse
import datetime as dt
import json
import math
import random
import re
import socket
import sqlite3
import statistics
import struct
import sys


def ok(text):
    print(f"OK {text}")


def bad(text):
    print(f"BAD {text}")


# ---------------------------------------------------------------------------- ports


def port_free(port):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def cmd_ports(args):
    # Below the kernel's ephemeral range (32768-60999), so that no client socket of
    # another process lands in our blocks while the run lasts.
    low, high = 20000, 32000
    taken = set()
    bases = {}
    # Largest first, so that small blocks scattered at random do not leave no room for it.
    for index, size in sorted(enumerate(args.sizes), key=lambda item: -item[1]):
        for _ in range(2000):
            base = random.randrange(low, high - size) & ~1
            block = range(base, base + size)
            if any(p in taken for p in block):
                continue
            if all(port_free(p) for p in block):
                taken.update(block)
                bases[index] = base
                break
        else:
            print(f"no free block of {size} ports in {low}-{high}", file=sys.stderr)
            return 1
    print(" ".join(str(bases[i]) for i in range(len(args.sizes))))
    return 0


# -------------------------------------------------------------------------- records

TIME_KEYS = ["received_at", "queued_at", "first_offered_at", "answered_at", "ended_at"]


def parse_time(value):
    """RFC 3339 text -> aware datetime (fractions cut to microseconds), or None."""
    if value is None:
        return None
    text = str(value).strip().replace("Z", "+00:00").replace("z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return "unparseable"


def load_records(path, prefix):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, dict):
        data = data.get("calls", [])
    return [r for r in data if str(r.get("trunk_call_id") or "").startswith(prefix)]


def cmd_records(args):
    try:
        records = load_records(args.json, args.prefix)
    except (OSError, ValueError) as error:
        bad(f"records: cannot read `siaga calls --json` output: {error}")
        return 0
    n = len(records)
    if n == args.count:
        ok(f"records: {n} call record(s) with trunk Call-ID {args.prefix}*")
    else:
        bad(f"records: {n} call record(s) with trunk Call-ID {args.prefix}*, expected {args.count}")
        if n == 0:
            return 0
    problems = []
    operators_seen = set()
    for r in records:
        rid = r.get("trunk_call_id")
        if args.disposition and r.get("disposition") != args.disposition:
            problems.append(f"{rid}: disposition {r.get('disposition')!r}, expected {args.disposition!r}")
        op = r.get("operator")
        if args.operators is not None:
            allowed = set(args.operators.split(",")) if args.operators else set()
            if allowed and str(op) not in allowed:
                problems.append(f"{rid}: operator {op!r}, expected one of {sorted(allowed)}")
            if not allowed and op is not None:
                problems.append(f"{rid}: operator {op!r}, expected none")
        if op is not None:
            operators_seen.add(str(op))
        times = {k: parse_time(r.get(k)) for k in TIME_KEYS}
        for k in args.need_times.split(",") if args.need_times else []:
            if times.get(k) is None:
                problems.append(f"{rid}: {k} is null")
            elif times.get(k) == "unparseable":
                problems.append(f"{rid}: {k} {r.get(k)!r} is not RFC 3339")
        for k in args.null_times.split(",") if args.null_times else []:
            if r.get(k) is not None:
                problems.append(f"{rid}: {k} is {r.get(k)!r}, expected null")
        present = [(k, t) for k, t in times.items() if isinstance(t, dt.datetime)]
        for (k1, t1), (k2, t2) in zip(present, present[1:]):
            if t1 > t2:
                problems.append(f"{rid}: {k1} {r.get(k1)} is after {k2} {r.get(k2)}")
        if args.min_packets is not None:
            for k in ("caller_to_operator_packets", "operator_to_caller_packets"):
                v = r.get(k)
                if not isinstance(v, int) or v < args.min_packets:
                    problems.append(f"{rid}: {k} = {v!r}, expected >= {args.min_packets}")
        if args.ended_by:
            v = str(r.get("ended_by") or "")
            if args.ended_by not in v.lower():
                problems.append(f"{rid}: ended_by {r.get('ended_by')!r}, expected {args.ended_by!r}")
        # (minimum, from, to, what happened, why the minimum)
        delays = [
            (args.min_wait_s, "first_offered_at", "answered_at", "answered", "after the first offer", " (the ring timeout)"),
            (args.min_offer_delay_s, "received_at", "first_offered_at", "first offered", "after it arrived", ""),
        ]
        for minimum, start, stop, happened, since, why in delays:
            t0, t1 = times.get(start), times.get(stop)
            if minimum is None or not isinstance(t0, dt.datetime) or not isinstance(t1, dt.datetime):
                continue
            took = (t1 - t0).total_seconds()
            if took < minimum:
                problems.append(f"{rid}: {happened} {took:.2f} s {since}, expected >= {minimum} s{why}")
            else:
                print(f"  {rid}: {happened} {took:.2f} s {since}")
    what = []
    if args.disposition:
        what.append(f"disposition {args.disposition}")
    if args.operators:
        what.append(f"operator in {{{args.operators}}}")
    if args.need_times:
        what.append(f"{args.need_times.replace(',', '/')} set and in order")
    if args.min_packets is not None:
        what.append(f">= {args.min_packets} RTP packets each way (relay counters)")
    if args.ended_by:
        what.append(f"ended_by {args.ended_by}")
    if args.min_wait_s is not None:
        what.append(f"answered >= {args.min_wait_s} s after the first offer")
    if args.min_offer_delay_s is not None:
        what.append(f"first offered >= {args.min_offer_delay_s} s after it arrived")
    label = "records: " + ", ".join(what or ["fields"])
    if problems:
        bad(f"{label}: {len(problems)} problem(s)")
        for p in problems[:20]:
            print(f"  {p}")
    else:
        ok(label)
    if args.all_operators:
        wanted = set(args.all_operators.split(","))
        if wanted <= operators_seen:
            ok(f"records: every operator took calls ({', '.join(sorted(operators_seen))})")
        else:
            bad(f"records: operators that took calls: {sorted(operators_seen)}, expected all of {sorted(wanted)}")
    if args.show:
        for r in records:
            print("  " + json.dumps({k: r.get(k) for k in ["trunk_call_id", "caller", "operator", "disposition", "ended_by"] + TIME_KEYS + ["caller_to_operator_packets", "operator_to_caller_packets"]}))
    return 0


# ------------------------------------------------------------------------- timeline


def norm_id(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value).lower().replace("-", "")


def read_timeline(args):
    """(record, events) of the one call of args.prefix in args.json, its call_events rows
    read from args.db in the order they happened; or (None, problem text)."""
    try:
        records = load_records(args.json, args.prefix)
    except (OSError, ValueError) as error:
        return None, f"cannot read `siaga calls --json` output: {error}"
    if len(records) != 1:
        return None, f"{len(records)} call record(s) with trunk Call-ID {args.prefix}*, expected 1"
    call_id = norm_id(records[0].get("id"))
    try:
        db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True, timeout=5)
        columns = [row[1] for row in db.execute("PRAGMA table_info(call_events)")]
        if not columns:
            return None, f"no call_events table in {args.db}"
        # Events in the order they happened: a sequence column, else a time column with
        # insertion order (rowid) breaking ties of the same millisecond.
        order = next((c for c in ("seq", "sequence", "at", "occurred_at", "ts", "time", "created_at") if c in columns), "rowid")
        try:
            cursor = db.execute(f"SELECT * FROM call_events ORDER BY {order}, rowid")
        except sqlite3.OperationalError:  # a WITHOUT ROWID table
            cursor = db.execute(f"SELECT * FROM call_events ORDER BY {order}")
        rows = [dict(zip(columns, row)) for row in cursor]
    except sqlite3.Error as error:
        return None, f"cannot read call_events from {args.db}: {error}"
    events = [r for r in rows if norm_id(r.get("call_id")) == call_id]
    if not events:
        return None, f"no call_events rows for call {records[0].get('id')}"
    return records[0], events


def parse_step(step):
    """"kind[:operator][:key=value]" -> (kind, operator or None, (key, value) or None).
    The value may hold colons (`overflow_offered:target=sip:112@127.0.0.1:5070`)."""
    kind, _, rest = step.partition(":")
    if "=" in rest and ":" not in rest.split("=", 1)[0]:
        op, detail = "", rest
    else:
        op, _, detail = rest.partition(":")
    pair = tuple(detail.split("=", 1)) if "=" in detail else None
    return kind, op or None, pair


def step_label(step):
    kind, op, pair = step
    label = f"{kind}({op})" if op else kind
    return label + (f"[{pair[0]}={pair[1]}]" if pair else "")


def event_detail(event):
    detail = event.get("detail")
    if isinstance(detail, str):
        try:
            detail = json.loads(detail)
        except ValueError:
            return {}
    return detail if isinstance(detail, dict) else {}


def step_matches(step, event):
    kind, op, pair = step
    if str(event.get("kind")) != kind or (op is not None and str(event.get("operator")) != op):
        return False
    if pair is None:
        return True
    value = event_detail(event).get(pair[0])
    if isinstance(value, list):  # `skills=police`: one of the list
        return pair[1] in [str(v) for v in value]
    return str(value) == pair[1]


def first_missing(steps, items, matches):
    """Index of the first of `steps` not found, in order, as a subsequence of `items`
    (len(steps) when all are)."""
    i = 0
    for item in items:
        if i < len(steps) and matches(steps[i], item):
            i += 1
    return i


def cmd_timeline(args):
    record, events = read_timeline(args)
    wanted = [parse_step(step) for step in args.expect.split(",")]
    missing = first_missing(wanted, events, step_matches) if record else 0
    # Events of a kind that must share one instant (ring-all: every phone rung at once).
    instants = {k: sorted({str(e.get("at")) for e in events if str(e.get("kind")) == k}) for k in args.same_time} if record else {}
    if args.probe:
        return 0 if record and missing == len(wanted) and all(len(v) == 1 for v in instants.values()) else 1
    if record is None:
        bad(f"timeline: {events}")
        return 0
    print(f"  timeline of {record.get('id')} ({record.get('trunk_call_id')}):")
    for e in events:
        print("    " + ", ".join(f"{k}={v}" for k, v in e.items() if k != "call_id"))
    label = "timeline: " + " -> ".join(step_label(w) for w in wanted)
    if missing == len(wanted):
        ok(label)
    else:
        bad(f"{label}: missing from {step_label(wanted[missing])} on")
    for kind, ats in instants.items():
        if len(ats) == 1:
            ok(f"timeline: every {kind} event at the same instant ({ats[0]})")
        else:
            bad(f"timeline: {kind} events at {len(ats)} instants ({', '.join(ats) or 'none'}), expected one")
    return 0


# --------------------------------------------------------------------------- agents


def cmd_agents(args):
    """Operators' state changes (`siaga agents --json`) since a time: each operator's
    to_state sequence must hold the expected steps in order."""
    problem = None
    try:
        with open(args.json, encoding="utf-8") as f:
            rows = json.load(f)
    except (OSError, ValueError) as error:
        rows, problem = [], f"cannot read `siaga agents --json` output: {error}"
    since = parse_time(args.since)
    if not isinstance(since, dt.datetime):
        rows, problem = [], f"--since {args.since!r} is not RFC 3339"
    rows = [r for r in rows if isinstance(parse_time(r.get("at")), dt.datetime) and parse_time(r.get("at")) >= since]
    wanted = []
    for step in args.expect.split(","):
        op, _, state = step.partition(":")
        state, _, reason = state.partition("/")
        wanted.append((op, state, reason or None))
    results = []
    for op in dict.fromkeys(w[0] for w in wanted):
        steps = [w for w in wanted if w[0] == op]
        mine = [r for r in rows if str(r.get("operator")) == op]
        found = first_missing(
            steps,
            mine,
            lambda w, r: r.get("to_state") == w[1] and (w[2] is None or r.get("reason") == w[2]),
        )
        results.append((op, steps, mine, found))
    if args.probe:
        return 0 if problem is None and all(found == len(steps) for _, steps, _, found in results) else 1
    if problem:
        bad(f"agents: {problem}")
        return 0
    for op, steps, mine, found in results:
        shown = " -> ".join(f"{w[1]}/{w[2]}" if w[2] else w[1] for w in steps)
        seen = ", ".join(
            f"{r.get('from_state')}->{r.get('to_state')}" + (f" ({r.get('reason')})" if r.get("reason") else "")
            for r in mine
        )
        print(f"  agent {op} since {args.since}: {seen or 'no events'}")
        if found == len(steps):
            ok(f"agents: {op} went {shown}")
        else:
            missing = steps[found]
            bad(f"agents: {op} did not go {shown} (missing from {missing[1]}{'/' + missing[2] if missing[2] else ''} on)")
    return 0


# ----------------------------------------------------------------------------- pcap


def read_pcap(path):
    """Yields (time_s, src_port, dst_port, udp_payload) for IPv4 UDP packets of a
    libpcap file (Ethernet, Linux cooked v1/v2, raw IP or BSD loopback link types)."""
    with open(path, "rb") as f:
        header = f.read(24)
        if len(header) < 24:
            return
        magic = header[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            endian = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            endian = ">"
        else:
            raise ValueError("not a libpcap file (pcapng is not read: capture with -F pcap)")
        nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        linktype = struct.unpack(endian + "I", header[20:24])[0] & 0x0FFFFFFF
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            sec, frac, incl, _orig = struct.unpack(endian + "IIII", rec)
            data = f.read(incl)
            if len(data) < incl:
                return
            t = sec + frac / (1e9 if nano else 1e6)
            if linktype == 1:  # Ethernet
                off, ethertype = 14, data[12:14]
            elif linktype == 113:  # Linux cooked v1
                off, ethertype = 16, data[14:16]
            elif linktype == 276:  # Linux cooked v2
                off, ethertype = 20, data[0:2]
            elif linktype in (0, 108):  # BSD loopback
                off, ethertype = 4, b"\x08\x00"
            elif linktype in (12, 101):  # raw IP
                off, ethertype = 0, b"\x08\x00"
            else:
                raise ValueError(f"link type {linktype} not handled")
            if ethertype != b"\x08\x00" or len(data) < off + 20:
                continue
            ip = data[off:]
            if ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            ihl = (ip[0] & 0x0F) * 4
            udp = ip[ihl:]
            if len(udp) < 8:
                continue
            sport, dport = struct.unpack("!HH", udp[:4])
            yield t, sport, dport, udp[8:]


def parse_groups(items):
    groups = {}
    for item in items or []:
        name, _, ports = item.partition("=")
        groups[name] = {int(p) for p in ports.split(",") if p}
    return groups


def cmd_rtp(args):
    lo, hi = (int(x) for x in args.relay.split("-"))
    groups = parse_groups(args.group)
    to_group = {name: 0 for name in groups}
    from_group = {name: 0 for name in groups}
    try:
        for _t, sport, dport, payload in read_pcap(args.pcap):
            if len(payload) < 12 or payload[0] >> 6 != 2:
                continue  # not RTP version 2
            for name, ports in groups.items():
                if lo <= sport <= hi and dport in ports:
                    to_group[name] += 1
                if sport in ports and lo <= dport <= hi:
                    from_group[name] += 1
    except (OSError, ValueError) as error:
        bad(f"capture: cannot read {args.pcap}: {error}")
        return 0
    for name in groups:
        text = f"capture: {from_group[name]} RTP packets {name} -> relay, {to_group[name]} relay -> {name}"
        if from_group[name] >= args.min and to_group[name] >= args.min:
            ok(f"{text} (>= {args.min} each way)")
        else:
            bad(f"{text}, expected >= {args.min} each way")
    return 0


SIP_HEADER = re.compile(rb"^([A-Za-z-]+)[ \t]*:[ \t]*(.*?)\r?$", re.M)
COMPACT = {b"i": b"call-id", b"f": b"from"}


def sip_fields(payload):
    """(method, call_id, [user parts of From and P-Asserted-Identity])."""
    first, _, rest = payload.partition(b"\n")
    method = first.split(b" ", 1)[0]
    call_id, users = None, []
    head = rest.split(b"\r\n\r\n", 1)[0]
    for m in SIP_HEADER.finditer(head):
        name = m.group(1).lower()
        name = COMPACT.get(name, name)
        value = m.group(2)
        if name == b"call-id":
            call_id = value.strip()
        elif name in (b"from", b"p-asserted-identity"):
            u = re.search(rb"(?:sips?|tel):\+?([0-9]+)", value)
            if u:
                users.append(u.group(1))
    return method, call_id, users


def percentile(values, p):
    """Nearest-rank percentile."""
    values = sorted(values)
    k = max(0, min(len(values) - 1, math.ceil(p / 100 * len(values)) - 1))
    return values[k]


def cmd_latency(args):
    trunk, offers = {}, {}
    try:
        for t, sport, dport, payload in read_pcap(args.pcap):
            if not payload.startswith(b"INVITE "):
                continue
            method, call_id, users = sip_fields(payload)
            if call_id is None:
                continue
            if dport == args.siaga_port and sport == args.trunk_port:
                trunk.setdefault(call_id, (t, users))
            elif sport == args.siaga_port and dport != args.trunk_port:
                offers.setdefault(call_id, (t, users))
    except (OSError, ValueError) as error:
        print(json.dumps({"error": f"cannot read {args.pcap}: {error}"}))
        return 0
    by_ani = {}
    for t, users in trunk.values():
        for u in users:
            by_ani.setdefault(u, t)
    delays, method = [], "caller number"
    for t, users in offers.values():
        t0 = next((by_ani[u] for u in users if u in by_ani), None)
        if t0 is not None:
            delays.append(t - t0)
    if not delays and trunk and offers:
        # The operator INVITE does not carry the caller's number: pair by order (FIFO queue,
        # operators always free), which holds when no call failed.
        method = "order"
        ts = sorted(t for t, _ in trunk.values())
        os_ = sorted(t for t, _ in offers.values())
        delays = [b - a for a, b in zip(ts, os_)]
    result = {
        "trunk_invites": len(trunk),
        "operator_invites": len(offers),
        "matched": len(delays),
        "matched_by": method,
    }
    if delays:
        result["p50_ms"] = round(statistics.median(delays) * 1000, 3)
        result["p99_ms"] = round(percentile(delays, 99) * 1000, 3)
        result["max_ms"] = round(max(delays) * 1000, 3)
    print(json.dumps(result))
    return 0


# ------------------------------------------------------------------------ sipp stats


def cmd_sipp_stat(args):
    """Last row of a SIPp -trace_stat CSV: cumulative successful/failed calls and more."""
    try:
        with open(args.csv, encoding="utf-8", errors="replace") as f:
            lines = [line.rstrip("\n") for line in f if line.strip()]
    except OSError as error:
        print(json.dumps({"error": str(error)}))
        return 0
    if len(lines) < 2:
        print(json.dumps({"error": "no rows"}))
        return 0
    names = lines[0].split(";")
    last = lines[-1].split(";")
    row = dict(zip(names, last))
    keys = {
        "successful": "SuccessfulCall(C)",
        "failed": "FailedCall(C)",
        "created": "OutgoingCall(C)",
        "retransmissions": "Retransmissions(C)",
        "elapsed": "ElapsedTime(C)",
    }
    out = {}
    for k, col in keys.items():
        v = row.get(col)
        try:
            out[k] = int(v)
        except (TypeError, ValueError):
            out[k] = v
    print(json.dumps(out))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("ports")
    p.add_argument("sizes", type=int, nargs="+")
    p.set_defaults(fn=cmd_ports)

    p = sub.add_parser("records")
    p.add_argument("--json", required=True)
    p.add_argument("--prefix", required=True, help="trunk Call-ID prefix of the check's calls")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--disposition")
    p.add_argument("--operators", help="comma-separated allowed operators; empty: none")
    p.add_argument("--all-operators", help="each of these must have taken a call")
    p.add_argument("--need-times", help="comma-separated keys that must be set")
    p.add_argument("--null-times", help="comma-separated keys that must be null")
    p.add_argument("--min-packets", type=int)
    p.add_argument("--ended-by")
    p.add_argument("--min-wait-s", type=float)
    p.add_argument("--min-offer-delay-s", type=float, help="received_at -> first_offered_at at least this")
    p.add_argument("--show", action="store_true")
    p.set_defaults(fn=cmd_records)

    p = sub.add_parser("timeline")
    p.add_argument("--json", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--expect", required=True, help="kind[:operator][:key=value],... in order (a subsequence)")
    p.add_argument("--probe", action="store_true", help="print nothing; exit 0 when the timeline holds")
    p.add_argument("--same-time", action="append", default=[], help="KIND: its events all share one `at`")
    p.set_defaults(fn=cmd_timeline)

    p = sub.add_parser("agents")
    p.add_argument("--json", required=True, help="`siaga agents --json` output")
    p.add_argument("--since", required=True, help="RFC 3339: only state changes at or after it")
    p.add_argument("--expect", required=True, help="operator:to_state[/reason],... in order per operator")
    p.add_argument("--probe", action="store_true", help="print nothing; exit 0 when all steps hold")
    p.set_defaults(fn=cmd_agents)

    p = sub.add_parser("rtp")
    p.add_argument("--pcap", required=True)
    p.add_argument("--relay", required=True, help="LOW-HIGH: siaga's media.rtp_ports")
    p.add_argument("--group", action="append", help="NAME=PORT[,PORT]: a peer's media ports")
    p.add_argument("--min", type=int, default=1)
    p.set_defaults(fn=cmd_rtp)

    p = sub.add_parser("latency")
    p.add_argument("--pcap", required=True)
    p.add_argument("--siaga-port", type=int, required=True)
    p.add_argument("--trunk-port", type=int, required=True)
    p.set_defaults(fn=cmd_latency)

    p = sub.add_parser("sipp-stat")
    p.add_argument("--csv", required=True)
    p.set_defaults(fn=cmd_sipp_stat)

    args = parser.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
