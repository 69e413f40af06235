#!/usr/bin/env python3
"""Browser test of the web client: two headless Chromium users and one chat-cli user chat through a
real `chat-cli serve --web` on loopback; all three must see the same messages in the same order.

Drives Chromium through chromedriver's WebDriver protocol (HTTP + JSON, Python's standard library
only). Writes a screenshot of each page to OUT (alice.png, bob.png, and bob-disconnected.png once
the server is gone). Every wait is bounded; every process started here is stopped here.

With --cluster NATS_URLS the browsers' server is one instance of a cluster (`serve --cluster --web`) and
the chat-cli user is on another instance: the same checks, across instances.

Usage: browser_test.py --bin target/debug/chat-cli --out target/web-screenshots [--cluster nats://...]
"""

import argparse
import base64
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

WAIT = 20.0  # seconds, for any one thing to happen


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Process:
    """A child process whose standard output lines are read on a thread."""

    def __init__(self, name, args, stdin=False):
        self.name = name
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def say(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class JsonProcess(Process):
    """A chat-cli with --json: every stdout line is an event, all kept in `events`."""

    def __init__(self, name, args, stdin=False):
        super().__init__(name, args, stdin)
        self.events = []

    def event_of(self, kind, where=lambda e: True):
        deadline = time.monotonic() + WAIT
        for seen in self.events:
            if seen["type"] == kind and where(seen) and not seen.get("_taken"):
                seen["_taken"] = True
                return seen
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            event = json.loads(line)
            self.events.append(event)
            if event["type"] == kind and where(event):
                event["_taken"] = True
                return event
        raise AssertionError(f"{self.name}: no {kind} event in time; saw {self.events}")

    def messages(self):
        return [e for e in self.events if e["type"] == "message"]


class WebDriver:
    """One browser session through chromedriver (W3C WebDriver)."""

    def __init__(self, driver_url, chromium, profile):
        self.url = driver_url
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--window-size=1100,640",
                            "--force-device-scale-factor=1",
                            f"--user-data-dir={profile}",
                        ],
                    },
                }
            }
        }
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        full = self.url + path
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(full, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=WAIT * 3) as response:
                return json.loads(response.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            raise AssertionError(f"WebDriver {method} {path}: {e.read().decode(errors='replace')}") from None

    def do(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def get(self, url):
        self.do("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.do("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        element = self.do("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(element.values()))

    def type(self, css, text):
        self.do("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css):
        self.do("POST", f"/element/{self.find(css)}/click", {})

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.do("GET", "/screenshot")))

    def quit(self):
        try:
            self.do("DELETE", "")
        except Exception:  # the browser may be gone already
            pass


class Page:
    """The chat page as a person uses it."""

    def __init__(self, name, driver, web):
        self.name = name
        self.driver = driver
        driver.get(f"http://{web}/")
        wait_for(f"{name}: the login form", lambda: driver.js("return !document.getElementById('login').hidden"))
        driver.type("#login-name", name)
        driver.click("#login-button")
        self.wait_state("connected")

    def state(self):
        return self.driver.js("return document.body.dataset.state || ''")

    def wait_state(self, state):
        wait_for(f"{self.name}: state {state}", lambda: self.state() == state)

    def say(self, line):
        self.driver.type("#text", line + "\ue007")  # Enter

    def view(self, index):
        self.driver.js("document.querySelectorAll('#views li')[arguments[0]].click()", index)

    def rows(self):
        """The message rows shown, as (id, from, text)."""
        return [
            tuple(r)
            for r in self.driver.js(
                "return [...document.querySelectorAll('#messages .msg')]"
                ".map(li => [li.dataset.id, li.dataset.from, li.querySelector('.text').textContent])"
            )
        ]

    def wait_text(self, text):
        wait_for(f"{self.name}: a message {text!r}", lambda: any(t == text for _, _, t in self.rows()))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--chromedriver", default=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    parser.add_argument("--cluster", help="NATS URLs: the browsers on one instance, chat-cli on another")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    started = time.monotonic()
    cleanup = []
    scratch = tempfile.mkdtemp(prefix="chat-web-test-")
    try:
        data = os.path.join(scratch, "data")
        storage = ["--cluster", args.cluster] if args.cluster else ["--data-dir", data]
        server = JsonProcess(
            "server",
            [args.bin, "serve", "--listen", "127.0.0.1:0", "--web", "127.0.0.1:0", "--json", *storage],
        )
        cleanup.append(server.stop)
        listening = server.event_of("listening")
        addr, web = listening["addr"], listening["web_addr"]
        if args.cluster:
            # carol's instance: another one of the same cluster.
            other = JsonProcess("other", [args.bin, "serve", "--listen", "127.0.0.1:0", "--json", *storage])
            cleanup.append(other.stop)
            addr = other.event_of("listening")["addr"]

        port = free_port()
        driver = Process("chromedriver", [args.chromedriver, f"--port={port}", "--allowed-ips=127.0.0.1"])
        cleanup.append(driver.stop)
        driver_url = f"http://127.0.0.1:{port}"

        def driver_up():
            try:
                with urllib.request.urlopen(driver_url + "/status", timeout=1) as r:
                    return json.loads(r.read())["value"]["ready"]
            except OSError:
                return False

        wait_for("chromedriver", driver_up)
        browsers = []
        for name in ["alice", "bob"]:
            browser = WebDriver(driver_url, args.chromium, os.path.join(scratch, f"profile-{name}"))
            cleanup.insert(0, browser.quit)
            browsers.append(browser)

        carol = JsonProcess("carol", [args.bin, "--json", "--name", "carol", "--server", addr], stdin=True)
        cleanup.insert(0, carol.stop)
        carol.event_of("ready")
        alice = Page("alice", browsers[0], web)
        bob = Page("bob", browsers[1], web)
        carol.event_of("joined", lambda e: e["name"] == "bob")

        # Broadcasts from a browser and from the terminal.
        alice.say("hello from alice's browser")
        bob.wait_text("hello from alice's browser")
        carol.say("hello from carol's terminal")
        alice.wait_text("hello from carol's terminal")
        bob.wait_text("hello from carol's terminal")

        # A room: everyone joins #web, bob writes in it (his view follows the room he joined).
        for page in (alice, bob):
            page.say("/join #web")
            wait_for(f"{page.name}: in #web", lambda p=page: p.driver.js(
                "return document.getElementById('target').textContent") == "to #web")
        carol.say("/join #web")
        carol.event_of("history", lambda e: e.get("room") == "#web")
        bob.say("a message for #web")
        alice.wait_text("a message for #web")
        carol.event_of("message", lambda e: e["text"] == "a message for #web")

        # Back to "All conversations". DMs: browser to browser, terminal
        # to browser; a multicast from the terminal (each waits for the one before: a known order).
        bob.view(0)
        alice.view(0)
        alice.say("/msg bob just between us")
        bob.wait_text("just between us")
        carol.say("/msg alice hi alice, carol here")
        alice.wait_text("hi alice, carol here")
        carol.say("/mc alice,bob to both browsers")
        for page in (alice, bob):
            page.wait_text("to both browsers")
        carol.event_of("message", lambda e: e["text"] == "to both browsers")

        # One order: the messages each pair sees in common come in the same order, the server's.
        carol_rows = [(m["id"], m["from"], m["text"]) for m in carol.messages()]
        views = {"alice": alice.rows(), "bob": bob.rows(), "carol": carol_rows}
        for name, rows in views.items():
            seqs = [int(i.split(":")[1]) for i, _, _ in rows]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"{name}: not in server order: {rows}"
        for a in views:
            for b in views:
                common_a = [r for r in views[a] if r in views[b]]
                common_b = [r for r in views[b] if r in views[a]]
                assert common_a == common_b, f"{a} and {b} disagree on the order"
        assert [t for _, _, t in views["alice"]] == [
            "hello from alice's browser",
            "hello from carol's terminal",
            "a message for #web",
            "just between us",
            "hi alice, carol here",
            "to both browsers",
        ], views["alice"]
        assert "hi alice, carol here" not in [t for _, _, t in views["bob"]], "a DM reached a third party"
        # Bodies are text: markup typed by a user is shown as typed.
        bob.say("<img src=x onerror=alert(1)> <b>not bold</b>")
        alice.wait_text("<img src=x onerror=alert(1)> <b>not bold</b>")
        assert alice.driver.js("return document.querySelectorAll('#messages img, #messages b').length") == 0

        # Leaving the page and coming back (same tab) resumes the session from sessionStorage: what
        # was said meanwhile arrives once, nobody saw bob leave, no login form.
        bob.driver.get("about:blank")
        carol.say("while bob was away")  # to #web, carol's conversation since /join
        carol.event_of("message", lambda e: e["text"] == "while bob was away")
        bob.driver.get(f"http://{web}/")
        bob.wait_state("connected")
        bob.wait_text("while bob was away")
        assert not bob.driver.js("return !document.getElementById('login').hidden"), "resumed without a login"
        time.sleep(0.3)  # the history answer that fills the reloaded page must not repeat it
        assert [t for _, _, t in bob.rows()].count("while bob was away") == 1, bob.rows()
        assert not any(e["type"] == "left" and e["name"] == "bob" for e in carol.events), "bob never left"

        # The people list and times.
        people = alice.driver.js("return [...document.querySelectorAll('#people li')].map(li => li.textContent)")
        assert people == ["alice (you)", "bob", "carol"], people
        times = alice.driver.js("return [...document.querySelectorAll('#messages .msg time')].map(t => t.textContent)")
        assert all(times), f"every message shows its time: {times}"

        alice.driver.screenshot(os.path.join(args.out, "alice.png"))
        bob.driver.screenshot(os.path.join(args.out, "bob.png"))

        # The server goes away: the pages say so, and keep trying.
        server.stop()
        for page in (alice, bob):
            page.wait_state("reconnecting")
        bob.driver.screenshot(os.path.join(args.out, "bob-disconnected.png"))
        print(f"browser test: passed in {time.monotonic() - started:.1f} s; screenshots in {args.out}")
        return 0
    finally:
        for stop in cleanup:
            stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
