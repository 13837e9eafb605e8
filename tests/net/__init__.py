"""Loopback network tests (real UDP sockets on 127.0.0.1, marked ``net``)."""
