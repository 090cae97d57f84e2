#!/usr/bin/env python3
"""/proc accounting for the benchmarks in bench/ (footprint.sh).

  proc.py pids [--not-exe NAME] PATTERN...
                              pids whose command line contains one of the patterns, with all
                              their descendants (one per line); --not-exe leaves out processes
                              whose executable's file name is NAME (the containers' payload)
  proc.py cpu PID...          user + system CPU time in ms of these processes, including their
                              waited-for children (utime + stime + cutime + cstime)
  proc.py mem PID...          "RSS PSS HWM" in kB summed over these processes: resident set,
                              proportional set (shared pages split between sharers, from
                              smaps_rollup) and each process's own peak RSS (VmHWM)

Processes that exit while being read are skipped: the sets are read at steady state, where
that does not happen, and a vanished process has nothing left to count.
"""

import os
import sys

HZ = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (field 3 is index 0)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace")


def exe_name(pid):
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""


def pids(patterns, not_exe=None):
    parent, found = {}, set()
    for pid in all_pids():
        try:
            parent[pid] = int(stat_fields(pid)[1])
            if any(p in cmdline(pid) for p in patterns):
                found.add(pid)
        except (OSError, IndexError, ValueError):
            continue
    # Descendants: repeat until no process is added (the tree is shallow).
    grown = True
    while grown:
        grown = False
        for pid, ppid in parent.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grown = True
    found.discard(os.getpid())
    if not_exe:
        found = {p for p in found if exe_name(p) != not_exe}
    return sorted(found)


def cpu(pid_list):
    total = 0
    for pid in pid_list:
        try:
            f = stat_fields(pid)
        except OSError:
            continue
        # utime, stime, cutime, cstime are fields 14-17 (indices 11-14 here).
        total += sum(int(x) for x in f[11:15])
    return total * 1000 // HZ


def mem(pid_list):
    rss = pss = hwm = 0
    for pid in pid_list:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    key, _, rest = line.partition(":")
                    if key == "Rss":
                        rss += int(rest.split()[0])
                    elif key == "Pss":
                        pss += int(rest.split()[0])
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return rss, pss, hwm


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    what, args = sys.argv[1], sys.argv[2:]
    if what == "pids":
        not_exe = None
        if args[0] == "--not-exe" and len(args) > 2:
            not_exe, args = args[1], args[2:]
        for pid in pids(args, not_exe):
            print(pid)
    elif what == "cpu":
        print(cpu([int(p) for p in args]))
    elif what == "mem":
        print(*mem([int(p) for p in args]))
    else:
        sys.exit(f"proc.py: unknown command {what!r}\n{__doc__}")


if __name__ == "__main__":
    main()
