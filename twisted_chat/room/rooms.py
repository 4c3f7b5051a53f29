# -*- test-case-name: tests.unit.test_rooms -*-
"""
Every room of a server, and its users: L{Rooms}.

The lobby is the room every connection is in from its welcome, with the
store the server was given (memory, or Redis in a cluster); the rooms
clients make are L{Room}s of their own, found by name ignoring case, and
forgotten when they empty (all but their last seq, so that a room made
again under the name continues its sequence).  All of them share one
L{Batching}, so that the events one read causes in several rooms go out
together.

Names are the server's, not a room's: a user keeps its name while in no
room at all.  Operators are the sessions that made a room, or were made
operators in it.
"""

from collections import OrderedDict, deque

from twisted.internet import defer
from twisted.logger import Logger

from twisted_chat import settings, wire
from twisted_chat.room.memory import MemoryStore
from twisted_chat.room.room import Batching, Room


class DirectStream:
    """
    One session's direct messages: its own gap-free counter (C{dseq}) and
    the frames of the last ones, for a resume.
    """

    __slots__ = ("dseq", "frames")

    def __init__(self, size):
        self.dseq = 0
        self.frames = deque(maxlen=max(size, 1))

    def add(self, event):
        """
        Give C{event} (a C{direct} frame's members but C{dseq}) the next
        dseq and keep its frame.

        @return: the frame.
        """
        self.dseq += 1
        data = wire.encode_frame(dict({"type": "direct", "dseq": self.dseq}, **event))
        self.frames.append((self.dseq, data))
        return data

    def after(self, dseq):
        """
        The frames kept after C{dseq}, as (dseq, frame) pairs.
        """
        return [(n, data) for n, data in self.frames if n > dseq]

    @property
    def oldest(self):
        """
        The dseq of the oldest frame kept.
        """
        return self.frames[0][0] if self.frames else self.dseq + 1


class Users:
    """
    Every user of the server, by name in lower case: the lobby's members,
    and those who left the lobby but are still connected.  (Most users are
    in the lobby alone, and keep no entry of their own here.)
    """

    __slots__ = ("lobby", "outside")

    def __init__(self, lobby):
        self.lobby = lobby
        self.outside = {}

    def get(self, key, default=None):
        """
        The user called C{key} (a name in lower case), or C{default}.
        """
        member = self.lobby.members_by_name.get(key)
        if member is None:
            return self.outside.get(key, default)
        return member

    def __contains__(self, key):
        return key in self.lobby.members_by_name or key in self.outside


def about(name):
    """
    The members an error about the room C{name} carries: C{room}, but for
    the lobby, whose frames carry no room.
    """
    return {} if name.lower() == wire.LOBBY else {"room": name}


