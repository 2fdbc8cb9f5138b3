"""A private SMTP sink for the SMTP tests (pinwheel-test-peers), built on aiosmtpd.

Listens on 127.0.0.1 on a port the kernel picks and prints that port on the
first line of stdout. Every accepted message is saved as one JSON file in
--dir: {"mail_from", "rcpt_tos", "login", "data"}. Recipients whose local part
starts with "reject" get 550, with "later" get 450; a message to a recipient
whose local part starts with "echo" gets 550 at DATA with its text echoed
(as some relays do with content-filter refusals).

  python3 smtp_sink.py --dir DIR [--auth USER:PASSWORD]
                       [--starttls CERT KEY | --implicit CERT KEY]
"""

import argparse
import asyncio
import json
import os
import socket
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Handler:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 mailbox unavailable"
        if address.startswith("later"):
            return "450 4.2.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(r.startswith("echo") for r in envelope.rcpt_tos):
            text = envelope.content.decode("utf-8", "replace")
            body = text.replace("\r\n", "\n").split("\n\n", 1)[-1]
            return "550 5.7.1 refused by content filter, message text was " + " ".join(
                body.split()
            )
        self.count += 1
        login = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode()
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "login": login,
            "data": envelope.content.decode("utf-8", "replace"),
        }
        tmp = os.path.join(self.directory, f".{self.count}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.directory, f"{self.count}.json"))
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--auth")
    parser.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--implicit", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()

    context = None
    pair = args.starttls or args.implicit
    if pair:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pair[0], pair[1])

    authenticator = None
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            return AuthResult(success=ok, handled=False, auth_data=auth_data)

    handler = Handler(args.dir)

    def factory():
        return SMTP(
            handler,
            hostname="sink.test",
            tls_context=context if args.starttls else None,
            require_starttls=bool(args.starttls),
            authenticator=authenticator,
            auth_required=bool(args.auth),
            auth_require_tls=False,
        )

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(factory, sock=sock, ssl=context if args.implicit else None)
    )
    print(sock.getsockname()[1], flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    sys.exit(main())
