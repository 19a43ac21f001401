"""Check the built documentation site in a real headless browser.

Usage (from the repository root, after ``make docs``; ``make check-site`` runs it)::

    python docs/check_site.py                         # every page of docs/_build/html
    python docs/check_site.py --screenshot out.png    # also screenshot the start page
    python docs/check_site.py --chromium /path/to/chromium --html docs/_build/html

It serves the built HTML with ``python -m http.server`` on 127.0.0.1, starts Chromium
headless (Debian's ``chromium`` package: ``apt-get install chromium``) and drives it over
the DevTools protocol (through tornado's websocket client, which ipykernel installs). For
every ``.html`` page it checks that

* the page loads (HTTP 200, load event fired);
* every image is found and decoded (``img.complete`` and ``naturalWidth > 0``), which
  covers the PNG outputs embedded in the notebooks too;
* no request fails (no 4xx/5xx response, no failed load, and no 404 in the
  http.server log);
* the console stays clean: no ``console.error``, no uncaught exception, no error-level
  browser log entry;
* every link into the site points to a file that exists (links to other sites are
  counted, not fetched: the check runs offline).

It prints one line per problem and a summary, and exits with 1 if anything failed. It
is not part of the test suite (it needs Chromium and a built site); run it by hand
after changing the docs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from tornado.websocket import websocket_connect

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--window-size=1400,1000",
    "--remote-debugging-port=0",
    "--enable-logging=stderr",
    "--v=0",
]
#: JavaScript run on every page after it loaded
PAGE_PROBE = """(() => ({
  badImages: Array.from(document.images)
    .filter(i => !(i.complete && i.naturalWidth > 0))
    .map(i => (i.currentSrc || i.src).slice(0, 200)),
  nImages: document.images.length,
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  title: document.title,
}))()"""


class CDP:
    """A minimal DevTools-protocol client: commands by id, events into a list."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.pending: dict[int, asyncio.Future] = {}
        self.events: list[dict] = []
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        while True:
            msg = await self.ws.read_message()
            if msg is None:
                return
            data = json.loads(msg)
            fut = self.pending.pop(data.get("id"), None)
            if fut is not None:
                if "error" in data:
                    fut.set_exception(RuntimeError(f"CDP error: {data['error']}"))
                else:
                    fut.set_result(data.get("result", {}))
            elif "method" in data:
                self.events.append(data)

    async def send(self, method, params=None, session=None, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        await self.ws.write_message(json.dumps(msg))
        return await asyncio.wait_for(fut, timeout)


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_chromium(chromium, profile):
    proc = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=open(Path(profile) / "chromium-stderr.log", "w"),
    )
    port_file = Path(profile) / "DevToolsActivePort"
    for _ in range(300):
        if port_file.exists() and len(port_file.read_text().splitlines()) >= 2:
            port, path = port_file.read_text().splitlines()[:2]
            return proc, f"ws://127.0.0.1:{port}{path}"
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    log = (Path(profile) / "chromium-stderr.log").read_text()[-2000:]
    raise RuntimeError(f"Chromium did not start (exit {proc.poll()}):\n{log}")


async def _wait_event(cdp, method, session, start, timeout):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        for ev in cdp.events[start:]:
            if ev["method"] == method and ev.get("sessionId") == session:
                return True
        await asyncio.sleep(0.05)
    return False


def _page_problems(events, session, probe, base, html_dir):
    """Problems of one page from its events and its probe result."""
    problems = []
    for ev in events:
        if ev.get("sessionId") != session:
            continue
        m, p = ev["method"], ev.get("params", {})
        if m == "Network.responseReceived" and p["response"]["status"] >= 400:
            problems.append(f"HTTP {p['response']['status']}: {p['response']['url']}")
        elif m == "Network.loadingFailed" and not p.get("canceled"):
            problems.append(f"load failed ({p.get('errorText')}): request {p.get('requestId')}")
        elif m == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
            problems.append(f"console.{p['type']}: {text[:300]}")
        elif m == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text")
            problems.append(f"uncaught exception: {str(text)[:300]}")
        elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
            e = p["entry"]
            problems.append(f"browser log error: {e['text'][:200]} {e.get('url', '')}")
    for src in probe["badImages"]:
        problems.append(f"image not found or not decoded: {src}")
    for href in probe["links"]:
        u = urlparse(href)
        if u.scheme in ("http", "https") and u.netloc == base.netloc:
            rel = unquote(u.path).lstrip("/")
            target = html_dir / rel
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"broken link: {href}")
    return problems


