"""Drives confluent-kafka (librdkafka) against a Lambdaflow Kafka listener
for the kafka package's tests: python3 confluent_check.py MODE BOOTSTRAP
[ARGS] [key=value...], where key=value arguments are extra client settings
(e.g. SASL). Modes print one line per fact the test checks:

  produce B N PREFIX   N records with header id=PREFIX-i to partition 0,
                       acks=all, idempotent: "offset <o>" each
  invalid B            one record the schema refuses: "error <name>"
  consume B GROUP N    N records as member of GROUP from the earliest
                       offset, then a commit: "record <p> <o> <id> <value>"
  group B GROUP        two members: "shared", then "rebalanced" once the
                       second closed and the first owns both partitions
"""
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer

TOPIC = "metrics"


def value(i):
    return '{"ts":"2026-01-02T15:04:%02dZ","host":"py","cpu":%d.5}' % (i % 60, i)


def producer(bootstrap, extra, **more):
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True}
    conf.update(more)
    conf.update(extra)
    return Producer(conf)


def produce(bootstrap, n, prefix, extra):
    p = producer(bootstrap, extra)
    offsets = [None] * n

    def done(i):
        def cb(err, msg):
            if err is not None:
                raise KafkaException(err)
            offsets[i] = msg.offset()
        return cb

    for i in range(n):
        p.produce(TOPIC, value=value(i), key="py", partition=0,
                  headers=[("id", "%s-%d" % (prefix, i))], on_delivery=done(i))
    if p.flush(30) != 0:
        raise SystemExit("produce: not delivered within 30 s")
    for o in offsets:
        print("offset", o)


def invalid(bootstrap, extra):
    p = producer(bootstrap, extra, **{"enable.idempotence": False, "retries": 0})
    result = []
    p.produce(TOPIC, value='{"ts":"2026-01-02T15:04:05Z","host":"py","cpu":"high"}', partition=0,
              on_delivery=lambda err, msg: result.append(err))
    p.flush(30)
    err = result[0] if result else None
    print("accepted" if err is None else "error " + err.name())


def consumer(bootstrap, group, extra):
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
    conf.update(extra)
    return Consumer(conf)


def consume(bootstrap, group, n, extra):
    c = consumer(bootstrap, group, extra)
    c.subscribe([TOPIC])
    got = 0
    deadline = time.time() + 60
    while got < n and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            raise KafkaException(m.error())
        ids = dict(m.headers() or [])
        print("record", m.partition(), m.offset(), ids.get("id", b"-").decode(), m.value().decode())
        got += 1
    c.commit(asynchronous=False)
    c.close()


def group(bootstrap, group_id, extra):
    owned = {"a": set(), "b": set()}

    def tracker(name):
        def on_assign(c, parts):
            owned[name] |= {p.partition for p in parts}

        def on_revoke(c, parts):
            owned[name] -= {p.partition for p in parts}
        return on_assign, on_revoke

    def member(name):
        c = consumer(bootstrap, group_id, extra)
        on_assign, on_revoke = tracker(name)
        c.subscribe([TOPIC], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
        return c

    def until(what, cond, members):
        deadline = time.time() + 60
        while not cond():
            if time.time() > deadline:
                raise SystemExit("timed out waiting for " + what)
            for c in members:
                c.poll(0.05)

    # librdkafka joins in the background once subscribed: b subscribes only
    # after a owns everything.
    a = member("a")
    until("a to own both partitions", lambda: len(owned["a"]) == 2, [a])
    b = member("b")
    until("the partitions to be shared", lambda: len(owned["a"]) == 1 and len(owned["b"]) == 1, [a, b])
    print("shared")
    b.close()
    until("a to own both partitions again", lambda: len(owned["a"]) == 2, [a])
    print("rebalanced")
    a.close()


def main():
    mode, rest = sys.argv[1], sys.argv[2:]
    extra = dict(a.split("=", 1) for a in rest if "=" in a)
    pos = [a for a in rest if "=" not in a]
    bootstrap = pos[0]
    if mode == "produce":
        produce(bootstrap, int(pos[1]), pos[2], extra)
    elif mode == "invalid":
        invalid(bootstrap, extra)
    elif mode == "consume":
        consume(bootstrap, pos[1], int(pos[2]), extra)
    elif mode == "group":
        group(bootstrap, pos[1], extra)
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main()
