#!/usr/bin/env python3
"""Drives the running stack over HTTP as a person with a browser would (forms, CSRF tokens,
the session cookie), for scripts/test-compose.

usage: drive.py BASE_URL STATE_DIR COMMAND ARGS...
  setup USER PASSWORD                      first-run setup (creates the Administrator)
  login USER PASSWORD [FORWARDED_FOR]      sign in again (new session cookie), optionally as
                                           a reverse proxy would send it (X-Forwarded-For)
  add-account HOST PORT USER PASSWORD      add an IMAP account (no TLS) polling every 10 s
  wait-messages SECONDS SUBJECT...         until /messages lists every subject
  wait-quarantine SECONDS SUBJECT...       until /quarantine lists every subject
  absent-from-messages SUBJECT...          /messages lists none of them
"""

import html
import html.parser
import http.cookiejar
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

BASE, STATE = sys.argv[1], sys.argv[2]
JAR = http.cookiejar.LWPCookieJar(f"{STATE}/cookies.txt")
try:
    JAR.load(ignore_discard=True)
except FileNotFoundError:
    pass
OPENER = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(JAR))
HEADERS = {}


def fail(text):
    print(f"FAILED: {text}", file=sys.stderr)
    sys.exit(1)


def request(path, form=None):
    """GET (or POST `form`), following redirects; returns (final path, status, body)."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(BASE + path, data=data, headers=HEADERS)
    # Right after a (re)start the port may not answer yet: retry refused connections briefly.
    for attempt in range(30):
        try:
            with OPENER.open(req, timeout=30) as r:
                body, status, url = r.read().decode(), r.status, r.geturl()
            break
        except urllib.error.HTTPError as e:
            body, status, url = e.read().decode(errors="replace"), e.code, e.geturl()
            break
        except (urllib.error.URLError, ConnectionError) as e:
            if attempt == 29:
                fail(f"{path}: {e}")
            time.sleep(1)
    JAR.save(ignore_discard=True)
    return urllib.parse.urlsplit(url).path, status, body


def csrf(body):
    m = re.search(r'name="csrf_token" value="([^"]+)"', body)
    if not m:
        fail("no CSRF token on the page")
    return m.group(1)


def alert(body):
    m = re.search(r'role="alert">(.*?)<', body, re.S)
    return html.unescape(m.group(1).strip()) if m else ""


class FormFields(html.parser.HTMLParser):
    """The named fields of the form with id `form_id`, with their current values."""

    def __init__(self, form_id):
        super().__init__()
        self.form_id, self.inside, self.fields, self.select = form_id, False, {}, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        elif not self.inside:
            return
        elif tag == "input" and "name" in a:
            if a.get("type") not in ("checkbox", "radio") or "checked" in a:
                self.fields[a["name"]] = a.get("value") or ""
        elif tag == "select":
            self.select = a.get("name")
        elif tag == "option" and self.select:
            if "selected" in a or self.select not in self.fields:
                self.fields[self.select] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = None


def setup(user, password):
    path, status, body = request("/setup")
    if status != 200:
        fail(f"GET /setup answered {status}")
    path, status, body = request(
        "/setup",
        {
            "csrf_token": csrf(body),
            "username": user,
            "email": "",
            "password": password,
            "password_confirm": password,
        },
    )
    if status != 200 or path != "/":
        fail(f"setup ended on {path} with {status}: {alert(body)}")
    if user not in body:
        fail("the dashboard after setup does not name the new Administrator")
    print(f"set up: Administrator {user} signed in, dashboard shown")


def login(user, password, forwarded_for=None):
    JAR.clear()
    if forwarded_for:
        HEADERS["X-Forwarded-For"] = forwarded_for
    _, _, body = request("/login")
    path, status, body = request(
        "/login", {"csrf_token": csrf(body), "username": user, "password": password}
    )
    if status != 200 or path != "/":
        fail(f"sign-in ended on {path} with {status}: {alert(body)}")
    print(f"signed in as {user}")


def add_account(host, port, user, password):
    _, status, body = request("/accounts")
    if status != 200:
        fail(f"GET /accounts answered {status}")
    form = {
        "csrf_token": csrf(body),
        "name": "Compose test mailbox",
        "host": host,
        "tls": "none",
        "port": port,
        "username": user,
        "password": password,
        "folders": "",
        "exclude_folders": "",
        "delete_after_days": "",
        "pin_cert": "",
    }
    path, status, body = request("/accounts", form)
    m = re.fullmatch(r"/accounts/(\d+)", path)
    if status != 200 or not m:
        fail(f"adding the account ended on {path} with {status}: {alert(body)}")
    # New accounts poll every sync.default_poll_secs (5 minutes): check every 10 s instead,
    # through the account's edit form like a person would.
    fields = FormFields("edit-account")
    fields.feed(body)
    fields.fields["poll_secs"] = "10"
    path, status, body = request(f"/accounts/{m.group(1)}", fields.fields)
    if status != 200 or field_value(body, "poll_secs") != "10":
        fail(f"setting the poll interval ended on {path} with {status}: {alert(body)}")
    print(f"account {m.group(1)} added ({user} on {host}:{port}), polling every 10 s")


def field_value(body, name):
    fields = FormFields("edit-account")
    fields.feed(body)
    return fields.fields.get(name, "")


def listed(path, subjects):
    _, status, body = request(path)
    if status != 200:
        fail(f"GET {path} answered {status}")
    text = html.unescape(body)
    return [s for s in subjects if s not in text]


def wait_listed(path, seconds, subjects):
    deadline = time.time() + float(seconds)
    while missing := listed(path, subjects):
        if time.time() > deadline:
            fail(f"{path} does not list {missing} after {seconds} s")
        time.sleep(2)
    print(f"{path} lists {len(subjects)} expected subject(s)")


def main():
    cmd, args = sys.argv[3], sys.argv[4:]
    if cmd == "setup":
        setup(*args)
    elif cmd == "login":
        login(*args)
    elif cmd == "add-account":
        add_account(*args)
    elif cmd == "wait-messages":
        wait_listed("/messages", args[0], args[1:])
    elif cmd == "wait-quarantine":
        wait_listed("/quarantine", args[0], args[1:])
    elif cmd == "absent-from-messages":
        shown = [s for s in args if s not in listed("/messages", args)]
        if shown:
            fail(f"/messages lists quarantined mail: {shown}")
        print(f"/messages does not list the {len(args)} quarantined message(s)")
    else:
        fail(f"unknown command {cmd}")


main()
