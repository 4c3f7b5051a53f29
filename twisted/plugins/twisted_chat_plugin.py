"""
The twistd plugin for twisted-chat: C{twistd -n chat --port 56562}.

The module to load is named as a string, so scanning plugins imports none of
twisted_chat (and never the reactor): a bug there cannot hide the plugin.
"""

from twisted.application.service import ServiceMaker

twisted_chat = ServiceMaker(
    "twisted-chat",
    "twisted_chat.tap",
    "A chat server that notices dead peers within seconds.",
    "chat",
)
