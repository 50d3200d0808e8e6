#!/usr/bin/env python3
"""Asks a running Dovecot 2.3 director for its ring choice for every user (used by gen.sh).

usage: lookup.py ADMIN_SOCKET USERS_FILE HASHES_FILE

Prints "user<TAB>tag<TAB>hash<TAB>ip" for the default tag and tagB for every user, and for the
first 200 users also for "tagZ", a tag without hosts (ip is then empty). ip is the hashed_ip
field of USER-LOOKUP, i.e. the ring's choice regardless of existing mappings. As a cross-check,
USER-LOOKUP of the numeric hash from doveadm must give the same hashed_ip as the name.
"""
import socket
import sys

BATCH = 500


def tabescape(s: str) -> str:
    return (s.replace("\x01", "\x011").replace("\t", "\x01t")
            .replace("\r", "\x01r").replace("\n", "\x01n"))


class Admin:
    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.f = self.sock.makefile("rwb")
        greeting = self.f.readline()
        if not greeting.startswith(b"VERSION\tdirector-doveadm\t1\t"):
            raise SystemExit("unexpected greeting %r" % greeting)
        self.f.write(b"VERSION\tdirector-doveadm\t1\t0\n")

    def lookups(self, queries):
        """queries: list of (user_or_hash, tag); returns hashed_ip for each, pipelined."""
        out = []
        for start in range(0, len(queries), BATCH):
            chunk = queries[start:start + BATCH]
            for who, tag in chunk:
                args = ["USER-LOOKUP", tabescape(who)] + ([tabescape(tag)] if tag else [])
                self.f.write(("\t".join(args) + "\n").encode("utf-8"))
            self.f.flush()
            for q in chunk:
                line = self.f.readline()
                if not line:
                    raise SystemExit("director closed the connection at %r" % (q,))
                fields = line.rstrip(b"\n").decode("utf-8").split("\t")
                if len(fields) != 4:
                    raise SystemExit("bad USER-LOOKUP reply %r for %r" % (line, q))
                out.append(fields[2])
        return out


def main() -> None:
    admin_path, users_path, hashes_path = sys.argv[1:4]
    with open(users_path, encoding="utf-8") as f:
        users = f.read().split("\n")[:-1]
    with open(hashes_path) as f:
        hashes = f.read().split()
    if len(users) != len(hashes):
        raise SystemExit("%d users but %d hashes" % (len(users), len(hashes)))
    for u, h in zip(users, hashes):
        if not h.isdigit():
            raise SystemExit("doveadm gave no hash for %r: %r" % (u, h))

    admin = Admin(admin_path)
    rows = []
    for tag in ["", "tagB"]:
        ips = admin.lookups([(u, tag) for u in users])
        by_hash = admin.lookups([(h, tag) for h in hashes])
        for u, h, ip, ip2 in zip(users, hashes, ips, by_hash):
            if ip != ip2:
                raise SystemExit("user %r: by name %s, by hash %s gives %s" % (u, ip, h, ip2))
            if not ip:
                raise SystemExit("user %r tag %r: no host" % (u, tag))
            rows.append((u, tag, h, ip))
    few = users[:200]
    for u, h, ip in zip(few, hashes, admin.lookups([(u, "tagZ") for u in few])):
        rows.append((u, "tagZ", h, ip))
    sys.stdout.write("".join("\t".join(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
