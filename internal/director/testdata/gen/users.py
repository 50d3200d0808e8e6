#!/usr/bin/env python3
"""Prints a deterministic list of distinct usernames, one per line, for gen.sh.

Mixed case, with and without domains, several '@', dots and plus tags, and UTF-8 (including
non-ASCII capitals, which Dovecot's ASCII-only lower-casing leaves alone). Excluded on purpose:
tabs, CR/LF and \\x01 (framing of the admin socket), a leading '-' (doveadm would take it for an
option), and purely numeric names (USER-LOOKUP takes those as the hash itself).
"""
import random
import sys

FIRST = ["john", "Mary", "ANNA", "bob", "Zoë", "jürgen", "ÅSA", "Émile", "søren", "Łukasz",
         "ïda", "Σοφία", "иван", "ОЛЬГА", "田中", "مریم", "noah", "Li", "x", "o'brien"]
LAST = ["smith", "Müller", "DOE", "nguyen", "García", "ÖZTÜRK", "kowalski", "Ångström",
        "dubois", "yamada", "Petrov", "o"]
DOMAINS = ["example.com", "Example.COM", "mail.example.org", "EXAMPLE.net", "bücher.de",
           "xn--bcher-kva.de", "例え.jp", "sub.Domain.Test", "a", "localhost"]
SEPS = [".", "_", "-", "", "+"]
EMOJI = ["😀", "🦀", "✉", "ß", "ǅ", "İ", "K"]  # the last is KELVIN SIGN, not K


def name(rng: random.Random, i: int) -> str:
    kind = i % 10
    if kind == 0:
        return "user%05d" % i
    if kind == 1:
        return "User%05d@Example.com" % i
    local = rng.choice(FIRST) + rng.choice(SEPS) + rng.choice(LAST)
    if rng.random() < 0.3:
        local += str(rng.randrange(1000))
    if rng.random() < 0.15:
        local += rng.choice(EMOJI)
    if rng.random() < 0.3:
        local = "".join(c.upper() if rng.random() < 0.5 else c for c in local)
    if kind in (2, 3):
        return local
    user = local + "@" + rng.choice(DOMAINS)
    if kind == 4 and rng.random() < 0.2:
        user += "@" + rng.choice(DOMAINS)  # a second '@': %n/%d split at the first one
    if kind == 5 and rng.random() < 0.1:
        user = "@" + rng.choice(DOMAINS)  # empty local part
    if kind == 6 and rng.random() < 0.05:
        user = local + " " + rng.choice(LAST)  # spaces are legal bytes for the hash
    return user


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    rng = random.Random(20231119)
    seen = set()
    out = []
    i = 0
    while len(out) < n:
        u = name(rng, i)
        i += 1
        if u in seen or u.isdigit() or u.startswith("-"):
            continue
        seen.add(u)
        out.append(u)
    sys.stdout.write("".join(u + "\n" for u in out))


if __name__ == "__main__":
    main()
