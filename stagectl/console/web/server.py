"""The web console server: the operator page, a WebSocket to the :class:`~stagectl.console.hub.ControlHub`,
output previews and a JSON snapshot, over HTTP on the stage network.

``WebConsole(hub, settings.web, token=None).start()`` binds (``settings.bind``, ``settings.port``; port 0
picks a free one), runs aiohttp in its own thread with its own asyncio loop and returns the console's URL;
``close()`` stops it (open WebSockets are closed with 1001 "going away"). ``hub.submit`` blocks until the frame
loop applied a change, so it runs in a small thread pool, never on the event loop.

**Login.** The console is protected by a login token (:attr:`WebConsole.token`, ``secrets.token_urlsafe``
unless one is given; ``stagectl run`` prints it at start). ``POST /login`` with the token and an operator name
sets a session cookie (HttpOnly, SameSite=Strict); every change made through that session is submitted as
``who="web:<name>"``. A wrong token is refused (401) and counted.

Routes:

* ``GET /``: the console page with a valid session, else the login page; ``POST /login``, ``POST /logout``;
  ``/static/*``: the page's script and style sheet (no secrets in them);
* ``GET /ws``: WebSocket. The server sends ``{"type": "snapshot", "seq", "state", "status", "stage", "log",
  "operator"}`` first, then every hub event (``{"type": "state", "seq", ..., "log": {change record}}``,
  ``{"type": "status", "status"}``; after the hub reports this server's subscription lagged, a fresh snapshot to
  every client). The client sends ``{"id": n, "command": name, "args": {...}}`` and gets
  ``{"id": n, "ack": {...}}`` (the hub's ack; malformed messages are counted and answered with an error ack,
  never raised: text that is not JSON, JSON nested deeper than :data:`stagectl.console.jsonbounds.MAX_DEPTH`
  levels, binary messages). A message over :data:`MAX_CLIENT_MESSAGE` bytes closes that WebSocket with code
  1009 (message too big); the other clients go on. A client that falls more than :data:`MAX_PENDING` events
  behind is sent a fresh snapshot; status events waiting for a slow client are coalesced to the newest;
* ``GET /preview/<output key with / replaced by _>.jpg``: the hub's newest JPEG thumbnail of that output
  (``Cache-Control: no-store``; header ``X-Stagectl-Frame``: the frame it shows); 404 before the first one;
* ``GET /api/snapshot``: ``hub.snapshot()`` plus ``"log"`` as JSON.

Without a session, ``/ws``, ``/preview/*`` and ``/api/*`` answer 401. JSON sent to browsers never holds NaN
or Infinity (they become ``null``: JavaScript's JSON.parse refuses them).
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import html
import importlib.util
import json
import math
import re
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from stagectl.console.jsonbounds import JsonTooDeep
from stagectl.console.jsonbounds import loads as bounded_loads
from stagectl.core.errors import StageError

__all__ = ["WebConsole", "WebConsoleError", "jsonable", "dumps", "DEFAULT_BIND", "DEFAULT_PORT", "MAX_PENDING"]

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_BIND = "127.0.0.1"
DEFAULT_PORT = 41340
COOKIE = "stagectl_console"
#: operator names: what appears after "web:" in the change log
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,31}$")
#: the largest message a client may send (bytes)
MAX_CLIENT_MESSAGE = 64 * 1024
#: events queued for one client before it is resynchronised with a fresh snapshot instead
MAX_PENDING = 512
#: most concurrent sessions kept (the oldest is forgotten first)
MAX_SESSIONS = 256
#: change records sent with a snapshot
LOG_IN_SNAPSHOT = 200


class WebConsoleError(StageError):
    """The web console cannot start (address in use, bad bind address, aiohttp missing)."""


def jsonable(obj: Any) -> Any:
    """``obj`` with tuples as lists, numpy scalars and arrays as Python values and non-finite floats as None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy scalar or array
        return jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def dumps(obj: Any) -> str:
    """Compact JSON a browser can parse (see :func:`jsonable`)."""
    return json.dumps(jsonable(obj), allow_nan=False, separators=(",", ":"))


def _error_ack(command: Any, error: str) -> dict:
    return {"ok": False, "command": command if isinstance(command, str) else None, "error": error}


