# -*- test-case-name: tests.test_cluster_rooms -*-
"""
Rooms other than the lobby, and direct messages, shared by the nodes of a
cluster: L{SharedRooms} and each room's L{RoomStore}.

A room's state is in Redis under keys that carry its hash tag
(C{twisted-chat:{<room>}:<role>}: its counter, its event stream, its
members, operators, bans and topic), and every change to it is one Lua
script, as the lobby's are (docs/cluster.rst).  A node keeps a L{Room} only
for the rooms it has members in, and reads their streams along with the
lobby's; the scripts decide what only the whole room can (bans, operators,
presence, the heir of the last operator), and a node applies their answers
to its own members.

Direct messages go to the inbox stream of the node that has the receiving
session; each session's counter (C{dseq}) and its last frames are Redis
keys, so that a session resumed on another node replays them.
"""

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from twisted_chat import wire
from twisted_chat.cluster.lua import (
    DIRECT,
    ROOM_ENTER,
    ROOM_LEAVE,
    ROOM_MODERATE,
    ROOM_NICK,
    ROOM_RESTORE,
    ROOM_WHO,
    ROOMS,
    SESSION,
    event_head,
    leave_tail,
)
from twisted_chat.cluster.reader import unbroken
from twisted_chat.room.interfaces import IRoomStore
from twisted_chat.room.room import Room
from twisted_chat.room.rooms import Rooms, about

#: The leave reasons that take a member out of a room but not off the
#: server: its node sends it the room's events up to that leave, no more.
_GONE_FOR_GOOD = (wire.REASON_PART, wire.REASON_KICKED)
#: The roles of a room's keys, in the order its scripts take them.
ROOM_ROLES = ("seq", "events", "members", "ops", "bans", "topic", "positions")
#: Entries a node's inbox stream keeps (direct messages and notices for it).
INBOX_MAXLEN = 10000
#: Seconds the counter of a room that emptied is kept, so that a room made
#: again under its name soon after continues its sequence.
EMPTIED_ROOM_TTL = 24 * 3600


def room_keys(node, name):
    """
    The keys of the room called C{name} on C{node}'s Redis, in
    L{ROOM_ROLES} order, then the registry of rooms: the first KEYS of
    every room script.
    """
    prefix = "%s{%s}:" % (node.keys["prefix"], name.lower())
    return [prefix + role for role in ROOM_ROLES] + [node.keys["rooms"]]