async def _check(pages, base_url, ws_url, html_dir, screenshot, shot_page, full_page):
    ws = await websocket_connect(ws_url, max_message_size=256 * 1024 * 1024)
    cdp = CDP(ws)
    target = await cdp.send("Target.createTarget", {"url": "about:blank"})
    att = await cdp.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
    session = att["sessionId"]
    for domain in ("Page", "Runtime", "Network", "Log"):
        await cdp.send(f"{domain}.enable", session=session)
    base = urlparse(base_url)
    results, n_images, external = {}, 0, set()
    for page in pages:
        start = len(cdp.events)
        url = f"{base_url}/{page}"
        nav = await cdp.send("Page.navigate", {"url": url}, session=session)
        problems = [f"navigation error: {nav['errorText']}"] if nav.get("errorText") else []
        if not await _wait_event(cdp, "Page.loadEventFired", session, start, 30):
            problems.append("load event not fired within 30 s")
        await asyncio.sleep(0.3)  # late requests (search index, fonts)
        res = await cdp.send(
            "Runtime.evaluate", {"expression": PAGE_PROBE, "returnByValue": True}, session=session
        )
        probe = res["result"]["value"]
        n_images += probe["nImages"]
        external.update(h for h in probe["links"] if urlparse(h).netloc not in ("", base.netloc))
        problems += _page_problems(cdp.events[start:], session, probe, base, html_dir)
        results[page] = problems
        if screenshot and page == shot_page:
            params = {"format": "png", "captureBeyondViewport": full_page}
            if full_page:
                size = await cdp.send("Page.getLayoutMetrics", session=session)
                w, h = size["cssContentSize"]["width"], size["cssContentSize"]["height"]
                params["clip"] = {"x": 0, "y": 0, "width": w, "height": min(h, 6000), "scale": 1}
            shot = await cdp.send("Page.captureScreenshot", params, session=session)
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
    cdp.reader.cancel()
    ws.close()
    return results, n_images, external


def main(argv=None):
    """Run the check; return 0 when every page passed, 1 otherwise."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--html", type=Path, default=ROOT / "docs" / "_build" / "html")
    p.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    p.add_argument("--screenshot", type=Path, help="save a screenshot of a page here")
    p.add_argument("--screenshot-page", default="index.html", help="page to screenshot")
    p.add_argument("--full-page", action="store_true", help="screenshot the whole page")
    args = p.parse_args(argv)
    html_dir = args.html.resolve()
    if not (html_dir / "index.html").exists():
        print(f"no built site in {html_dir}: run `make docs` first", file=sys.stderr)
        return 2
    pages = sorted(
        str(f.relative_to(html_dir))
        for f in html_dir.rglob("*.html")
        if not f.relative_to(html_dir).parts[0].startswith(("_static", "_sources"))
    )
    port = _free_port()
    profile = tempfile.mkdtemp(prefix="bayesmix-chromium-")
    server_log = Path(profile) / "http-server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=html_dir,
        stdout=subprocess.DEVNULL,
        stderr=open(server_log, "w"),
    )
    chromium = None
    t0 = time.perf_counter()
    try:
        time.sleep(0.5)
        chromium, ws_url = _start_chromium(args.chromium, profile)
        results, n_images, external = asyncio.run(
            _check(
                pages,
                f"http://127.0.0.1:{port}",
                ws_url,
                html_dir,
                args.screenshot,
                args.screenshot_page,
                args.full_page,
            )
        )
    finally:
        if chromium is not None:
            chromium.terminate()
            chromium.wait(10)
        server.terminate()
        server.wait(10)
    log = server_log.read_text()
    not_found = [ln for ln in log.splitlines() if '" 404 ' in ln or " 404 -" in ln]
    n_bad = 0
    for page, problems in results.items():
        for prob in dict.fromkeys(problems):
            print(f"{page}: {prob}")
            n_bad += 1
    for ln in not_found:
        print(f"http.server 404: {ln}")
    n_requests = sum(1 for ln in log.splitlines() if '"GET ' in ln)
    print(
        f"checked {len(pages)} pages, {n_images} images, {n_requests} requests served, "
        f"{len(external)} external links (not fetched) in {time.perf_counter() - t0:.0f} s: "
        f"{n_bad} problem(s), {len(not_found)} 404(s) in the server log"
    )
    if args.screenshot:
        print(f"screenshot: {args.screenshot}")
    shutil.rmtree(profile, ignore_errors=True)
    return 1 if n_bad or not_found else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