class _Client:
    """One open WebSocket: its operator and the events waiting to be sent (touched on the loop thread only)."""

    def __init__(self, ws, name: str) -> None:
        self.ws = ws
        self.name = name
        self.pending: collections.deque[dict] = collections.deque()
        self.wake = asyncio.Event()
        self.resync = False

    def push(self, msg: dict) -> None:
        if msg.get("type") == "status" and self.pending and self.pending[-1].get("type") == "status":
            self.pending[-1] = msg  # a slow client gets the newest status, not a backlog
        else:
            self.pending.append(msg)
        if len(self.pending) > MAX_PENDING:  # too far behind: a fresh snapshot replaces the events (acks stay)
            acks = [m for m in self.pending if "ack" in m]
            self.pending.clear()
            self.pending.extend(acks)
            self.resync = True
        self.wake.set()


class WebConsole:
    """The web console of one running stage (see the module docstring).

    ``hub``: the :class:`~stagectl.console.hub.ControlHub`; ``settings``: the stage's ``console.web`` settings
    (``bind``, ``port``; None: 127.0.0.1:41340); ``token``: the login token (None: a new random one).
    """

    def __init__(self, hub, settings: Any = None, token: str | None = None, *, workers: int = 8) -> None:
        self.hub = hub
        self.bind = str(getattr(settings, "bind", None) or DEFAULT_BIND)
        port = getattr(settings, "port", None)
        self.port = DEFAULT_PORT if port is None else int(port)
        self.token = token if token else secrets.token_urlsafe(24)
        #: counters for the status line: refused logins, unauthenticated requests, malformed client messages
        self.counters = {"login_refused": 0, "unauthorized": 0, "bad_messages": 0, "commands": 0}
        self._sessions: collections.OrderedDict[str, str] = collections.OrderedDict()  # session id -> name
        self._clients: set[_Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pump: threading.Thread | None = None
        self._runner = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._executor = ThreadPoolExecutor(max_workers=max(2, workers), thread_name_prefix="stagectl-web-submit")
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ life cycle

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "") else ("[::1]" if self.bind == "::" else self.bind)
        return f"http://{host}:{self.port}/"

    @property
    def clients(self) -> int:
        """Open WebSockets."""
        return len(self._clients)

    def start(self, timeout_s: float = 10.0) -> str:
        """Bind and serve in a background thread; returns the URL. Raises :class:`WebConsoleError`."""
        if self._thread is not None:
            raise WebConsoleError("web console: already started")
        if importlib.util.find_spec("aiohttp") is None:
            raise WebConsoleError("web console: the aiohttp package is missing (pip install aiohttp)")
        self._thread = threading.Thread(target=self._serve, name="stagectl-web", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise WebConsoleError(f"web console: did not start within {timeout_s:g} s")
        if self._start_error is not None:
            self._thread.join(timeout_s)
            self._thread = None
            err = self._start_error
            raise WebConsoleError(f"web console: cannot listen on {self.bind}:{self.port}: "
                                  f"{getattr(err, 'strerror', None) or err}")
        self._pump = threading.Thread(target=self._pump_events, name="stagectl-web-events", daemon=True)
        self._pump.start()
        return self.url

    def close(self) -> None:
        """Stop serving (idempotent): WebSockets closed, the port released, threads joined."""
        self._stop.set()
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:  # the loop is already closed
                pass
            thread.join(10.0)
        if self._pump is not None:
            self._pump.join(2.0)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._thread = None
        self._pump = None

    def __enter__(self) -> WebConsole:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:  # reported by start()
            self._start_error = exc
            self._ready.set()
            loop.run_until_complete(self._shutdown())
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown())
            loop.close()

    async def _startup(self) -> None:
        from aiohttp import web

        app = web.Application(client_max_size=MAX_CLIENT_MESSAGE)
        app.router.add_get("/", self._index)
        app.router.add_post("/login", self._login)
        app.router.add_post("/logout", self._logout)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/preview/{name}", self._preview)
        app.router.add_get("/api/snapshot", self._api_snapshot)
        app.router.add_static("/static", STATIC, show_index=False, follow_symlinks=False)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind, self.port, reuse_address=True)
        await site.start()
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])

    async def _shutdown(self) -> None:
        from aiohttp import WSCloseCode

        async def bye(ws) -> None:
            try:  # a client that does not answer the close frame gets one second
                await asyncio.wait_for(ws.close(code=WSCloseCode.GOING_AWAY, message=b"stage stopping"), 1.0)
            except Exception:  # noqa: BLE001 - a broken socket must not stop the shutdown
                pass

        await asyncio.gather(*(bye(c.ws) for c in list(self._clients)))
        self._clients.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ hub events -> clients

    def _pump_events(self) -> None:
        """One hub subscription for every client: events are handed to the loop, which queues them per client."""
        sub = self.hub.subscribe()
        try:
            while not self._stop.is_set():
                ev = sub.get(0.2)
                if ev is None:
                    if sub.closed:  # the hub closed: the stage is stopping
                        break
                    continue
                kind = ev.get("type")
                if kind == "lagged":  # state events overflowed this subscription: every client gets a snapshot
                    sub.resync()
                    target, ev = self._resync_all, None
                else:
                    if kind == "state":
                        ev = dict(ev)
                        ev["log"] = self._log_record(ev)
                    target = self._fanout
                loop = self._loop
                if loop is None or loop.is_closed():
                    break
                try:
                    loop.call_soon_threadsafe(target, ev)
                except RuntimeError:  # the loop closed meanwhile
                    break
        finally:
            sub.close()

    def _log_record(self, ev: dict) -> dict:
        seq = ev.get("seq")
        try:
            for rec in reversed(list(self.hub.log)):
                if rec.get("seq") == seq:
                    return rec
        except Exception:  # noqa: BLE001 - the log is a courtesy; the event still goes out
            pass
        return {"seq": seq, "frame": ev.get("frame"), "time_utc": None, "who": ev.get("who"),
                "command": ev.get("command"), "args": ev.get("args", {})}

    def _fanout(self, ev: dict) -> None:
        for client in list(self._clients):
            client.push(ev)

    def _resync_all(self, _ev: None = None) -> None:
        for client in list(self._clients):
            client.resync = True
            client.wake.set()

    # ------------------------------------------------------------------ sessions

    def _session(self, request) -> str | None:
        """The operator name of the request's session, or None."""
        sid = request.cookies.get(COOKIE)
        if not sid:
            return None
        with self._lock:
            return self._sessions.get(sid)

    def _refuse(self):
        from aiohttp import web

        self.counters["unauthorized"] += 1
        return web.json_response({"ok": False, "error": "not logged in: open the console page and log in"},
                                 status=401)

    def _login_page(self, error: str = "", name: str = "", status: int = 200):
        from aiohttp import web

        text = (STATIC / "login.html").read_text(encoding="utf-8")
        stage = getattr(getattr(self.hub, "stage", None), "name", "") or ""
        text = (text.replace("{{error}}", html.escape(error)).replace("{{name}}", html.escape(name, quote=True))
                .replace("{{stage}}", html.escape(str(stage))))
        return web.Response(text=text, content_type="text/html", status=status,
                            headers={"Cache-Control": "no-store"})

    async def _index(self, request):
        from aiohttp import web

        if self._session(request) is None:
            return self._login_page()
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def _login(self, request):
        from aiohttp import web

        form = await request.post()
        token = str(form.get("token", ""))
        name = str(form.get("name", "")).strip()
        if not hmac.compare_digest(token.encode("utf-8"), self.token.encode("utf-8")):
            self.counters["login_refused"] += 1
            await asyncio.sleep(0.25)  # slows guessing; the token has 192 bits anyway
            return self._login_page("wrong token: use the one stagectl run printed at start", name, status=401)
        if not NAME_RE.match(name):
            return self._login_page("operator name: 1 to 32 letters, digits, spaces, dots, dashes or underscores, "
                                    "starting with a letter or digit", name, status=400)
        sid = secrets.token_urlsafe(24)
        with self._lock:
            self._sessions[sid] = name
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        resp = web.HTTPSeeOther("/")
        resp.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", path="/")
        raise resp

    async def _logout(self, request):
        from aiohttp import web

        sid = request.cookies.get(COOKIE)
        if sid:
            with self._lock:
                self._sessions.pop(sid, None)
        resp = web.HTTPSeeOther("/")
        resp.del_cookie(COOKIE, path="/")
        raise resp

    # ------------------------------------------------------------------ API

    def _snapshot_message(self, name: str) -> str:
        snap = dict(self.hub.snapshot())
        snap["type"] = "snapshot"
        snap["log"] = list(self.hub.log)[-LOG_IN_SNAPSHOT:]
        snap["operator"] = name
        return dumps(snap)

    async def _api_snapshot(self, request):
        from aiohttp import web

        name = self._session(request)
        if name is None:
            return self._refuse()
        text = await asyncio.get_running_loop().run_in_executor(self._executor, self._snapshot_message, name)
        return web.Response(text=text, content_type="application/json", headers={"Cache-Control": "no-store"})

    async def _preview(self, request):
        from aiohttp import web

        if self._session(request) is None:
            return self._refuse()
        name = request.match_info["name"]
        if not name.endswith(".jpg"):
            raise web.HTTPNotFound(text="previews are /preview/<processor>_<output>.jpg")
        wanted = name[:-4]
        for key, (frame, jpeg) in self.hub.previews().items():
            if key.replace("/", "_") == wanted:
                return web.Response(body=jpeg, content_type="image/jpeg",
                                    headers={"Cache-Control": "no-store, no-cache, must-revalidate",
                                             "X-Stagectl-Frame": str(frame)})
        raise web.HTTPNotFound(text=f"no preview of {wanted!r} yet")

    def _submit(self, command: str, args: dict, who: str) -> dict:
        try:
            return self.hub.submit(command, args, who)
        except Exception as exc:  # noqa: BLE001 - an ack, never a dead socket
            return _error_ack(command, f"{command}: not applied: {exc}")

    async def _ws(self, request):
        from aiohttp import WSMsgType, web

        name = self._session(request)
        if name is None:
            return self._refuse()
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            self.counters["unauthorized"] += 1
            return web.json_response({"ok": False, "error": "WebSocket from another site refused"}, status=403)
        ws = web.WebSocketResponse(heartbeat=15.0, max_msg_size=MAX_CLIENT_MESSAGE)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        client = _Client(ws, name)
        self._clients.add(client)  # before the snapshot: no event can fall between the two
        writer = None
        tasks: set[asyncio.Task] = set()
        try:
            await ws.send_str(await loop.run_in_executor(self._executor, self._snapshot_message, name))
            writer = asyncio.create_task(self._write(client))
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    task = self._handle(client, msg.data)
                    if task is not None:
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                elif msg.type == WSMsgType.BINARY:
                    self.counters["bad_messages"] += 1
                    client.push({"id": None, "ack": _error_ack(None, "binary messages are not understood: send "
                                                                     "JSON text")})
                elif msg.type == WSMsgType.ERROR:
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(client)
            if writer is not None:
                writer.cancel()
        return ws

    def _handle(self, client: _Client, data: str) -> asyncio.Task | None:
        try:
            msg = bounded_loads(data)
        except JsonTooDeep as exc:
            self.counters["bad_messages"] += 1
            client.push({"id": None, "ack": _error_ack(None, f'{exc}: expected a JSON object {{"id", "command", '
                                                             '"args"}')})
            return None
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            self.counters["bad_messages"] += 1
            client.push({"id": None, "ack": _error_ack(None, 'expected a JSON object {"id", "command", "args"}')})
            return None
        mid = msg.get("id")
        if not isinstance(mid, (int, str)) or isinstance(mid, bool):
            mid = None
        command = msg.get("command")
        args = msg.get("args", {})
        if args is None:
            args = {}
        if not isinstance(command, str) or not command:
            self.counters["bad_messages"] += 1
            client.push({"id": mid, "ack": _error_ack(None, "missing command name")})
            return None
        if not isinstance(args, dict):
            self.counters["bad_messages"] += 1
            client.push({"id": mid, "ack": _error_ack(command, f"{command}: args must be an object")})
            return None
        self.counters["commands"] += 1
        return asyncio.create_task(self._command(client, mid, command, args))

    async def _command(self, client: _Client, mid, command: str, args: dict) -> None:
        loop = asyncio.get_running_loop()
        try:
            ack = await loop.run_in_executor(self._executor, self._submit, command, args, f"web:{client.name}")
        except RuntimeError:  # the executor is shut down: the server is closing
            ack = _error_ack(command, f"{command}: not applied: the console is closing")
        client.push({"id": mid, "ack": ack})

    async def _write(self, client: _Client) -> None:
        loop = asyncio.get_running_loop()
        ws = client.ws
        try:
            while not ws.closed:
                await client.wake.wait()
                client.wake.clear()
                if client.resync:
                    client.resync = False
                    await ws.send_str(await loop.run_in_executor(self._executor, self._snapshot_message,
                                                                 client.name))
                while client.pending and not ws.closed:
                    await ws.send_str(dumps(client.pending.popleft()))
        except (ConnectionError, RuntimeError):
            pass  # the socket went away; the reader ends the session

