"""rvfctl serve: upstream's v1 HTTP API (rvf-server/src/http.rs field
names) on a store file and on a mount, with real clients (curl, Python's
urllib) and the page in headless Chromium (screenshot kept in the test's
tmp dir, no JavaScript error)."""

import json
import os
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.request

import pytest

import upstream_writer as uw
from mountlib import mount, rvffs  # noqa: F401  (fixtures)
from mountlib import build_dir_path, int_rows, make_store


class Server:
    def __init__(self, store, *args):
        exe = build_dir_path() / "ctl" / "rvfctl"
        self.p = subprocess.Popen([str(exe), "serve", str(store), "--port", "0", "--json",
                                   *map(str, args)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        if not line:
            raise AssertionError("serve printed nothing: " + self.p.stderr.read())
        info = json.loads(line)
        assert info["status"] == "serving"
        self.url = info["url"].rstrip("/")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            assert self.p.wait(timeout=30) == 0
        err = self.p.stderr.read()
        assert "AddressSanitizer" not in err and "runtime error" not in err, err


@pytest.fixture
def serve():
    servers = []

    def start(store, *args):
        s = Server(store, *args)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.stop()


def curl(*args):
    cp = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *args], capture_output=True,
                        text=True, timeout=60)
    body, code = cp.stdout.rsplit("\n", 1)
    return int(code), body


