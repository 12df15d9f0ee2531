"""The kubelet's `/logs/` endpoint: the node's log directory over HTTPS (upstream's
ServeLogs: `http.StripPrefix("/logs/", http.FileServer(http.Dir("/var/log/")))`).

Role: `routes(root)` is a server setup. `GET /logs/` lists `root` and `GET
/logs/<path>` lists a directory below it or sends a file, as Go's FileServer does
(what `kubectl get --raw /api/v1/nodes/<node>/proxy/logs/` shows):
- a listing is Go 1.23's dirList: `text/html; charset=utf-8`, `<!doctype html>`, a
  viewport `<meta>`, then `<pre>` with one `<a href="name">name</a>` line per entry
  sorted by name (directories with a trailing `/`, the href URL-path-escaped, the
  text HTML-escaped); a directory holding `index.html` serves that file instead;
- a file goes out with its type from its extension, else sniffed (text or binary),
  `Last-Modified`, conditional and range requests (aiohttp's FileResponse);
- redirects as Go's: 301 to `name/` for a directory asked without its slash, to
  `../name` for a file asked with one, to `./` for `.../index.html`;
- errors are Go's http.Error texts: 404 `404 page not found` (also for `/logs`
  without the slash, as upstream's StripPrefix), 403 `403 Forbidden`, 500.
`routes(None)` is upstream's enableSystemLogHandler=false: 405 `logs endpoint is
disabled.`. NodeLogQuery is off by default in 1.32, so the query parameters of a
log query (`query`, `sinceTime`, `untilTime`, `tailLines`, `pattern`, `boot`) are
ignored, as upstream with the gate off.

Invariants:
- Nothing outside `root` is served: the path is cleaned as Go's path.Clean rooted
  at `/`, so `..` (however encoded: `%2e%2e`, `..%2f`) stops at the root; a
  symlink that resolves outside the root answers 404 (Go's http.Dir would follow
  it: the one deliberate difference), and only directories and regular files are
  served (a FIFO or a device answers 404).
- A file is never swapped for a compressed sibling (`x.gz` for `x`), whatever the
  client's Accept-Encoding.
- File system work runs in a thread; the event loop never blocks on the disk.
"""
from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import mimetypes
import os
import stat
from pathlib import Path

from aiohttp import web

NOT_FOUND = "404 page not found"
FORBIDDEN = "403 Forbidden"
INTERNAL = "500 Internal Server Error"
DISABLED = "logs endpoint is disabled."

# bytes a URL path keeps unescaped (Go's shouldEscape in encodePath mode)
_PATH_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                       b"-_.~$&+,/:;=@")
_HTML = {ord("&"): b"&amp;", ord("<"): b"&lt;", ord(">"): b"&gt;", ord('"'): b"&#34;",
         ord("'"): b"&#39;"}
# bytes that make Go's DetectContentType call content binary
_BINARY = frozenset(range(0x00, 0x09)) | {0x0B} | frozenset(range(0x0E, 0x1B)) \
    | frozenset(range(0x1C, 0x20))


def go_error(text: str, code: int) -> web.Response:
    """Go's http.Error."""
    return web.Response(status=code, text=text + "\n", content_type="text/plain",
                        charset="utf-8", headers={"X-Content-Type-Options": "nosniff"})


def clean(path: str) -> str:
    """Go's path.Clean of a rooted path: no empty, `.` or `..` segments; `..` stops at
    the root."""
    out: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
            continue
        out.append(segment)
    return "/" + "/".join(out)


def go_base(path: str) -> str:
    """Go's path.Base."""
    path = path.rstrip("/")
    if not path:
        return "/"
    return path.rsplit("/", 1)[-1]


def href(name: bytes) -> bytes:
    """`url.URL{Path: name}.String()`: the name as a relative URL path."""
    escaped = b"".join(bytes([c]) if c in _PATH_SAFE else b"%%%02X" % c for c in name)
    if b":" in name.split(b"/", 1)[0]:
        escaped = b"./" + escaped  # else "a:b" would read as a scheme
    return escaped


def html_escape(name: bytes) -> bytes:
    return b"".join(_HTML.get(c, bytes([c])) for c in name)


def listing(names: list[tuple[bytes, bool]]) -> bytes:
    """Go's dirList body for (name, is_dir) entries."""
    out = [b"<!doctype html>\n", b'<meta name="viewport" content="width=device-width">\n',
           b"<pre>\n"]
    for name, is_dir in sorted(names):
        if is_dir:
            name += b"/"
        out.append(b'<a href="' + href(name) + b'">' + html_escape(name) + b"</a>\n")
    out.append(b"</pre>\n")
    return b"".join(out)