class Rooms:
    """
    The lobby, the rooms clients make, and which member is in which.

    @ivar lobby: the L{Room} every connection starts in.
    @ivar users: the L{Users}: every connected user, by name in lower
        case.
    @ivar max_rooms: see L{settings.DEFAULT_MAX_ROOMS}.
    @ivar max_rooms_per_client: see L{settings.DEFAULT_MAX_ROOMS_PER_CLIENT}.
    """

    log = Logger()

    def __init__(
        self,
        clock,
        store=None,
        max_rooms=settings.DEFAULT_MAX_ROOMS,
        max_rooms_per_client=settings.DEFAULT_MAX_ROOMS_PER_CLIENT,
        accounts=False,
        **room_options
    ):
        """
        @param store: the lobby's store (a L{MemoryStore} that knows every
            user by default).
        @param room_options: L{Room}'s C{backlog}, C{presence_limit},
            C{coalesce} and C{hold_limit}, for every room.

        @param accounts: whether users log in (C{--auth-file}): operator
            rights and bans then follow the account, not the session and
            the address.
        """
        self.clock = clock
        self.accounts = accounts
        self.max_rooms = max_rooms
        self.max_rooms_per_client = max_rooms_per_client
        self._options = room_options
        self.batching = Batching()
        memory = store is None
        if memory:
            store = MemoryStore()
        self.lobby = Room(clock, store=store, batching=self.batching, **self._options)
        self.users = Users(self.lobby)
        if memory:
            store.users = self.users
        self.stats = self.lobby.stats
        self._rooms = {self.lobby.key: self.lobby}
        # The last seq of rooms that emptied, by key, oldest first: at most
        # max_rooms of them, so that making and leaving ever new rooms
        # costs the server a bounded amount.  A room made again after its
        # entry went starts from 0: a client that resumes it is told its
        # last_seq is ahead of the room, never left with a silent gap.
        self._last_seq = OrderedDict()
        # Each member's rooms other than the lobby, in the order it joined
        # them: a tuple, and none for most members, who are in the lobby
        # alone (a dict each would be a tenth of what a quiet connection
        # costs).
        self._joined = {}
        # Sessions with direct messages, by token (made at the first one).
        self._streams = {}
        # Sessions whose connection ended: the names of their rooms other
        # than the lobby, oldest first; they and their direct streams are
        # kept as long as the lobby keeps ended sessions (--backlog + 1).
        self._ended = OrderedDict()
        self._ended_limit = self.lobby.backlog.size + 1

    def __iter__(self):
        return iter(list(self._rooms.values()))

    def __len__(self):
        return len(self._rooms)

    def get(self, name):
        """
        The room called C{name} (in any case), or L{None}.
        """
        return self._rooms.get(name.lower())

    def rooms_of(self, member):
        """
        The rooms C{member} is in: the lobby first, then the others in the
        order it joined them.
        """
        others = list(self._joined.get(member, ()))
        return [self.lobby] + others if member in self.lobby else others

    def in_room(self, member, name):
        """
        The room called C{name} if C{member} is in it.

        @raise wire.ProtocolError: L{wire.NOT_IN_ROOM} otherwise.
        """
        key = name.lower()
        if key == self.lobby.key:
            if member in self.lobby:
                return self.lobby
        else:
            for room in self._joined.get(member, ()):
                if room.key == key:
                    return room
        raise wire.ProtocolError(
            wire.NOT_IN_ROOM, "you are not in %s" % (name,), **about(name))

    def batch(self):
        """
        The batch every room shares (L{Room.batch}).
        """
        return self.batching

    def flush(self):
        """
        Send every room's pending events now.
        """
        for room in self:
            room.flush()

    def flush_to(self, member):
        """
        Send C{member} now the events it is owed in every room it is in.
        """
        self.lobby.flush_to(member)
        for room in self._joined.get(member, ()):
            room.flush_to(member)

    # Joining and leaving.

    def enter_lobby(self, member, after_seq):
        """
        C{member} joins the lobby as its welcome said: it becomes a user.
        """
        return self._add(member, self.lobby, after_seq)

    def _add(self, member, room, after_seq):
        if room.lobby:
            self.users.outside.pop(member.name.lower(), None)
        else:
            self._joined[member] = self._joined.get(member, ()) + (room,)
        return room.join(member, after_seq)

    def enter(self, member, name, announce):
        """
        C{member} joins the room called C{name} (made if it does not exist),
        or is in it already; C{announce(room, already, seq)} is called
        first, to tell it from which event on it is in the room.

        @return: a Deferred that fires with (the room, whether C{member}
            was in it already).
        @raise wire.ProtocolError: as L{open}.
        """
        room, already = self.open(member, name)
        announce(room, already, room.seq)
        if already:
            return defer.succeed((room, already))
        return self.join(member, room).addCallback(lambda _: (room, already))

    def open(self, member, name):
        """
        The room C{member} asks to join: the one called C{name}, made if it
        does not exist.

        @return: the room, and whether C{member} is in it already.
        @raise wire.ProtocolError: L{wire.TOO_MANY_ROOMS}, L{wire.BANNED}.
        """
        key = name.lower()
        mine = self.rooms_of(member)
        for room in mine:
            if room.key == key:
                return room, True
        if len(mine) >= self.max_rooms_per_client:
            raise wire.ProtocolError(
                wire.TOO_MANY_ROOMS,
                "you are in %d rooms, the most one connection may be in" % (len(mine),),
                **about(name))
        room = self._rooms.get(key)
        if room is not None and self.banned(member, room):
            raise wire.ProtocolError(
                wire.BANNED, "you are banned from %s" % (room.name,), **about(room.name))
        if room is None:
            if len(self._rooms) >= self.max_rooms:
                raise wire.ProtocolError(
                    wire.TOO_MANY_ROOMS,
                    "the server has %d rooms, the most it keeps" % (len(self._rooms),),
                    **about(name))
            room = Room(
                self.clock, store=MemoryStore(self.users), name=name,
                batching=self.batching, seq=self._last_seq.pop(key, 0),
                stats=self.stats, **self._options)
            self._rooms[key] = room
        return room, False

    def join(self, member, room):
        """
        Add C{member} to C{room} (from L{open}) and announce it; the first
        member of a room becomes its operator.
        """
        if not len(room) and not room.lobby:
            room.ops.add(self.op_key(member))
        return self._add(member, room, room.seq)

    def part(self, member, name, message=None):
        """
        Take C{member} out of the room called C{name}.

        @return: a Deferred that fires with (the room, whether C{member}
            was sent its own leave event).
        @raise wire.ProtocolError: L{wire.NOT_IN_ROOM}.
        """
        room = self.in_room(member, name)
        if room.lobby:
            self.users.outside[member.name.lower()] = member
        else:
            self._forget_membership(member, room)
        d = room.part(member, message)
        self._after_leaving(member, room)
        return d.addCallback(lambda told: (room, told))

    def leave(self, member, reason, message=None):
        """
        C{member}'s connection ended: it leaves every room, each told why,
        and is no longer a user.
        """
        # (The lobby first: pending or resuming connections are expected
        # by it, and Room.leave does nothing to a room's non-members.)
        others = self._joined.pop(member, ())
        rooms = [self.lobby] + list(others)
        holder = self.lobby.by_session(member.session)
        if (holder is None or holder is member) and (
                others or member.session in self._streams):
            # (A connection whose session another one took over records
            # nothing: the session lives on there.)
            self._ended[member.session] = [room.name for room in others]
            self._ended.move_to_end(member.session)
            while len(self._ended) > self._ended_limit:
                token, _ = self._ended.popitem(last=False)
                self._streams.pop(token, None)
        key = (member.name or "").lower()
        if self.users.outside.get(key) is member:
            del self.users.outside[key]
        results = []
        for room in rooms:
            results.append(room.leave(member, reason, message))
            self._after_leaving(member, room)
        return defer.gatherResults(results, consumeErrors=True).addCallback(
            lambda _: None)

    def _forget_membership(self, member, room):
        rest = tuple(r for r in self._joined.get(member, ()) if r is not room)
        if rest:
            self._joined[member] = rest
        else:
            self._joined.pop(member, None)

    def _after_leaving(self, member, room):
        """
        C{member} left C{room}: an emptied room is forgotten; a room left
        without an operator gets its longest-present member as one.
        """
        if room.lobby:
            return
        room.ops.discard(self.op_key(member))
        if not len(room):
            del self._rooms[room.key]
            self._last_seq[room.key] = room.seq
            while len(self._last_seq) > self.max_rooms:
                self._last_seq.popitem(last=False)
            room.close()
            return
        if not room.ops:
            heir = room.longest_present()
            room.ops.add(self.op_key(heir))
            room.store.publish(room.event("op", name=heir.name, by=None))

    # What members do.

    def rename(self, member, new_name):
        """
        Give C{member} C{new_name}, announced in every room it is in.
        """
        old = member.name
        if member in self.lobby:
            d = self.lobby.rename(member, new_name)
        else:
            d = self._rename_outside_lobby(member, new_name)
        d.addCallback(self._renamed, member, old)
        return d

    def _rename_outside_lobby(self, member, new_name):
        try:
            wire.check_nick(new_name)
            holder = self.users.get(new_name.lower())
            if holder is not None and holder is not member:
                raise wire.ProtocolError(
                    wire.NICK_TAKEN, "the name %s is taken" % (new_name,))
        except wire.ProtocolError:
            return defer.fail()
        member.name = new_name
        return defer.succeed(None)

    def _renamed(self, _, member, old):
        outside = self.users.outside
        if outside.get(old.lower()) is member:
            del outside[old.lower()]
            outside[member.name.lower()] = member
        for room in self._joined.get(member, ()):
            room.renamed(member, old)

    def names(self, name):
        """
        The names in the room called C{name}, and its operators'.

        @return: a Deferred that fires with (the room's name, names, op
            names).
        @raise wire.ProtocolError: L{wire.NO_SUCH_ROOM}.
        """
        room = self.get(name)
        if room is None:
            raise wire.ProtocolError(
                wire.NO_SUCH_ROOM, "there is no room %s" % (name,), **about(name))
        ops = sorted(m.name for m in room.members() if self.op_key(m) in room.ops)
        return room.names().addCallback(lambda names: (room.name, names, ops))

    def listing(self, match=None):
        """
        Every room (whose name starts with C{match}, ignoring case), sorted
        by name ignoring case, as the C{rooms} frame lists them.
        """
        prefix = (match or "").lower()
        listed = []
        for room in sorted(self, key=lambda room: room.key):
            if room.key.startswith(prefix):
                entry = {"room": room.name, "members": room.room_size}
                entry["topic"] = room.topic
                listed.append(entry)
        return listed

    def set_topic(self, member, name, topic):
        """
        Set the topic of the room called C{name}, as its operator C{member}.
        """
        room = self.in_room(member, name)
        self.check_op(member, room)
        room.topic = topic
        return room.store.publish(room.event("topic", by=member.name, topic=topic))

    # Operators and moderation.

    def op_key(self, member):
        """
        What operator rights are given to: the session (they survive a
        rename and a resume, and end with a part), or, with accounts, the
        account.
        """
        if self.accounts:
            return "account:" + member.name.lower()
        return member.session

    def check_op(self, member, room):
        """
        @raise wire.ProtocolError: L{wire.NOT_OP} unless C{member} is an
            operator of C{room}.
        """
        if self.op_key(member) not in room.ops:
            raise wire.ProtocolError(
                wire.NOT_OP, "you are not an operator of %s" % (room.name,),
                **about(room.name))

    def _moderated(self, member, name):
        """
        The room called C{name}, which C{member} is in and an operator of.
        """
        room = self.in_room(member, name)
        self.check_op(member, room)
        return room

    def _member_of(self, room, target):
        """
        C{room}'s member called C{target}.

        @raise wire.ProtocolError: L{wire.BAD_NICK}, or
            L{wire.NO_SUCH_USER} if nobody in the room has that name.
        """
        wire.check_name(target)
        member = room.member(target)
        if member is None:
            raise wire.ProtocolError(
                wire.NO_SUCH_USER, "nobody called %s is in %s" % (target, room.name),
                **about(room.name))
        return member

    def kick(self, member, name, target, reason=None):
        """
        As operator C{member}, take the user called C{target} out of the
        room called C{name} (reason C{kicked}, with C{by}).

        @return: a Deferred that fires with (the room, the kicked member,
            whether it was sent its own leave event).
        """
        room = self._moderated(member, name)
        kicked = self._member_of(room, target)
        return self._kick(room, kicked, reason, member.name)

    def _kick(self, room, kicked, reason, by):
        self._forget_membership(kicked, room)
        d = room.part(kicked, reason, reason=wire.REASON_KICKED, by=by)
        self._after_leaving(kicked, room)
        return d.addCallback(lambda told: (room, kicked, told))

    def banned(self, member, room):
        """
        Whether C{member} is banned from C{room}: by name (its account, with
        accounts), or, without accounts, by the address of a user who was
        banned while online.
        """
        bans = room.bans
        if not bans:
            return False
        if member.name.lower() in bans:
            return True
        host = getattr(member, "counted_host", None)
        return not self.accounts and host is not None and any(
            host in hosts for hosts in bans.values())

    def ban(self, member, name, target):
        """
        As operator C{member}, ban the user called C{target} from the room
        called C{name}: its name (its account, with accounts) and, if it is
        online, its address; kick it if it is in the room.

        @return: a Deferred that fires with (the room, the kicked member
            and whether it was sent its own leave, or L{None}).
        """
        room = self._moderated(member, name)
        wire.check_name(target)
        user = self.users.get(target.lower())
        hosts = room.bans.setdefault(target.lower(), set())
        host = getattr(user, "counted_host", None)
        if host is not None and not self.accounts:
            hosts.add(host)
        spelled = target if user is None else user.name
        d = room.store.publish(room.event("ban", name=spelled, by=member.name))
        if user is not None and user in room:
            d.addCallback(lambda _: self._kick(room, user, None, member.name))
        else:
            d.addCallback(lambda _: None)
        return d

    def unban(self, member, name, target):
        """
        As operator C{member}, lift the ban of C{target} (its name and the
        addresses it covered) from the room called C{name}; a name not
        banned is nothing to do.
        """
        room = self._moderated(member, name)
        wire.check_name(target)
        if room.bans.pop(target.lower(), None) is None:
            return defer.succeed(None)
        return room.store.publish(room.event("unban", name=target, by=member.name))

    def make_op(self, member, name, target):
        """
        As operator C{member}, make C{name}'s member called C{target} an
        operator too (nothing to do if it is one).
        """
        room = self._moderated(member, name)
        made = self._member_of(room, target)
        key = self.op_key(made)
        if key in room.ops:
            return defer.succeed(None)
        room.ops.add(key)
        return room.store.publish(room.event("op", name=made.name, by=member.name))

    # Direct messages.

    def direct(self, member, to, text):
        """
        Send C{text} from C{member} to the user called C{to} (ignoring
        case): both get a C{direct} frame, each with its own session's
        next dseq (one frame, to oneself).

        @raise wire.ProtocolError: L{wire.NO_SUCH_USER} if nobody online
            has that name.
        """
        if not isinstance(to, str):
            raise wire.ProtocolError(wire.BAD_FRAME, '"to" must be a name')
        target = self.users.get(to.lower())
        if target is None:
            raise wire.ProtocolError(
                wire.NO_SUCH_USER, "nobody called %s is online" % (to[:wire.NAME_MAX],))
        event = {"from": member.name, "to": target.name, "text": text,
                 "time": self.clock.seconds()}
        for recipient in (member,) if target is member else (member, target):
            data = self._stream(recipient.session).add(event)
            recipient.deliver_direct(data)

    def _stream(self, token):
        stream = self._streams.get(token)
        if stream is None:
            stream = self._streams[token] = DirectStream(self._ended_limit - 1)
        return stream

    def dseq(self, token):
        """
        The last dseq of session C{token} (0 before its first).
        """
        stream = self._streams.get(token)
        return 0 if stream is None else stream.dseq

    def direct_after(self, member, last_dseq):
        """
        The direct frames of C{member}'s session after C{last_dseq}.

        @return: the frames (bytes, joined) and how many; and, if frames
            after C{last_dseq} are no longer kept (or it is ahead of the
            session's last), the oldest dseq that is (L{None} otherwise).
        """
        stream = self._streams.get(member.session)
        if stream is None:
            return b"", 0, (None if last_dseq == 0 else 1)
        frames = stream.after(last_dseq)
        missing = stream.oldest > last_dseq + 1 or last_dseq > stream.dseq
        return (b"".join(data for _, data in frames), len(frames),
                stream.oldest if missing else None)

    # Resuming on a new connection.

    def resuming(self, token):
        """
        Session C{token} is about to be resumed here (a cluster holds its
        direct messages until L{resume_over}).
        """

    def resume_over(self, member, token):
        """
        The resume of session C{token} is answered: on C{member}, or it
        failed (L{None}).
        """

    def resume_rooms(self, member, old):
        """
        C{member} has just resumed its session in the lobby; bring its other
        rooms back: those of C{old}, the session's connection still here,
        silently (C{old} is being aborted); or those the session was in
        when its connection ended, by joining them again.

        @return: a list of (room, refusal or L{None}, whether it was joined
            again), in the order the session had joined them.
        """
        back = []
        if old is not None and old is not member:
            rooms = self._joined.pop(old, ())
            for room in rooms:
                room.replace(old, member)
            if rooms:
                self._joined[member] = rooms
            return [(room, None, False) for room in rooms]
        for name in self._ended.pop(member.session, []):
            try:
                room, already = self.open(member, name)
            except wire.ProtocolError as refusal:
                back.append((None, refusal, False))
                continue
            if not already:
                if not len(room) and not room.lobby:
                    room.ops.add(self.op_key(member))
                self._joined[member] = self._joined.get(member, ()) + (room,)
            back.append((room, None, not already))
        return back

    def member_of_session(self, token):
        """
        The user whose session is C{token}, if it is connected here.
        """
        return self.lobby.by_session(token) or next(
            (m for m in list(self._joined) + list(self.users.outside.values())
             if m.session == token), None)

    def close(self):
        """
        The server is stopping: every room sends what is pending, and
        leaves are no longer announced.
        """
        for room in self:
            room.close()