def post(url, obj):
    req = urllib.request.Request(url, data=json.dumps(obj).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


def test_v1_api_with_curl_and_python(store, run_ctl, serve, ref):
    s = store(dim=3)
    srv = serve(s)
    assert srv.url.startswith("http://127.0.0.1:")  # loopback by default
    assert curl(srv.url + "/v1/health") == (200, '{"status":"ok"}')
    code, body = curl("-XPOST", srv.url + "/v1/ingest", "-H", "Content-Type: application/json",
                      "-d", '{"vectors":[[1,2,3],[4,5,6],[0,0,1]],"ids":[1,2,3]}')
    assert code == 200 and json.loads(body) == {"accepted": 3, "rejected": 0, "epoch": 1}
    code, r = post(srv.url + "/v1/query", {"vector": [1, 2, 3], "k": 2})
    assert code == 200 and r == {"results": [{"id": 1, "distance": 0.0},
                                             {"id": 3, "distance": 9.0}]}
    code, r = post(srv.url + "/v1/delete", {"ids": [2, 77]})
    assert code == 200 and r == {"deleted": 1, "epoch": 2}
    code, _, raw = get(srv.url + "/v1/status")
    st = json.loads(raw)
    for k in ("total_vectors", "total_segments", "file_size", "current_epoch", "profile_id",
              "dead_space_ratio", "read_only"):
        assert k in st
    assert st["total_vectors"] == 2 and st["current_epoch"] == 2 and st["read_only"] is False
    # bad requests: clear errors, nothing changed
    assert post(srv.url + "/v1/query", {"vector": [1, 2], "k": 2})[0] == 400
    assert post(srv.url + "/v1/query", {"vector": [1, 2, 3], "k": 0})[0] == 400
    assert post(srv.url + "/v1/delete", {"ids": []})[0] == 400
    assert post(srv.url + "/v1/ingest", {"vectors": [[1, 2]], "ids": [9]})[0] == 400
    assert curl("-XPOST", srv.url + "/v1/query", "-d", "not json")[0] == 400
    assert curl("-XPUT", srv.url + "/v1/status")[0] == 405
    assert curl(srv.url + "/v1/nothing")[0] == 404
    srv.stop()
    d = ref.dump(s)
    assert d["openError"] is None and d["all_ids"] == [1, 3]


def test_request_size_limit(store, serve):
    s = store(dim=3)
    srv = serve(s, "--max-body", 1024)
    big = json.dumps({"vectors": [[0.5, 0.5, 0.5]] * 200, "ids": list(range(200))})
    code, body = curl("-XPOST", srv.url + "/v1/ingest", "--data-binary", big)
    assert code == 413 and "too large" in body
    assert json.loads(curl(srv.url + "/v1/status")[1])["total_vectors"] == 0


def test_embedded_dashboard_is_served(tmp_path, serve):
    dash = uw.dashboard_payload(files=[("index.html", b"<html><body>mine</body></html>"),
                                       ("assets/app.js", b"console.log(1)")])
    s = uw.build_store(tmp_path / "d.rvf", [(uw.T_DASHBOARD, dash)], algo="crc32-rotated",
                       dim=2)
    srv = serve(s)
    code, ctype, body = get(srv.url + "/")
    assert body == b"<html><body>mine</body></html>" and ctype.startswith("text/html")
    code, ctype, body = get(srv.url + "/assets/app.js")
    assert body == b"console.log(1)" and ctype == "text/javascript"
    assert curl(srv.url + "/../etc/passwd")[0] == 404


def _chromium():
    for c in ("chromium", "chromium-browser"):
        if shutil.which(c):
            return c
    return None


def page_store(store, run_ctl):
    s = make_store(run_ctl, store, dim=4, rows=int_rows(20, 4))
    run_ctl("delete", s, "--ids", "3,4")
    return s


def test_what_the_page_asks_for(store, run_ctl, serve):
    """Every request the page at / makes, as a browser makes them (one
    kept-alive connection, plus the browser's /favicon.ico): the server side
    of test_page_in_headless_chromium, in every pass (under ASan too), where
    the Chromium test runs in the background pass only."""
    s = page_store(store, run_ctl)
    srv = serve(s)
    urls = ["/", "/v1/status", "/v1/segments", "/v1/witness", "/favicon.ico"]
    end = "\n--end of response: %{http_code} %{num_connects}--\n"
    cp = subprocess.run(["curl", "-s", "-w", end] + [srv.url + u for u in urls],
                        capture_output=True, text=True, timeout=60)
    pieces = re.split(r"\n--end of response: (\d+) (\d+)--\n", cp.stdout)
    assert len(pieces) == 3 * len(urls) + 1 and pieces[-1] == "", cp.stdout[-2000:]
    got = {u: (int(pieces[3 * i + 1]), pieces[3 * i]) for i, u in enumerate(urls)}
    connects = sum(int(pieces[3 * i + 2]) for i in range(len(urls)))
    assert connects == 1, f"curl opened {connects} connections for {len(urls)} requests"
    code, page = got["/"]
    assert code == 200 and 'data-state="loading"' in page and "/v1/segments" in page
    st = json.loads(got["/v1/status"][1])
    assert got["/v1/status"][0] == 200 and st["total_vectors"] == 18
    code, segs = got["/v1/segments"][0], json.loads(got["/v1/segments"][1])
    assert code == 200 and segs["file_size"] == s.stat().st_size
    types = [x["type"] for x in segs["segments"]]
    assert types.count("vec") == 1 and types.count("witness") == 2, types
    for x in segs["segments"]:
        assert x["offset"] + 64 + x["payload_length"] <= segs["file_size"], x
        assert x["content_hash_algo"] and x["hash_ok"] is True, x
    code, w = got["/v1/witness"][0], json.loads(got["/v1/witness"][1])
    assert code == 200 and [e["action"].split(":")[0] for e in w["entries"]] == [
        "ingest", "delete"]
    assert all(e["time"] and e["kind"] and e["link"] for e in w["entries"])
    assert got["/favicon.ico"][0] == 404


# The page's JavaScript in Chromium: what it tests is the page (the same
# bytes in every build); the server side of it is test_what_the_page_asks_for,
# in every pass.  Two Chromium starts are the heaviest thing of this file.
@pytest.mark.background_pass
def test_page_in_headless_chromium(store, run_ctl, serve, tmp_path):
    exe = _chromium()
    assert exe, "chromium is not installed (tests/run-all.sh installs it)"
    s = page_store(store, run_ctl)
    srv = serve(s)
    home = tmp_path / "chromium-home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home))
    base = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
            "--virtual-time-budget=8000"]
    dom = subprocess.run(base + ["--dump-dom", srv.url + "/"], capture_output=True, text=True,
                         timeout=180, env=env)
    assert 'data-state="ready"' in dom.stdout, dom.stdout[-2000:] + dom.stderr[-2000:]
    assert "Uncaught" not in dom.stderr, dom.stderr[-3000:]
    # the map has one block per segment; the status shows the store
    assert dom.stdout.count('data-type="vec"') == 1
    assert dom.stdout.count('data-type="witness"') == 2
    assert "total_vectors" in dom.stdout and ">18<" in dom.stdout
    shot = tmp_path / "serve-page.png"
    subprocess.run(base + ["--window-size=1200,900", f"--screenshot={shot}", srv.url + "/"],
                   capture_output=True, timeout=180, env=env)
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_serve_a_mounted_store_through_the_daemon(store, run_ctl, serve, mount):
    s = make_store(run_ctl, store, dim=3, rows=int_rows(4, 3))
    m = mount(s)
    srv = serve(m.path)
    code, r = post(srv.url + "/v1/ingest", {"vectors": [[9, 9, 9]], "ids": [50]})
    assert code == 200 and r["accepted"] == 1
    assert "50" in m.ls("vectors")
    code, r = post(srv.url + "/v1/query", {"vector": [9, 9, 9], "k": 1})
    assert r["results"] == [{"id": 50, "distance": 0.0}]
    code, r = post(srv.url + "/v1/delete", {"ids": [1, 50]})
    assert code == 200 and r["deleted"] == 2
    assert sorted(int(x) for x in m.ls("vectors")) == [2, 3, 4]
    st = json.loads(curl(srv.url + "/v1/status")[1])
    assert st["total_vectors"] == 3


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare(1) for a private mount namespace")
def test_serve_without_libmicrohttpd_names_the_package(store):
    """rvfctl loads libmicrohttpd only when serve runs: the other commands
    start without it, and serve says which package is missing.  The
    library is made unloadable in a private mount namespace (/dev/null
    bound over it)."""
    lib = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout
    paths = [ln.split(" => ")[1] for ln in lib.splitlines()
             if "libmicrohttpd.so.12 " in ln and "x86-64" in ln]
    assert paths, lib
    exe = str(build_dir_path() / "ctl" / "rvfctl")
    s = store(dim=2)
    hide = " && ".join(f"mount --bind /dev/null {p}" for p in paths)
    script = f'{hide} && "$1" --json status "$2" && exec "$1" serve "$2" --port 0'
    cp = subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", exe, str(s)],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 1, (cp.returncode, cp.stdout, cp.stderr)
    assert json.loads(cp.stdout)["dimension"] == 2  # status ran without it
    assert "serve needs libmicrohttpd12 (apt install libmicrohttpd12)" in cp.stderr, cp.stderr
    assert "AddressSanitizer" not in cp.stderr and "runtime error" not in cp.stderr
