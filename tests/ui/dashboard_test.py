#!/usr/bin/env python3
"""The dashboard in a real browser (make test-ui).

Starts a local 3-node cluster with scripts/raftkv-cluster and a light write load, opens a
follower's dashboard in Debian's headless Chromium (driven by chromedriver over the W3C WebDriver
protocol, with nothing but Python's standard library), then kills the leader and checks that the
page, without a reload, shows the old leader down and a new leader within seconds, and the new
leader's election among the recent events. The node is then started again and must come back as a
follower. Screenshots go to build/ui/.

Usage: tests/ui/dashboard_test.py [--bin build/tools] [--out build/ui]
Exit status 0 when every check held; otherwise 1 with the check that failed.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fail(Exception):
    pass


class WebDriver:
    """The few W3C WebDriver commands the test needs, over chromedriver's HTTP port."""

    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.session = None

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.load(response)["value"]
        except urllib.error.HTTPError as error:
            raise Fail(f"WebDriver {method} {path}: {error.read().decode(errors='replace')}")

    def start(self, user_data_dir):
        # The flags Chromium needs on a machine without a display or outside network access.
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                f"--user-data-dir={user_data_dir}"]
        value = self.call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}}})
        self.session = value["sessionId"]

    def go(self, url):
        self.call("POST", f"/session/{self.session}/url", {"url": url})

    def script(self, source):
        return self.call("POST", f"/session/{self.session}/execute/sync",
                         {"script": source, "args": []})

    def screenshot(self, path):
        import base64
        png = self.call("GET", f"/session/{self.session}/screenshot")
        with open(path, "wb") as f:
            f.write(base64.b64decode(png))

    def quit(self):
        if self.session:
            try:
                self.call("DELETE", f"/session/{self.session}")
            except Exception:
                pass


# What the page shows, read from its DOM (the ids and data attributes of index.html/dashboard.js).
PAGE_STATE = """
const rows = [...document.querySelectorAll('#nodes tbody tr')];
return {
  leader: Number(document.getElementById('leader').dataset.leader),
  summary: document.getElementById('leader').textContent,
  roles: Object.fromEntries(rows.map(r => [r.id, r.dataset.role])),
  events: [...document.querySelectorAll('#events li')].map(li => li.textContent),
  opsPoints: state.ops.filter(p => p.value > 0).length,
};
"""


def wait_for(driver, what, check, seconds):
    """Polls the page every 100 ms until check(page) holds; returns (page, seconds taken)."""
    began = time.monotonic()
    page = None
    while time.monotonic() - began < seconds:
        page = driver.script(PAGE_STATE)
        if check(page):
            return page, time.monotonic() - began
        time.sleep(0.1)
    raise Fail(f"{what}: not within {seconds} s; the page shows {json.dumps(page)}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=os.path.join(REPO, "build", "tools"))
    parser.add_argument("--out", default=os.path.join(REPO, "build", "ui"))
    options = parser.parse_args()
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(tool):
            print(f"dashboard_test: {tool} is missing: run scripts/install-deps.sh ui",
                  file=sys.stderr)
            return 1
    os.makedirs(options.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="raftkv-ui-")
    # Below Linux's ephemeral ports and away from the other tests' bands (2000-8999, 12000-31999).
    base_port = 9000 + os.getpid() % 250 * 8
    env = dict(os.environ, RAFTKV_CLUSTER_DIR=os.path.join(work, "cluster"),
               RAFTKV_BASE_PORT=str(base_port), RAFTKV_METRICS_BASE_PORT=str(base_port + 3),
               RAFTKV_BIN=options.bin)
    cluster = os.path.join(REPO, "scripts", "raftkv-cluster")

    def run(*args, check=True):
        result = subprocess.run([cluster, *args], env=env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise Fail(f"raftkv-cluster {' '.join(args)}: {result.stdout}{result.stderr}")
        return result.stdout.strip()

    driver_port = free_port()
    chromedriver = subprocess.Popen([CHROMEDRIVER, f"--port={driver_port}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = WebDriver(driver_port)
    load = None
    try:
        run("up", "3")
        leader = int(run("leader"))
        follower = (leader + 1) % 3
        nodes = run("nodes")
        # A light write load, so the chart has something to draw.
        load = subprocess.Popen(
            [os.path.join(REPO, "build", "bench", "raftkv-bench"), "--nodes", nodes, "--op", "set",
             "--concurrency", "4", "--duration", "120s", "--warmup", "0s"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):  # chromedriver listens within a second or so
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{driver_port}/status", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        driver.start(os.path.join(work, "chromium-profile"))
        url = f"http://127.0.0.1:{base_port + 3 + follower}/"
        driver.go(url)
        page, _ = wait_for(
            driver, "the page shows the leader and three live nodes",
            lambda p: p["leader"] == leader and len(p["roles"]) == 3 and
            "down" not in p["roles"].values() and p["opsPoints"] >= 3, 20)
        before = os.path.join(options.out, "dashboard-before.png")
        driver.screenshot(before)
        print(f"dashboard_test: {url} shows leader {leader}: {page['summary']}")

        killed_at = time.monotonic()
        run("kill", str(leader))
        page, took = wait_for(
            driver, "the page shows a new leader and the old one down",
            lambda p: p["leader"] not in (-1, leader) and
            p["roles"].get(f"node-{leader}") == "down", 10)
        new_leader = page["leader"]
        print(f"dashboard_test: {took:.1f} s after the kill the page shows node {leader} down "
              f"and {page['summary']}")
        page, _ = wait_for(
            driver, "the new leader's election among the recent events",
            lambda p: any(f"node {new_leader}: became leader" in e for e in p["events"]), 5)
        after = os.path.join(options.out, "dashboard-after-leader-kill.png")
        driver.screenshot(after)

        run("start", str(leader))
        wait_for(driver, f"node {leader} back as a follower",
                 lambda p: p["roles"].get(f"node-{leader}") == "follower", 15)
        print(f"dashboard_test: node {leader} restarted and shown as a follower "
              f"({time.monotonic() - killed_at:.1f} s after the kill)")
        print(f"dashboard_test: screenshots {before} and {after}")
        print("dashboard_test: passed")
        return 0
    except Fail as failure:
        print(f"dashboard_test: FAILED: {failure}", file=sys.stderr)
        try:
            driver.screenshot(os.path.join(options.out, "dashboard-failure.png"))
        except Exception:
            pass
        return 1
    finally:
        driver.quit()
        chromedriver.terminate()
        if load:
            load.terminate()
        run("down", check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