@implementer(IRoomStore)
class RoomStore:
    """
    The Redis state of one room other than the lobby, for its L{Room} on
    this node.  Entering is L{SharedRooms}'s (the room is loaded from the
    answer), so L{join} and L{resume} have nothing left to do.

    @ivar node: the node's L{twisted_chat.cluster.RedisStore}.
    @ivar keys: the room's keys, in L{ROOM_ROLES} order, then the registry
        of rooms.
    @ivar loaded: whether the room was loaded from Redis (its first
        member's entry answered).
    """

    log = Logger()
    ready = True

    def __init__(self, node, name):
        self.node = node
        self.room = None
        self.room_count = 0
        self.loaded = False
        # Those waiting for a member's entering to be answered.
        self._waiting = {}
        self.keys = room_keys(node, name)

    def attach(self, room):
        self.room = room

    @property
    def room_size(self):
        """
        How many members the room has, as Redis last said.
        """
        return max(self.room_count, len(self.room))

    def new_guest_name(self):
        return self.node.new_guest_name()

    def _eval(self, script, args, more=()):
        d = self.node.commands.eval(script, self.keys + list(more), args)
        return d.addErrback(self.node.as_unavailable)

    def entered(self, member):
        """
        A Deferred that fires once Redis has answered C{member}'s entering
        of the room.
        """
        d = defer.Deferred()
        self._waiting.setdefault(member, []).append(d)
        return d

    def answered(self, member):
        for d in self._waiting.pop(member, ()):
            d.callback(None)

    def _session_rooms(self, member):
        return self.node.session_key(member.session, "rooms")

    def enter(self, member, address, op_key, accounts, load):
        """
        Run L{ROOM_ENTER} for C{member}.

        @return: a Deferred of the script's answer.
        """
        node, room = self.node, self.room
        return self._eval(ROOM_ENTER, [
            node.maxlen, room.presence_limit, member.name.lower(), node.node,
            member.session, address, member.name, room.name, op_key,
            node.rooms.max_rooms, room.backlog.size if load else 0,
        ], [self._session_rooms(member)])

    def join(self, member):
        """
        Nothing: L{SharedRooms} entered it.  (L{IRoomStore}.)
        """
        return defer.succeed(None)

    def resume(self, member, token):
        """
        Nothing: L{SharedRooms} entered it again.  (L{IRoomStore}.)
        """
        return defer.succeed(member.name)

    def _leave_args(self, member, tail, for_good):
        node = self.node
        return [node.maxlen, self.room.presence_limit, member.name.lower(),
                "%s %s" % (node.node, member.session), tail,
                "1" if for_good else "0", "1" if node.rooms.accounts else "0",
                EMPTIED_ROOM_TTL, self.room.name]

    def leave(self, member, reason, message, quietly, by=None):
        """
        C{member}'s connection ended: it leaves (announced as the script
        decides), the session keeping the room for a resume; while Redis
        is away it waits, as the lobby's leaves do.  (L{IRoomStore}.)
        """
        if quietly:
            return defer.succeed(None)
        return self.node.presence_op(
            ROOM_LEAVE, self.keys + [self._session_rooms(member)],
            self._leave_args(member, leave_tail(reason, message, by), False))

    def part(self, member, message):
        """
        C{member} leaves the room for good.

        @return: a Deferred of its leave event's seq (0: not announced).
        """
        d = self._eval(
            ROOM_LEAVE, self._leave_args(member, leave_tail(wire.REASON_PART, message), True),
            [self._session_rooms(member)])
        return d.addCallback(lambda seq: max(int(seq), 0))

    def publish(self, event):
        """
        Append C{event} to the room's stream (L{PUBLISH}, with its flow
        control).  (L{IRoomStore}.)
        """
        return self.node.publish_in([self.keys[0], self.keys[1], self.keys[6]], event)

    def renamed(self, member, old):
        """
        Announce that C{member} was called C{old}.
        """
        event = self.room.event("nick", old=old, new=member.name)
        d = self.node.commands.eval(
            ROOM_NICK, self.keys[:3], [self.node.maxlen, old.lower(), member.name, event_head(event)])
        d.addCallbacks(lambda _: None, self._not_renamed, errbackArgs=(member, old))
        return d

    def _not_renamed(self, failure, member, old):
        # The name is the member's already (the lobby's store took it);
        # only this room's announcement and entry are missing.
        self.log.warn(
            "{old} is now {name}, but {room} could not be told: {error}", old=old,
            name=member.name, room=self.room.name, error=failure.getErrorMessage())

    def rename(self, member, new_name):
        raise NotImplementedError("names are the lobby's")

    def names(self):
        raise NotImplementedError("SharedRooms.names asks Redis")

    def moderate(self, act, member, op_key, *more):
        """
        Run L{ROOM_MODERATE}: C{member}, whose operator key is C{op_key},
        does C{act} with C{more}.

        @return: a Deferred of whether anything was done.
        """
        node, room = self.node, self.room
        d = self._eval(ROOM_MODERATE, [
            node.maxlen, act, op_key, room.presence_limit,
            "1" if node.rooms.accounts else "0", EMPTIED_ROOM_TTL, room.name,
            node.keys["prefix"], INBOX_MAXLEN, member.name,
        ] + list(more), [node.keys["names"], node.keys["outside"]])
        d.addCallback(self._moderated, more)
        return d

    def _moderated(self, answer, more):
        code = int(answer[0])
        name = self.room.name
        if code == -1:
            raise wire.ProtocolError(
                wire.NOT_OP, "you are not an operator of %s" % (name,), **about(name))
        if code == -2:
            raise wire.ProtocolError(
                wire.NO_SUCH_USER, "nobody called %s is in %s" % (more[0], name),
                **about(name))
        return code == 1

    def restore(self, mode):
        """
        Put the room back in Redis (L{ROOM_RESTORE}): C{mode} C{"seed"}
        (its counter and its entry in the registry), C{"0"} (its members
        too) or C{"1"} (their joins announced).
        """
        node, room, rooms = self.node, self.room, self.node.rooms
        args = [node.maxlen, room.presence_limit, room.name, room.seq, mode, room.topic,
                "1" if rooms.accounts else "0", node.keys["session"]]
        if mode != "seed":
            for member in room.members():
                args += [member.name.lower(), rooms.entry(member, room.seq),
                         rooms.op_key(member)]
        return node.commands.eval(ROOM_RESTORE, self.keys, args)

    # What the stream reader hands over.

    def deliver_entry(self, entry_id, fields):
        """
        An entry of the room's stream (L{RedisStore.read_entry}).
        """
        self.node.read_entry(self.room, entry_id, fields)

    def events_read(self):
        """
        Say how far this node has read the room, for its flow control.
        """
        self.node.report_position(self.keys[6], self.room)


