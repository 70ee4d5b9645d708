"""redis-py over TLS (ssl=True, with a client certificate) against cashe.

Run by tests/tls.rs as
    python tests/py/redis_py_tls.py PORT OTHER_PORT CA CERT KEY
where PORT and OTHER_PORT are TLS client ports of two members of one
cluster, CA the CA certificate and CERT/KEY a client certificate from it.
Writes through PORT, reads through OTHER_PORT (retrying briefly until the
write is applied there), with redis-py's own TLS defaults otherwise (it
checks the server's certificate and host name). Prints one line per step;
a failed assertion exits non-zero with the step named.
"""

import sys
import time

try:
    import redis
except ImportError as error:  # the venv is made by `make deps`
    print(f"redis-py is not importable ({error}): run `make deps`", file=sys.stderr)
    sys.exit(2)


def client(port, ca, cert, key):
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        ssl=True,
        ssl_ca_certs=ca,
        ssl_certfile=cert,
        ssl_keyfile=key,
        socket_timeout=10,
    )


def main():
    port, other, ca, cert, key = int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:6]
    writer = client(port, ca, cert, key)
    reader = client(other, ca, cert, key)
    assert writer.ping() is True, "PING"
    print("PING -> True")
    assert writer.set("tls:py", "over tls") is True, "SET"
    print("SET tls:py -> True")
    deadline = time.monotonic() + 20
    value = None
    while time.monotonic() < deadline:
        value = reader.get("tls:py")
        if value is not None:
            break
        time.sleep(0.05)
    assert value == b"over tls", f"GET through the other member: {value!r}"
    print(f"GET tls:py (other member) -> {value!r}")
    pipe = writer.pipeline(transaction=True)
    pipe.incr("tls:counter").incr("tls:counter")
    assert pipe.execute() == [1, 2], "MULTI/EXEC"
    print("MULTI INCR INCR EXEC -> [1, 2]")


if __name__ == "__main__":
    main()
