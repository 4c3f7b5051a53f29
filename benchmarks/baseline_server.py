"""
The reference point for benchmarks: a straightforward Twisted server for the
twisted-chat protocol (the parts a load test uses), written the obvious way:
Int32StringReceiver, json.dumps for every recipient, a set of protocols in
the factory, a TimeoutMixin per connection.

Usage: python benchmarks/baseline_server.py [PORT]   (prints "listening on N")
"""

import json
import sys
import time

from twisted.internet import endpoints, reactor
from twisted.internet.protocol import Factory
from twisted.protocols.basic import Int32StringReceiver
from twisted.protocols.policies import TimeoutMixin


class Chat(Int32StringReceiver, TimeoutMixin):
    MAX_LENGTH = 65536

    def connectionMade(self):
        factory = self.factory
        factory.count += 1
        self.name = "guest-%d" % (factory.count,)
        self.setTimeout(30.0)
        self.send({"type": "welcome", "protocol": 1, "name": self.name,
                   "heartbeat_interval": 10.0, "timeout": 30.0, "max_frame": 65536,
                   "max_text": 4096, "seq": factory.seq, "session": self.name,
                   "rate": {"burst": 20, "per_second": 0}})
        factory.clients.add(self)
        factory.broadcast({"type": "join", "name": self.name})

    def connectionLost(self, reason):
        self.setTimeout(None)
        self.factory.clients.discard(self)
        self.factory.broadcast({"type": "leave", "name": self.name, "reason": "eof"})

    def stringReceived(self, data):
        self.resetTimeout()
        message = json.loads(data)
        kind = message.get("type")
        if kind == "message":
            self.factory.broadcast({"type": "message", "from": self.name,
                                    "text": message["text"], "time": time.time()})
        elif kind == "heartbeat":
            self.send({"type": "heartbeat_ack", "ts": message.get("ts"), "now": time.time()})
        elif kind == "nick":
            old, self.name = self.name, message["name"]
            self.factory.broadcast({"type": "nick", "old": old, "new": self.name})
        elif kind == "who":
            self.send({"type": "who", "names": sorted(c.name for c in self.factory.clients)})
        elif kind == "quit":
            self.transport.loseConnection()
        else:
            self.send({"type": "error", "code": "unknown_type", "message": kind})

    def send(self, message):
        self.sendString(json.dumps(message).encode("utf-8"))


class ChatFactory(Factory):
    protocol = Chat

    def __init__(self):
        self.clients = set()
        self.seq = 0
        self.count = 0

    def broadcast(self, event):
        self.seq += 1
        event["seq"] = self.seq
        for client in list(self.clients):
            client.send(event)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    endpoint = endpoints.TCP4ServerEndpoint(reactor, port, interface="127.0.0.1")
    listening = endpoint.listen(ChatFactory())
    listening.addCallback(
        lambda p: print("listening on %d" % (p.getHost().port,), flush=True)
    )
    reactor.run()


if __name__ == "__main__":
    main()
