"""Fault proxies for bench/fault_matrix.py: faults the real sidecar or Redis cannot make by itself.

`HttpFaultProxy` sits between the search engine's plugin and the real sidecar. It forwards each
HTTP/1.1 request (keep-alive, framed by Content-Length, as the plugin sends them) over its own
keep-alive connection to the sidecar and, depending on its mode, returns the sidecar's answer
unchanged (`pass`), late (`slow`: after `slow_ms`), or replaced: `http_5xx` (503 with a JSON
body), `garbage` (200, a body that is not JSON), `short_body` (a Content-Length larger than the
body sent, then the connection is held), `wrong_length` (the sidecar's answer with one score
removed). The mode can be switched while traffic flows.

`TcpDelayProxy` forwards raw TCP (Redis' protocol) and delays every chunk from the server by
`delay_ms` while `delay_ms > 0`: a slow Redis without root (no tc/netem).
"""

import json
import socket
import threading
import time

MODES = ("pass", "slow", "http_5xx", "garbage", "short_body", "wrong_length")


def _listen(host="127.0.0.1", port=0):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(256)
    return srv


def _read_message(sock, buf):
    """One HTTP/1.1 message framed by Content-Length: (head bytes, body bytes, rest) or None at EOF."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        rest += chunk
    return head, rest[:length], rest[length:]


def _response(status, reason, body, content_type=b"application/json", length=None):
    length = len(body) if length is None else length
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n"
        % (status, reason, content_type, length)
        + body
    )


class _Listener:
    """Accepts connections on a loopback port until closed; each goes to `_handle(conn)`."""

    def _start(self, port, backend_port):
        self.srv = _listen(port=port)
        self.port = self.srv.getsockname()[1]
        self.backend_port = backend_port
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.stopped = True
        self.srv.close()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            self._handle(conn)


class HttpFaultProxy(_Listener):
    def __init__(self, port, backend_port, slow_ms=200):
        self.mode = "pass"
        self.slow_ms = slow_ms
        self.answered = {m: 0 for m in MODES}
        self.lock = threading.Lock()
        self._start(port, backend_port)

    def set_mode(self, mode):
        assert mode in MODES, mode
        self.mode = mode

    def _handle(self, conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _backend(self):
        b = socket.create_connection(("127.0.0.1", self.backend_port), timeout=10)
        b.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return b

    def _serve(self, conn):
        backend, bbuf, buf = None, b"", b""
        try:
            while True:
                msg = _read_message(conn, buf)
                if msg is None:
                    return
                head, body, buf = msg
                mode = self.mode
                if mode in ("http_5xx", "garbage", "short_body"):
                    answer = {
                        "http_5xx": lambda: _response(
                            503, b"Service Unavailable",
                            b'{"error":{"code":"fault_proxy","message":"injected 503"}}'),
                        "garbage": lambda: _response(
                            200, b"OK", b"\x00\x17not json at all {[", b"application/json"),
                        "short_body": lambda: _response(
                            200, b"OK", b'{"scores":[0.1', length=4096),
                    }[mode]()
                    conn.sendall(answer)
                    self._count(mode)
                    if mode == "short_body":
                        time.sleep(2)  # hold the connection: the plugin waits for the rest
                        return
                    continue
                if backend is None:
                    backend, bbuf = self._backend(), b""
                backend.sendall(head + b"\r\n\r\n" + body)
                reply = _read_message(backend, bbuf)
                if reply is None:
                    return
                rhead, rbody, bbuf = reply
                if mode == "wrong_length" and rhead.startswith(b"HTTP/1.1 200"):
                    doc = json.loads(rbody)
                    if isinstance(doc.get("scores"), list) and doc["scores"]:
                        doc["scores"] = doc["scores"][:-1]
                    conn.sendall(_response(200, b"OK", json.dumps(doc).encode()))
                else:
                    if mode == "slow":
                        time.sleep(self.slow_ms / 1000)
                    conn.sendall(rhead + b"\r\n\r\n" + rbody)
                self._count(mode)
        except OSError:
            return
        finally:
            conn.close()
            if backend is not None:
                backend.close()

    def _count(self, mode):
        with self.lock:
            self.answered[mode] += 1


class TcpDelayProxy(_Listener):
    def __init__(self, backend_port):
        self.delay_ms = 0
        self._start(0, backend_port)

    def _handle(self, conn):
        try:
            backend = socket.create_connection(("127.0.0.1", self.backend_port), timeout=5)
        except OSError:
            conn.close()  # the server is down: the client sees the connection closed
            return
        backend.settimeout(None)
        for s in (conn, backend):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=self._pump, args=(conn, backend, False), daemon=True).start()
        threading.Thread(target=self._pump, args=(backend, conn, True), daemon=True).start()

    def _pump(self, src, dst, delayed):
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                if delayed and self.delay_ms > 0:
                    time.sleep(self.delay_ms / 1000)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
