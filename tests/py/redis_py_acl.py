"""redis-py with username= and password= against one server: cashe or
redis-server, both started with the same ACL file by tests/acl.rs
(`redis_py_with_a_user_gets_what_redis_gives`):
    python tests/py/redis_py_acl.py PORT

The file has `user alice on >alicepw +@read ~public:*` and
`user bob off >bobpw +@all ~*`. Prints one line per step: the answer, or
the exception's class and text; the transcript holds nothing
server-specific, so cashe's must equal redis-server's. Each step also
asserts what Redis answers; a failed assertion exits non-zero.
"""

import sys

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as error:  # the venv is made by `make deps`
    print(f"redis-py is not importable ({error}): run `make deps`", file=sys.stderr)
    sys.exit(2)


def step(name, action):
    try:
        answer = action()
        print(f"{name}: {answer!r}")
        return answer
    except redis.exceptions.RedisError as error:
        print(f"{name}: {type(error).__name__}: {error}")
        return error


# AuthenticationError is a ConnectionError, which redis-py retries with
# backoff by default: refused logins are tried once.
ONCE = {"retry": Retry(NoBackoff(), 0)}


def main():
    port = int(sys.argv[1])
    for protocol in (2, 3):
        print(f"-- RESP{protocol}")
        alice = redis.Redis(port=port, username="alice", password="alicepw", protocol=protocol)
        assert step("GET public:x", lambda: alice.get("public:x")) is None
        denied = step("SET public:x", lambda: alice.set("public:x", "1"))
        assert isinstance(denied, redis.exceptions.NoPermissionError), denied
        denied = step("GET private:x", lambda: alice.get("private:x"))
        assert isinstance(denied, redis.exceptions.NoPermissionError), denied
        assert step("EXISTS public:a public:b", lambda: alice.exists("public:a", "public:b")) == 0
        alice.close()
        wrong = redis.Redis(port=port, username="alice", password="nope", protocol=protocol, **ONCE)
        refused = step("wrong password", lambda: wrong.get("public:x"))
        assert isinstance(refused, redis.exceptions.AuthenticationError), refused
        wrong.close()
        bob = redis.Redis(port=port, username="bob", password="bobpw", protocol=protocol, **ONCE)
        refused = step("disabled user", lambda: bob.get("public:x"))
        assert isinstance(refused, redis.exceptions.AuthenticationError), refused
        bob.close()


main()
