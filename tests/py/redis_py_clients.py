"""redis-py, with its library defaults, against one server: cashe or redis-server.

Run by tests/clients.rs (`redis_py_with_its_defaults_...`) as
    python tests/py/redis_py_clients.py PORT [OTHER_PORT]
where PORT is the node the client talks to (a follower of a cashe cluster)
and OTHER_PORT another node, through which a second client modifies a
watched key (against redis-server both are the same port).

Prints a transcript of what was sent and answered, one line per step; it
holds no port, address or server-specific text, so the transcript against
cashe must equal the one against redis-server. Every step also asserts the
answer Redis gives; a failed assertion exits non-zero with the step named.
Nothing here passes an option to redis-py beyond host and port: the
protocol (RESP3 since redis-py 8), pipelines and transactions are its
defaults.
"""

import sys

try:
    import redis
    from redis.connection import Connection
except ImportError as error:  # the venv is made by `make deps`
    print(f"redis-py is not importable ({error}): run `make deps`", file=sys.stderr)
    sys.exit(2)


# What the library writes to its sockets, one entry per write (a single
# command, or a whole pipeline sent at once), each the list of commands
# decoded from the RESP bytes. Recorded after the write, so a connection's
# set-up (written from inside its first write) comes before that write.
SENT = []
_send_packed_command = Connection.send_packed_command


def _decode_commands(data):
    commands, at = [], 0
    while at < len(data):
        assert data[at : at + 1] == b"*", data[at:]
        end = data.index(b"\r\n", at)
        count, at, words = int(data[at + 1 : end]), end + 2, []
        for _ in range(count):
            end = data.index(b"\r\n", at)
            length = int(data[at + 1 : end])
            words.append(data[end + 2 : end + 2 + length].decode())
            at = end + 2 + length + 2
        commands.append(" ".join(words))
    return commands


def _record_send(self, command, check_health=True):
    _send_packed_command(self, command, check_health)
    chunks = [command] if isinstance(command, (str, bytes, memoryview)) else command
    data = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
    SENT.append(_decode_commands(data))


Connection.send_packed_command = _record_send


def sent_since(mark):
    """The writes made since `mark`, e.g. `MULTI | SET k v | EXEC`."""
    return [" | ".join(write) for write in SENT[mark:]]


def show(step, value):
    print(f"{step}: {value!r}")


def check(step, got, expected):
    show(step, got)
    if got != expected:
        print(f"FAILED {step}: expected {expected!r}, got {got!r}", file=sys.stderr)
        sys.exit(1)