class SharedRooms(Rooms):
    """
    L{Rooms} of a cluster node: the lobby's store is the node's
    L{twisted_chat.cluster.RedisStore}; every other room has a
    L{RoomStore}, and direct messages go through Redis.

    @ivar node: the node's L{twisted_chat.cluster.RedisStore}.
    """

    log = Logger()

    def __init__(self, clock, store, **options):
        super().__init__(clock, store=store, **options)
        self.node = store
        store.rooms = self
        # Members sent their own leave of a room once it arrives: the rooms.
        self._departing = {}
        # Sessions being resumed here: the direct frames that arrived
        # meanwhile, as (dseq, payload), held until the replay is sent.
        self._resuming = {}
        # The last dseq sent to each session here.
        self._dseq = {}
        # Members whose entering of a room Redis has not answered yet: the
        # rooms; and those of them whose connection ended meanwhile: why.
        self._entering = {}
        self._gone = {}
        # Kicks that came (through the inbox) before Redis's answer to the
        # kicked member's entering: by (member, room key), the leave's seq.
        self._kicked_early = {}

    def shared_rooms(self):
        """
        This node's rooms other than the lobby that it has a member in (one
        not on its way out).
        """
        return [room for room in self if not room.lobby and any(
            room not in self._departing.get(member, ()) for member in room.members())]

    def entry(self, member, joined):
        """
        C{member}'s entry in a room's members, as L{ROOM_ENTER} writes it.
        """
        return "%s %s %d %s %s" % (
            self.node.node, member.session, joined, self._address(member), member.name)

    def _address(self, member):
        host = getattr(member, "counted_host", None)
        return "-" if self.accounts or host is None else host

    # Entering and leaving.

    def enter(self, member, name, announce):
        """
        C{member} enters the room called C{name}, in Redis first; the room
        is loaded here if it is this node's first member of it.
        """
        key = name.lower()
        if any(room.key == key for room in self._departing.get(member, ())):
            raise wire.ProtocolError(
                wire.UNAVAILABLE, "you are still leaving %s; try again" % (name,),
                **about(name))
        mine = self.rooms_of(member)
        if key == self.lobby.key or any(room.key == key for room in mine):
            return super().enter(member, name, announce)
        entering = self._entering.get(member, [])
        for room in entering:
            if room.key == key:
                # Joining it already: once that is answered, this join is
                # of a room it is in (or is tried again).
                then = defer.Deferred()
                room.store.entered(member).addBoth(lambda _: then.callback(None))
                return then.addCallback(
                    lambda _: self.enter(member, name, announce)
                    if self._connected(member) else None)
        if len(mine) + len(entering) >= self.max_rooms_per_client:
            raise wire.ProtocolError(
                wire.TOO_MANY_ROOMS,
                "you are in %d rooms, the most one connection may be in" % (len(mine),),
                **about(name))
        room = self._local(name)
        d = self._enter(member, room)
        d.addCallback(self._entered, member, room, announce)
        return d.addBoth(self._done, member, room)

    def _enter(self, member, room):
        """
        Run L{ROOM_ENTER} for C{member} and load C{room} from the answer if
        this node has not yet (the room stays here meanwhile).

        @return: a Deferred of (the seq after which the member is in the
            room, whether this session was in it already), or of L{None}
            if the member's connection ended meanwhile (it is taken out of
            the room in Redis again); it fails with the refusal.
        """
        self._entering.setdefault(member, []).append(room)
        d = room.store.enter(
            member, self._address(member), self.op_key(member), self.accounts,
            not room.store.loaded)
        d.addBoth(self._answered, member, room)
        return d

    def _done(self, result, member, room):
        """
        C{member}'s entering of C{room} is over (and it is in the room, if
        it got in): a join of the room that waited goes on.
        """
        room.store.answered(member)
        return result

    def _answered(self, answer, member, room):
        entering = self._entering[member]
        entering.remove(room)
        if not entering:
            del self._entering[member]
        gone = self._gone.get(member) if member in self._entering else self._gone.pop(
            member, None)
        if gone is None and not self._connected(member):
            gone = (wire.REASON_RESET, None)
        if not isinstance(answer, list) or int(answer[0]) < 0 or gone is not None:
            self._kicked_early.pop((member, room.key), None)
        if not isinstance(answer, list):
            self._forget_if_empty(room)
            return answer  # a failure
        status = int(answer[0])
        if status < 0:
            self._forget_if_empty(room)
            raise self._refusal(status, room)
        after, already = self._load(room, answer)
        if gone is not None:
            room.store.leave(member, gone[0], gone[1], self.lobby.closing)
            self._forget_if_empty(room)
            return None
        return after, already

    def _local(self, name):
        """
        This node's L{Room} called C{name}, made (not yet loaded) if it has
        none.
        """
        room = self._rooms.get(name.lower())
        if room is None:
            store = RoomStore(self.node, name)
            room = Room(self.clock, store=store, name=name, batching=self.batching,
                        stats=self.stats, **self._options)
            self._rooms[room.key] = room
        return room

    def _load(self, room, answer):
        """
        A script answered for C{room}: load it here if it is not yet.

        @return: the seq after which the member is in the room, and whether
            this session was a member already (taken over).
        """
        status, before, count, topic, spelled, events = answer
        before = int(before)
        store = room.store
        if not store.loaded:
            room.name = spelled.decode()
            room.topic = topic.decode()
            room.load(before, unbroken(before, events))
            store.loaded = True
            self.node.reader.add(store.keys[1], b"%d-0" % (before,), store)
        # The count includes it; whoever answers says "joining" adds it.
        store.room_count = int(count) - 1
        return min(before, room.seq), int(status) == 2

    def _refusal(self, status, room):
        if status == -1:
            return wire.ProtocolError(
                wire.BANNED, "you are banned from %s" % (room.name,), **about(room.name))
        return wire.ProtocolError(
            wire.TOO_MANY_ROOMS, "the cluster has the most rooms it keeps",
            **about(room.name))

    def _entered(self, entered, member, room, announce):
        if entered is None:
            return None
        after, _ = entered
        announce(room, False, after)
        self._joined[member] = self._joined.get(member, ()) + (room,)
        room.join(member, after)
        kicked = self._kicked_early.pop((member, room.key), None)
        if kicked is not None:
            self.kicked(member.session, room.name, kicked)
        return room, False

    def _forget_if_empty(self, room):
        """
        Forget C{room} here once this node has no member in it, nor one
        waiting for its own leave.
        """
        if len(room) or room.lobby or self._rooms.get(room.key) is not room:
            return
        if any(room in rooms for rooms in self._entering.values()):
            return  # a member is on its way in
        del self._rooms[room.key]
        self.node.reader.remove(room.store.keys[1])
        room.close()

    def _after_leaving(self, member, room):
        """
        The scripts name heirs and forget emptied rooms; here only this
        node's copy goes.
        """
        self._forget_if_empty(room)

    def part(self, member, name, message=None):
        """
        C{member} leaves the room called C{name}: in Redis first; it is
        sent the room's events up to its own leave.
        """
        room = self.in_room(member, name)
        if room.lobby:
            # Its name stays taken: Redis moves it to the users outside.
            self.users.outside[member.name.lower()] = member
        # (It may not join the room again before it is out.)
        self._departing.setdefault(member, set()).add(room)
        self._forget_membership(member, room)
        d = room.store.part(member, message)
        d.addCallbacks(self._parted, self._part_failed,
                       callbackArgs=(member, room), errbackArgs=(member, room))
        return d

    def _parted(self, seq, member, room):
        self._leaving(member, room, seq)
        return room, seq > 0

    def _leaving(self, member, room, seq):
        """
        Redis took C{member} out of C{room}, its leave being event C{seq}
        (0: not announced): it goes now, or when its leave is delivered.
        """
        if room.by_session(member.session) is not member:
            return  # gone already, with its leave
        if seq and room.seq < seq:
            self._departing.setdefault(member, set()).add(room)
        else:
            self.departed(member, room)

    def _part_failed(self, failure, member, room):
        self._not_departing(member, room)
        if room.lobby:
            if self.users.outside.get(member.name.lower()) is member:
                del self.users.outside[member.name.lower()]
        elif room.by_session(member.session) is member:
            self._joined[member] = self._joined.get(member, ()) + (room,)
        return failure

    def _not_departing(self, member, room):
        rooms = self._departing.get(member)
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._departing[member]

    def in_room(self, member, name):
        room = super().in_room(member, name)
        if room.lobby and room in self._departing.get(member, ()):
            raise wire.ProtocolError(wire.NOT_IN_ROOM, "you are not in %s" % (name,))
        return room

    def left(self, room, seq, payload):
        """
        C{room} delivered event C{seq}, a leave: if it is a part or a kick
        of a member of this node, that was its last event of the room, and
        it goes (unless it joined the room again since its part).
        """
        if room.seq != seq:
            return
        event = wire.decode(payload)
        reason = event.get("reason")
        member = room.member(event.get("name", ""))
        if member is None or reason not in _GONE_FOR_GOOD:
            return
        if reason == wire.REASON_PART:
            if room.lobby:
                if room not in self._departing.get(member, ()):
                    return
            elif room in self._joined.get(member, ()):
                return
        self.departed(member, room)

    def departed(self, member, room):
        """
        C{member} is out of C{room} in Redis: it goes from this node's copy
        (sent what it is owed first: the room's events up to its own leave,
        when that leave is the event just delivered).
        """
        self._forget_membership(member, room)
        self._not_departing(member, room)
        room.depart(member)
        self._forget_if_empty(room)

    def leave(self, member, reason, message=None):
        if self.users.outside.get(member.name.lower()) is member and (
                self.member_of_session(member.session) in (None, member)):
            # Outside the lobby: its name is freed all the same (unless its
            # session goes on on another connection).
            self.node.leave(member, reason, message, self.lobby.closing)
        if member in self._entering:
            # Rooms Redis lets it into meanwhile, it leaves at once.
            self._gone[member] = (reason, message)
        for room in self._departing.pop(member, ()):
            if not room.lobby:
                room.depart(member)
                self._forget_if_empty(room)
        if self.lobby.by_session(member.session) in (None, member):
            self._dseq.pop(member.session, None)
        return super().leave(member, reason, message)

    def kicked(self, token, name, seq):
        """
        A notice in this node's inbox: the session C{token} was kicked out
        of the room called C{name}, its leave being event C{seq} (0: not
        announced; it is told C{parted}).
        """
        room = self._rooms.get(name.lower())
        member = None if room is None else room.by_session(token)
        if member is None:
            # Maybe it is entering the room, and the kick overtook Redis's
            # answer: it is applied once the member is in.
            for entering, rooms in self._entering.items():
                if entering.session == token and any(r.key == name.lower() for r in rooms):
                    self._kicked_early[entering, name.lower()] = seq
            return
        self._forget_membership(member, room)
        self._leaving(member, room, seq)
        if not seq:
            member.parted(room, room.seq)

    # What members do.

    def rename(self, member, new_name):
        """
        As in one process; not while the member is on its way out of a
        room (its leave there carries the name it had).
        """
        if self._departing.get(member):
            return defer.fail(wire.ProtocolError(
                wire.UNAVAILABLE, "you are still leaving a room; try again"))
        return super().rename(member, new_name)

    def _rename_outside_lobby(self, member, new_name):
        """
        A user outside the lobby takes the name in Redis (nothing to
        announce in the lobby).
        """
        try:
            wire.check_nick(new_name)
        except wire.ProtocolError:
            return defer.fail()
        d = self.node.rename(member, new_name)
        d.addCallback(lambda _: setattr(member, "name", new_name))
        return d

    def names(self, name):
        """
        The names in the room called C{name} (any room of the cluster) and
        its operators'.
        """
        if name.lower() == self.lobby.key:
            return super().names(name)
        wire.check_name(name)
        d = self.node.commands.eval(
            ROOM_WHO, room_keys(self.node, name), [name.lower(), "1" if self.accounts else "0"])
        d.addErrback(self.node.as_unavailable)
        d.addCallback(self._who, name)
        return d

    def _who(self, answer, name):
        if not answer:
            raise wire.ProtocolError(
                wire.NO_SUCH_ROOM, "there is no room %s" % (name,), **about(name))
        spelled, names, ops = answer
        return (spelled.decode(), sorted(n.decode() for n in names),
                sorted(n.decode() for n in ops))

    def listing(self, match=None):
        """
        Every room of the cluster (whose name starts with C{match}).
        """
        prefix = (match or "").lower()
        d = self.node.commands.eval(
            ROOMS, [self.node.keys["rooms"], self.node.keys["names"]],
            [self.node.keys["prefix"], prefix])
        d.addErrback(self.node.as_unavailable)
        d.addCallback(self._listed, prefix)
        return d

    def _listed(self, found, prefix):
        listed = []
        if self.lobby.key.startswith(prefix):
            listed.append({"room": self.lobby.name, "members": int(found[0]),
                           "topic": self.lobby.topic})
        for i in range(1, len(found), 3):
            listed.append({"room": found[i].decode(), "members": int(found[i + 1]),
                           "topic": found[i + 2].decode()})
        listed.sort(key=lambda entry: entry["room"].lower())
        return listed

    def _moderate(self, member, name, act, *more):
        """
        C{member} does C{act} in the room called C{name}, which it must be
        in (the lobby has no operators); the script checks it is an
        operator.

        @return: a Deferred of whether anything was done.
        """
        room = self.in_room(member, name)
        if room.lobby:
            self.check_op(member, room)
        if act != "topic":
            wire.check_name(more[0])
        return room.store.moderate(act, member, self.op_key(member), *more)

    def set_topic(self, member, name, topic):
        room = self.in_room(member, name)
        head = event_head(room.event("topic", by=member.name, topic=topic))
        return self._moderate(member, name, "topic", topic, head).addCallback(
            lambda _: None)

    def kick(self, member, name, target, reason=None):
        """
        The node of the kicked member is told through its inbox and sends
        it what a kick sends; nothing more to do here.
        """
        tail = leave_tail(wire.REASON_KICKED, reason, member.name)
        return self._moderate(member, name, "kick", target, tail).addCallback(
            lambda _: None)

    def ban(self, member, name, target):
        user = self.users.get(target.lower()) if isinstance(target, str) else None
        address = "-" if user is None else self._address(user)
        return self._moderate(member, name, "ban", target, address).addCallback(
            lambda _: None)

    def unban(self, member, name, target):
        return self._moderate(member, name, "unban", target).addCallback(lambda _: None)

    def make_op(self, member, name, target):
        return self._moderate(member, name, "op", target).addCallback(lambda _: None)

    # Direct messages.

    def direct(self, member, to, text):
        """
        Send C{text} to the user called C{to} on whichever node: Redis
        gives each session its dseq and puts the frames in the inboxes of
        their nodes.
        """
        if not isinstance(to, str):
            raise wire.ProtocolError(wire.BAD_FRAME, '"to" must be a name')
        node = self.node
        rest = wire.encode({"text": text, "time": self.clock.seconds()})[1:]
        d = node.commands.eval(DIRECT, [node.keys["names"], node.keys["outside"]], [
            node.keys["prefix"], member.session, node.node, to.lower(), member.name,
            rest, self.lobby.backlog.size or 1, INBOX_MAXLEN])
        d.addErrback(node.as_unavailable)
        d.addCallback(self._sent, to)
        return d

    def _sent(self, found, to):
        if int(found) < 0:
            raise wire.ProtocolError(
                wire.UNAVAILABLE, "the server is not ready to send direct messages; try again")
        if not int(found):
            raise wire.ProtocolError(
                wire.NO_SUCH_USER, "nobody called %s is online" % (to[:wire.NAME_MAX],))

    def arrived(self, token, dseq, payload, name=""):
        """
        A direct frame for session C{token} (called C{name} when it was
        sent) came to this node's inbox.
        """
        held = self._resuming.get(token)
        if held is not None:
            held.append((dseq, payload, name))
            return
        member = self.users.get(name.lower())
        if member is None or member.session != token:
            member = self.member_of_session(token)
        if member is None or dseq <= self._dseq.get(token, 0):
            return  # gone (Redis keeps it for a resume), or replayed already
        self._dseq[token] = dseq
        member.deliver_direct(wire.frame(payload))

    def dseq(self, token):
        return self._dseq.get(token, 0)

    def _session(self, token):
        node = self.node
        return node.commands.eval(SESSION, [
            node.session_key(token, "rooms"), node.session_key(token, "dseq"),
            node.session_key(token, "direct")], []).addErrback(node.as_unavailable)

    def direct_after(self, member, last_dseq):
        """
        The session's direct frames after C{last_dseq}, from Redis.
        """
        return self._session(member.session).addCallback(self._direct_after, member, last_dseq)

    def _direct_after(self, answer, member, last_dseq):
        _, counter, kept = answer
        counter = int(counter)
        frames = []
        for payload in kept:
            dseq = int(payload[len(b'{"type":"direct","dseq":'):].split(b",", 1)[0])
            frames.append((dseq, payload))
        oldest = frames[0][0] if frames else counter + 1
        after = [(dseq, payload) for dseq, payload in frames if dseq > last_dseq]
        missing = oldest > last_dseq + 1 or last_dseq > counter
        if self.member_of_session(member.session) is member:
            self._dseq[member.session] = max([last_dseq] + [dseq for dseq, _ in after])
        return (b"".join(wire.frame(payload) for _, payload in after), len(after),
                oldest if missing else None)

    # Resuming on a new connection.

    def resuming(self, token):
        """
        Session C{token} is being resumed here: hold its direct frames until
        L{resume_over}.
        """
        self._resuming.setdefault(token, [])

    def resume_over(self, member, token):
        """
        The resume of C{token} is answered (on C{member}, or failed: L{None}):
        send the frames held meanwhile that it was not replayed.
        """
        for dseq, payload, name in self._resuming.pop(token, []):
            self.arrived(token, dseq, payload, name)

    def resume_rooms(self, member, old):
        """
        Bring back the session's other rooms: those of C{old} here, or
        those Redis lists for the session, entered again (taken over,
        silently, from a node that lost the connection; joined again, if
        its leave was announced).
        """
        if old is not None and old is not member:
            return super().resume_rooms(member, old)
        d = self._session(member.session)
        d.addCallback(lambda answer: defer.gatherResults(
            [self._enter_again(member, name.decode()) for name in sorted(answer[0])
             if self._connected(member)], consumeErrors=True))
        return d

    def _connected(self, member):
        """
        Whether C{member} is still a user here (its connection has not
        ended).
        """
        return self.users.get(member.name.lower()) is member

    def _enter_again(self, member, name):
        room = self._local(name)
        d = self._enter(member, room)
        d.addCallbacks(self._entered_again, self._not_entered_again,
                       callbackArgs=(member, room))
        return d.addBoth(self._done, member, room)

    def _entered_again(self, entered, member, room):
        if entered is None:
            return None, None, False
        if self._kicked_early.pop((member, room.key), None) is not None:
            # Kicked out of it while coming back: it is not brought back.
            self._forget_if_empty(room)
            return None, None, False
        self._joined[member] = self._joined.get(member, ()) + (room,)
        return room, None, True

    def _not_entered_again(self, failure):
        failure.trap(wire.ProtocolError)
        return None, failure.value, False