def read_dir(path: Path) -> list[tuple[bytes, bool]]:
    """(name, is_dir) per entry; a symlink counts as what it is, not its target."""
    with os.scandir(os.fsencode(path)) as entries:
        return [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]


def content_type(path: Path) -> str:
    """By extension (text types in UTF-8, as Go's mime package), else sniffed."""
    guessed, _ = mimetypes.guess_type(path.name)
    if guessed:
        return guessed + "; charset=utf-8" if guessed.startswith("text/") else guessed
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(b"\x1f\x8b\x08"):
        return "application/x-gzip"
    if any(c in _BINARY for c in head):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


@dataclasses.dataclass
class Found:
    """What a cleaned name is under the root: `error` is a Go error text, or ""."""
    error: str = ""
    code: int = 200
    path: Path | None = None
    is_dir: bool = False
    mtime: float = 0.0
    content_type: str = ""


def find(root: Path, name: str) -> Found:
    """Resolve a cleaned name (blocking): a directory or a regular file inside root."""
    if "\x00" in name:
        return Found(INTERNAL, 500)  # Go's "invalid or unsafe file path"
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, name.lstrip("/")))
    if real != real_root and not real.startswith(real_root.rstrip("/") + "/"):
        return Found(NOT_FOUND, 404)  # a symlink out of the root
    try:
        st = os.stat(real)
    except (FileNotFoundError, NotADirectoryError):
        return Found(NOT_FOUND, 404)
    except PermissionError:
        return Found(FORBIDDEN, 403)
    except OSError:
        return Found(INTERNAL, 500)
    if stat.S_ISDIR(st.st_mode):
        return Found(path=Path(real), is_dir=True, mtime=st.st_mtime)
    if not stat.S_ISREG(st.st_mode):
        return Found(NOT_FOUND, 404)
    try:
        ctype = content_type(Path(real))
    except PermissionError:
        return Found(FORBIDDEN, 403)
    except OSError:
        return Found(INTERNAL, 500)
    return Found(path=Path(real), mtime=st.st_mtime, content_type=ctype)


class LogFile(web.FileResponse):
    """A FileResponse that sends the file asked for, never a compressed sibling."""

    def _get_file_path_stat_encoding(self, accept_encoding: str):
        return super()._get_file_path_stat_encoding("")


def _redirect(request: web.Request, location: str) -> web.Response:
    """Go's localRedirect: a relative Location, the raw query kept."""
    query = request.raw_path.partition("?")[2]
    return web.Response(status=301, headers={"Location": location + (
        f"?{query}" if query else "")})


def _not_modified(request: web.Request, mtime: float) -> bool:
    since = request.if_modified_since
    return since is not None and mtime > 0 and int(mtime) <= since.timestamp()


async def serve(request: web.Request, root: Path) -> web.StreamResponse:
    tail = request.match_info.get("tail")
    if tail is None:
        return go_error(NOT_FOUND, 404)  # "/logs": StripPrefix("/logs/") does not match
    url = tail if tail.startswith("/") else "/" + tail
    if url.endswith("/index.html"):
        return _redirect(request, "./")
    name = clean(url)
    found = await asyncio.to_thread(find, root, name)
    if found.error:
        return go_error(found.error, found.code)
    if found.is_dir and not url.endswith("/"):
        return _redirect(request, go_base(url) + "/")
    if not found.is_dir and url.endswith("/"):
        base = go_base(url)
        return _redirect(request, "../" + ("" if base in ("/", ".") else base))
    if found.is_dir:
        index = await asyncio.to_thread(find, root, name.rstrip("/") + "/index.html")
        if not index.error and not index.is_dir:
            found = index
    if found.is_dir:
        if _not_modified(request, found.mtime):
            return web.Response(status=304)
        try:
            names = await asyncio.to_thread(read_dir, found.path)
        except OSError:
            return go_error("Error reading directory", 500)
        headers = {"Content-Type": "text/html; charset=utf-8"}
        if found.mtime > 0:
            headers["Last-Modified"] = email.utils.formatdate(int(found.mtime), usegmt=True)
        return web.Response(body=listing(names), headers=headers)
    return LogFile(found.path, headers={"Content-Type": found.content_type})


def routes(root: Path | None):
    """The `/logs/` routes over `root`; None: the handler is disabled (405)."""
    def setup(app: web.Application) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            if root is None:
                return go_error(DISABLED, 405)
            return await serve(request, root)

        app.router.add_get("/logs", handler)
        app.router.add_get("/logs/{tail:.*}", handler)
    return setup