def main():
    port = int(sys.argv[1])
    other_port = int(sys.argv[2]) if len(sys.argv) > 2 else port
    print(f"redis-py {redis.__version__}")
    r = redis.Redis(host="127.0.0.1", port=port)

    # The handshake: redis-py 8 defaults to RESP3, so it must send HELLO 3
    # and get a RESP3 map back saying proto 3.
    mark = len(SENT)
    check("ping", r.ping(), True)
    handshake = sent_since(mark)
    check("first write of a new connection", handshake[0], "HELLO 3")
    show("connection set-up and first command", handshake)
    connection = r.connection_pool.get_connection()
    try:
        proto = connection.handshake_metadata.get(b"proto", connection.handshake_metadata.get("proto"))
        check("HELLO reply proto", proto, 3)
        check("reply parser", type(connection._parser).__name__, "_RESP3Parser")
    finally:
        r.connection_pool.release(connection)

    # Plain commands.
    r.delete("py:k", "py:n", "py:a", "py:b", "py:counter", "py:missing")
    check("set py:k v", r.set("py:k", "v"), True)
    check("get py:k", r.get("py:k"), b"v")
    check("get py:missing", r.get("py:missing"), None)
    check("incrbyfloat py:f 1.5", r.incrbyfloat("py:f", 1.5), 1.5)
    check("delete py:f", r.delete("py:f"), 1)

    # A default pipeline is a MULTI/EXEC transaction.
    mark = len(SENT)
    with r.pipeline() as pipe:
        pipe.set("py:n", 10).incr("py:n").incrby("py:n", 5).get("py:n")
        check("pipeline() results", pipe.execute(), [True, 11, 16, b"16"])
    check("pipeline() sent", sent_since(mark), ["MULTI | SET py:n 10 | INCRBY py:n 1 | INCRBY py:n 5 | GET py:n | EXEC"])

    # A non-transactional pipeline reads its own writes, in order.
    mark = len(SENT)
    with r.pipeline(transaction=False) as pipe:
        pipe.set("py:a", "1").append("py:a", "23").get("py:a").strlen("py:a")
        pipe.set("py:b", "x").get("py:b").delete("py:a", "py:b").get("py:a").exists("py:a", "py:b")
        check(
            "pipeline(transaction=False) results",
            pipe.execute(),
            [True, 3, b"123", 3, True, b"x", 2, None, 0],
        )
    check("pipeline(transaction=False) sent", len(sent_since(mark)), 1)

    # r.transaction: WATCH, read, MULTI, write, EXEC; retried when EXEC
    # answers nil because the watched key changed. The first attempt has a
    # second client, on another node, change the key between the read and
    # EXEC, so exactly one retry must happen.
    other = redis.Redis(host="127.0.0.1", port=other_port)
    attempts = []

    def increment(pipe):
        value = int(pipe.get("py:counter") or 0)
        attempts.append(value)
        if len(attempts) == 1:
            other.incr("py:counter")
        pipe.multi()
        pipe.set("py:counter", value + 1)

    mark = len(SENT)
    check("transaction(increment, py:counter)", r.transaction(increment, "py:counter"), [True])
    check("values read by each attempt", attempts, [0, 1])
    show("transaction sent", sent_since(mark))
    check("get py:counter", r.get("py:counter"), b"2")

    # Ten more optimistic increments with nobody interfering.
    def increment_quietly(pipe):
        value = int(pipe.get("py:counter"))
        pipe.multi()
        pipe.set("py:counter", value + 1)

    for _ in range(10):
        r.transaction(increment_quietly, "py:counter")
    check("get py:counter after ten more", r.get("py:counter"), b"12")

    # WATCH then a plain write on the same connection aborts too (Redis
    # counts the connection's own writes).
    with r.pipeline() as pipe:
        pipe.watch("py:counter")
        pipe.set("py:counter", "100")
        pipe.multi()
        pipe.incr("py:counter")
        try:
            pipe.execute()
            aborted = False
        except redis.WatchError:
            aborted = True
    check("own write after WATCH aborts EXEC", aborted, True)
    check("get py:counter after the aborted EXEC", r.get("py:counter"), b"100")

    # Hashes with the library's RESP3 defaults: HGETALL is a map, and a
    # hash read in a transaction and through a plain pipeline.
    check("hset py:h", r.hset("py:h", mapping={"a": "1", "b": "2"}), 2)
    check("hgetall py:h", r.hgetall("py:h"), {b"a": b"1", b"b": b"2"})
    check("hincrby py:h a 5", r.hincrby("py:h", "a", 5), 6)
    check("hincrbyfloat py:h b 0.5", r.hincrbyfloat("py:h", "b", 0.5), 2.5)
    check("hmget py:h", r.hmget("py:h", ["a", "b", "missing"]), [b"6", b"2.5", None])
    with r.pipeline() as pipe:
        pipe.hset("py:h", "c", "3").hlen("py:h").hdel("py:h", "a").hkeys("py:h")
        check("hash pipeline()", pipe.execute(), [1, 3, 1, [b"b", b"c"]])
    with r.pipeline(transaction=False) as pipe:
        pipe.hexists("py:h", "a").hstrlen("py:h", "b").hvals("py:h").type("py:h")
        check("hash pipeline(transaction=False)", pipe.execute(), [False, 3, [b"2.5", b"3"], b"hash"])
    try:
        r.get("py:h")
        wrong_type = None
    except redis.ResponseError as error:
        wrong_type = str(error)
    check("get of a hash", wrong_type, "WRONGTYPE Operation against a key holding the wrong kind of value")
    check("hscan_iter py:h", sorted(r.hscan_iter("py:h")), [(b"b", b"2.5"), (b"c", b"3")])

    # Lists, with a blocking pop served by a push from another node's
    # client while this one waits.
    check("lpush py:l", r.lpush("py:l", "a", "b", "c"), 3)
    check("rpush py:l", r.rpush("py:l", "z"), 4)
    check("lrange py:l", r.lrange("py:l", 0, -1), [b"c", b"b", b"a", b"z"])
    check("lpop py:l 2", r.lpop("py:l", 2), [b"c", b"b"])
    check("lmove py:l py:l2", r.lmove("py:l", "py:l2", "RIGHT", "LEFT"), b"z")
    check("lpos py:l a", r.lpos("py:l", "a"), 0)
    check("blpop of a non-empty list", r.blpop(["py:l"], timeout=1), (b"py:l", b"a"))
    check("brpop timeout on an empty list", r.brpop(["py:empty"], timeout=0.2), None)
    import threading

    def push_later():
        import time

        time.sleep(0.3)
        other.rpush("py:queue", "job1", "job2")

    pusher = threading.Thread(target=push_later)
    pusher.start()
    check("brpop served by another node's push", r.brpop(["py:queue"], timeout=10), (b"py:queue", b"job2"))
    pusher.join()
    check("blmove of what is left", r.blmove("py:queue", "py:done", 1, "LEFT", "RIGHT"), b"job1")
    check("llen py:queue", r.llen("py:queue"), 0)

    # Sets: SMEMBERS is a Python set with RESP3; SPOP of a one-member set.
    check("sadd py:s", r.sadd("py:s", "x", "y", "z"), 3)
    check("smembers py:s", sorted(r.smembers("py:s")), [b"x", b"y", b"z"])
    check("sismember py:s y", r.sismember("py:s", "y"), True)
    check("smismember py:s", r.smismember("py:s", ["x", "w"]), [True, False])
    check("sinter py:s py:s", sorted(r.sinter(["py:s", "py:s"])), [b"x", b"y", b"z"])
    check("srem py:s x y", r.srem("py:s", "x", "y"), 2)
    check("spop of a one-member set", r.spop("py:s"), b"z")
    check("scard py:s", r.scard("py:s"), 0)

    # Sorted sets: scores come back as floats, WITHSCORES as pairs.
    check("zadd py:z", r.zadd("py:z", {"a": 1, "b": 2.5, "c": -1}), 3)
    check("zrange withscores", r.zrange("py:z", 0, -1, withscores=True), [(b"c", -1.0), (b"a", 1.0), (b"b", 2.5)])
    check("zincrby py:z", r.zincrby("py:z", 2, "a"), 3.0)
    check("zscore py:z a", r.zscore("py:z", "a"), 3.0)
    check("zrank py:z b", r.zrank("py:z", "b"), 1)
    check("zrangebyscore", r.zrangebyscore("py:z", 0, "+inf"), [b"b", b"a"])
    check("zpopmin py:z", r.zpopmin("py:z"), [(b"c", -1.0)])
    check("bzpopmax py:z", r.bzpopmax(["py:z"], timeout=1), (b"py:z", b"a", 3.0))

    # Bitmaps, COPY, OBJECT ENCODING.
    check("setbit py:bits 7 1", r.setbit("py:bits", 7, 1), 0)
    check("bitcount py:bits", r.bitcount("py:bits"), 1)
    check("get py:bits", r.get("py:bits"), b"\x01")
    check("copy py:bits py:bits2", r.copy("py:bits", "py:bits2"), True)
    check("object encoding of a list", r.object("encoding", "py:done"), b"quicklist")
    check("object encoding of a small hash", r.object("encoding", "py:h"), b"listpack")
    check("type of a sorted set", r.type("py:z"), b"zset")

    check(
        "cleanup",
        r.delete("py:k", "py:n", "py:counter", "py:h", "py:l2", "py:done", "py:z", "py:bits", "py:bits2"),
        9,
    )
    other.close()
    r.close()
    print("ok")


if __name__ == "__main__":
    main()
