"""Daphne, as its own command line (``python -m config.serve -b HOST -p PORT config.asgi:application``,
the same arguments as ``daphne``), with a WebSocket close handshake that waits for slow readers.

The job socket is closed by the server after its last message. Daphne's WebSocket library
(autobahn) then waits 1 s for the client's close reply and, past that, aborts the TCP connection:
a reset, on which the client's system throws away whatever it had not read yet. A late listener
replaying a long take over a slow link (or a busy machine) lost the take's tail that way and had
to reconnect. Here the wait is ``CLOSE_HANDSHAKE_TIMEOUT_S``; Daphne exposes no option for it.
"""
from __future__ import annotations

import sys

from daphne.cli import CommandLineInterface
from daphne.server import Server

CLOSE_HANDSHAKE_TIMEOUT_S = 30.0


class PatientServer(Server):
    """Daphne's server; its WebSocket factory (made in ``run``) gets the longer close wait."""

    @property
    def ws_factory(self):
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory) -> None:
        # Daphne's own setProtocolOptions call follows and leaves closeHandshakeTimeout alone.
        factory.setProtocolOptions(closeHandshakeTimeout=CLOSE_HANDSHAKE_TIMEOUT_S)
        self._ws_factory = factory


class PatientCommandLine(CommandLineInterface):
    server_class = PatientServer


def main(argv: list[str] | None = None) -> None:
    PatientCommandLine().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
