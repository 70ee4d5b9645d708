"""redis-py's RedisCluster, with its defaults, against one cluster: cashe or
a Redis Cluster (one master with every slot and two replicas).

Run by tests/redis_cluster.rs as
    python tests/py/redis_py_cluster.py PORT
where PORT is the node the client starts from, and by tests/shards.rs as
    python tests/py/redis_py_cluster.py PORT SHARDS
against a cashe cluster of SHARDS Raft groups on three nodes (every node
leads some, so RedisCluster sees three masters); a plain client's MGET,
EXISTS and DEL over several groups are then tried too. Prints a transcript of what
it did and got, one line per step, holding no port, address or node id, so
the transcript against cashe must equal the one against Redis. Each step
also asserts Redis's answer; a failed assertion exits non-zero.
"""

import sys

try:
    import redis
    from redis.cluster import RedisCluster
    from redis.exceptions import RedisClusterException
except ImportError as error:  # the venv is made by `make deps`
    print(f"redis-py is not importable ({error}): run `make deps`", file=sys.stderr)
    sys.exit(2)


def step(name, got, expected):
    print(f"{name}: {got!r}")
    assert got == expected, f"{name}: got {got!r}, expected {expected!r}"


def main():
    port = int(sys.argv[1])
    rc = RedisCluster(host="127.0.0.1", port=port)
    if len(sys.argv) < 3:
        step("primaries", len(rc.get_primaries()), 1)
        step("replicas", len(rc.get_replicas()), 2)
    else:
        step("primaries", len(rc.get_primaries()), 3)
    step("set", rc.set("foo", "bar"), True)
    step("get", rc.get("foo"), b"bar")
    step("keyslot (client)", rc.keyslot("foo"), 12182)
    step("cluster keyslot", rc.cluster_keyslot("{user1}.a"), rc.keyslot("{user1}.a"))
    step("mset, hash tag", rc.mset({"{user1}.a": "1", "{user1}.b": "2"}), True)
    step("mget, hash tag", rc.mget("{user1}.a", "{user1}.b"), [b"1", b"2"])
    try:
        rc.mset({"a": "1", "b": "2"})
        step("mset across slots", "accepted", "refused")
    except RedisClusterException as error:
        step("mset across slots", str(error), "MSET - all keys must map to the same key slot")
    step("hset", rc.hset("h", mapping={"f": "v", "g": "w"}), 2)
    step("hgetall", sorted(rc.hgetall("h").items()), [(b"f", b"v"), (b"g", b"w")])
    step("countkeysinslot", rc.cluster_countkeysinslot(rc.keyslot("{user1}.a")), 2)
    step("getkeysinslot", sorted(rc.cluster_get_keys_in_slot(12182, 10)), ["foo"])
    step("scan", sorted(rc.scan_iter(match="*")), [b"foo", b"h", b"{user1}.a", b"{user1}.b"])
    pipe = rc.pipeline()
    pipe.set("n", 1)
    pipe.incr("n")
    pipe.get("n")
    step("pipeline", pipe.execute(), [True, 2, b"2"])
    step("delete", rc.delete("foo", "h", "{user1}.a", "{user1}.b", "n"), 5)
    step("dbsize", rc.dbsize(), 0)
    rc.close()
    if len(sys.argv) >= 3:
        # cashe only: a plain client (redis.Redis) through one node, whose
        # MGET, EXISTS and DEL over keys of several groups are split over
        # them (a Redis Cluster answers CROSSSLOT).
        r = redis.Redis(host="127.0.0.1", port=port)
        keys = [f"plain{i}" for i in range(12)]
        for i, key in enumerate(keys):
            r.set(key, i)
        values = [str(i).encode() for i in range(12)] + [None]
        step("plain mget across groups", r.mget(keys + ["plain-missing"]), values)
        step("plain exists across groups", r.exists(*keys), 12)
        step("plain delete across groups", r.delete(*keys), 12)
        step("plain mget after delete", r.mget(keys[:3]), [None, None, None])
        r.close()


main()
