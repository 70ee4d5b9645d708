"""Prints CASHE.DIGEST and DBSIZE of the node at port argv[1], as redis-py
sends them with its defaults (tests/backup.rs compares the digest with
the source cluster's)."""

import sys

import redis


def main():
    client = redis.Redis(port=int(sys.argv[1]))
    digest = client.execute_command("CASHE.DIGEST")
    print(f"digest {digest.decode()} keys {client.dbsize()}")


if __name__ == "__main__":
    main()
