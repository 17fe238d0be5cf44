#!/usr/bin/python3
"""Load and fault runs against a real `mkdseg serve` (make load, make faults, make reliability).

Each part starts its own server on a fresh PostgreSQL database (scripts/pg.sh fresh
mkdseg_rel) and a private data folder, drives it over real HTTP, checks what must hold and
prints one JSON object per part; --out writes them all to a file (build/reliability.json).
Standard library only (http.client, sockets, threads). Parts:

  load:    held_uploads   N clients upload a CT for D seconds while a gate file holds the
                          engine pool (MKDSEG_TEST_SEGMENT_GATE): every answer is 200 or 503
                          with Retry-After, each 200 a complete label map; /healthz latency
                          percentiles meanwhile; the server's peak RSS against its bound
           idle_keepalive 1000 idle keep-alive connections, then /healthz and RSS
           slowloris      header, JSON body and upload trickles (headers cut by --header-timeout,
                          bodies by --min-body-rate after --body-grace, no partial file left),
                          /healthz meanwhile
           per_ip         --per-ip-connections N: N+1 connections from one address
           vanishing      clients that close mid-upload: no partial file left in data/tmp
  faults:  postgres       PostgreSQL stopped and restarted during uploads and a training job:
                          /readyz 503 then 200, the job finishes once, one model row
           sigterm_upload SIGTERM while a large upload is half sent: answered or cleanly
                          closed, exit 0, nothing left in data/tmp
           enospc         the data folder on a small tmpfs: uploads until it is full (507),
                          no partial blob, every blob matches its sha256, recovery once the
                          tmpfs grows (needs root for mount; skipped otherwise)
The kill -9 points of training and evaluation and the deleted or corrupted blobs are tests
in `make test` (svc/killed_*, errors/*).
"""
import argparse
import gzip
import hashlib
import http.client
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(TOP, "build", "mkdseg")
BOUNDARY = "mkdsegrel"


def pg(*args):
    return subprocess.run([os.path.join(TOP, "scripts", "pg.sh"), *args], check=True,
                          capture_output=True, text=True).stdout.strip()


class Server:
    """One `mkdseg serve` on port 0 with its own database and data folder."""

    def __init__(self, work, args=(), env=None, data_dir=None):
        self.work = work
        self.url = pg("fresh", "mkdseg_rel")
        self.data = data_dir or os.path.join(work, "data")
        self.log = os.path.join(work, "server.log")
        e = dict(os.environ, MKDSEG_THREADS="1", **(env or {}))
        cmd = [BIN, "serve", "--host", "127.0.0.1", "--port", "0", "--database-url", self.url,
               "--data-dir", self.data, "--job-poll", "1", *args]
        self.logf = open(self.log, "w")
        self.p = subprocess.Popen(cmd, stderr=self.logf, stdout=subprocess.DEVNULL, env=e, cwd=TOP)
        self.port = None
        for _ in range(1200):
            m = re.search(r'"msg":"listening".*?"port":(\d+)', open(self.log).read())
            if m:
                self.port = int(m.group(1))
                break
            if self.p.poll() is not None:
                break
            time.sleep(0.1)
        if not self.port:
            raise RuntimeError("server did not start:\n" + open(self.log).read()[-3000:])

    def request(self, method, path, body=None, headers=None, timeout=600):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, dict(r.getheaders()), data
        finally:
            c.close()

    def json(self, method, path, obj=None):
        body = json.dumps(obj).encode() if obj is not None else None
        st, h, d = self.request(method, path, body, {"Content-Type": "application/json"} if body else {})
        return st, json.loads(d) if d else None

    def rss_kb(self, field="VmHWM"):
        for line in open(f"/proc/{self.p.pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return -1

    def stop(self, sig=signal.SIGTERM, timeout=120):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait()
        self.logf.close()
        return rc


def multipart(fields):
    """fields: list of (name, filename or None, bytes). Returns (body, content type)."""
    out = bytearray()
    for name, fn, data in fields:
        out += f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"".encode()
        if fn:
            out += f"; filename=\"{fn}\"\r\nContent-Type: application/octet-stream".encode()
        out += b"\r\n\r\n" + data + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={BOUNDARY}"


def phantom(work, name, shape, seed=1, modality="ct"):
    img, lab = os.path.join(work, name + ".nii.gz"), os.path.join(work, name + "_label.nii.gz")
    subprocess.run([BIN, "phantom", "--modality", modality, "--seed", str(seed), "--shape",
                    ",".join(map(str, shape)), "--image", img, "--label", lab], check=True,
                   stderr=subprocess.DEVNULL)
    return img, lab


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None


def tmp_parts(data):
    d = os.path.join(data, "tmp")
    return sorted(f for f in os.listdir(d)) if os.path.isdir(d) else []


def wait_until(pred, limit=120, step=0.1):
    """Polls pred until it holds; the limit only catches a hang."""
    end = time.time() + limit
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def healthz_probe_process(port, conn):
    """/healthz every 20 ms from its own process, until the pipe says stop; sends the latencies
    back. A thread of this interpreter would wait for the GIL behind the upload threads and
    measure that wait as the server's latency."""
    lat = []
    while not conn.poll():
        t = time.perf_counter()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            c.request("GET", "/healthz")
            st = c.getresponse().status
            c.close()
            lat.append(((time.perf_counter() - t) * 1e3, st))
        except OSError as e:
            lat.append((None, str(e)))
        time.sleep(0.02)
    conn.send(lat)


def server_ms(log, pattern):
    """The server's own time (its access lines' "ms") for each request on route `pattern`."""
    out = []
    for line in log.splitlines():
        if '"route":"%s"' % pattern in line:
            m = re.search(r'"ms":([0-9.]+)', line)
            if m:
                out.append(float(m.group(1)))
    return out


# ---- load ----------------------------------------------------------------------------------

def held_uploads(work, clients, seconds, shape):
    img, _ = phantom(work, "ct_load", shape)
    vol = open(img, "rb").read()
    body, ctype = multipart([("vol", "ct_load.nii.gz", vol)])
    nvox = shape[0] * shape[1] * shape[2]
    gate = os.path.join(work, "gate")
    open(gate, "w").close()
    workers, queue = 2, 4
    srv = Server(work, ["--segment-workers", str(workers), "--queue-size", str(queue),
                        "--max-connections", "512", "--per-ip-connections", "512"],
                 env={"MKDSEG_TEST_SEGMENT_GATE": gate})
    rss0 = srv.rss_kb("VmRSS")
    results, lock = [], threading.Lock()
    stop_at = time.time() + seconds

    def client():
        while time.time() < stop_at:
            t = time.perf_counter()
            try:
                st, h, d = srv.request("POST", "/segment", body, {"Content-Type": ctype})
            except OSError as e:
                st, h, d = -1, {}, str(e).encode()
            ok = None
            if st == 200:  # a whole label map: gzip NIfTI, header + int16 per voxel
                try:
                    raw = gzip.decompress(d)
                    ok = raw[344:347] == b"n+1" and len(raw) >= 352 + 2 * nvox
                except (OSError, EOFError):
                    ok = False
            with lock:
                results.append({"status": st, "retry_after": h.get("Retry-After"), "complete": ok,
                                "ms": (time.perf_counter() - t) * 1e3})
            if st == 503:
                time.sleep(0.05)

    # the probe is forked before any client thread starts
    here, there = multiprocessing.Pipe()
    probe = multiprocessing.Process(target=healthz_probe_process, args=(srv.port, there))
    probe.start()
    th = [threading.Thread(target=client) for _ in range(clients)]
    for t in th:
        t.start()
    time.sleep(seconds)
    here.send("stop")  # the figures are those of the held phase
    lat = here.recv()
    probe.join()
    held_peak = srv.rss_kb()
    os.unlink(gate)  # release: the held and queued tasks run, their clients get 200
    for t in th:
        t.join()
    peak = srv.rss_kb()
    log = open(srv.log).read()
    srv_ms = server_ms(log, "/healthz")
    rc = srv.stop()
    by = {}
    for r in results:
        by[str(r["status"])] = by.get(str(r["status"]), 0) + 1
    bad = [r for r in results if r["status"] not in (200, 503) or (r["status"] == 503 and not r["retry_after"])
           or (r["status"] == 200 and not r["complete"])]
    ms = [x for x, _ in lat if x is not None]
    return {
        "part": "held_uploads", "clients": clients, "seconds_held": seconds, "shape": shape,
        "upload_bytes": len(body), "segment_workers": workers, "queue_size": queue,
        "answers": len(results), "by_status": by, "bad_answers": len(bad), "bad_examples": bad[:3],
        "healthz": {"n": len(ms), "failed": len(lat) - len(ms), "p50_ms": pct(ms, 0.5),
                    "p99_ms": pct(ms, 0.99), "max_ms": max(ms) if ms else None,
                    "server_p50_ms": pct(srv_ms, 0.5), "server_p99_ms": pct(srv_ms, 0.99)},
        "rss_start_mb": rss0 / 1024, "rss_peak_held_mb": held_peak / 1024, "rss_peak_mb": peak / 1024,
        "held_tasks_logged": log.count("segmentation held"), "exit_status": rc,
        "tmp_left": tmp_parts(srv.data),
    }


def idle_keepalive(work, n):
    srv = Server(work, ["--header-timeout", "600", "--max-connections", str(n + 64), "--per-ip-connections", str(n + 64),
                        "--connection-timeout", "600", "--default-model", ""])
    rss0 = srv.rss_kb("VmRSS")
    socks, answered = [], 0
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
        s.sendall(req)
        got = b""
        while b"\r\n\r\n" not in got:
            k = s.recv(4096)
            if not k:
                break
            got += k
        answered += got.startswith(b"HTTP/1.1 200")
        socks.append(s)
    lat = []
    for _ in range(50):
        t = time.perf_counter()
        st, _, _ = srv.request("GET", "/healthz")
        lat.append((time.perf_counter() - t) * 1e3)
    # the idle connections still work: one more request on each of the first 100
    reused = 0
    for s in socks[:100]:
        s.sendall(req)
        reused += s.recv(4096).startswith(b"HTTP/1.1 200")
    rss = srv.rss_kb("VmRSS")
    for s in socks:
        s.close()
    rc = srv.stop()
    return {"part": "idle_keepalive", "connections": n, "answered": answered, "reused_ok": reused,
            "healthz_p50_ms": pct(lat, 0.5), "healthz_p99_ms": pct(lat, 0.99), "rss_start_mb": rss0 / 1024,
            "rss_with_idle_mb": rss / 1024, "exit_status": rc}


def slowloris(work, n, seconds, grace=5, rate=1024, header_timeout=5):
    """n connections trickle one byte a second: a third a request header, a third a JSON body,
    a third a /segment upload. Bodies are bounded by --body-grace/--min-body-rate (closed once
    behind), headers by --header-timeout."""
    srv = Server(work, ["--connection-timeout", "10", "--default-model", "",
                        "--body-grace", str(grace), "--min-body-rate", str(rate),
                        "--header-timeout", str(header_timeout)])
    stop = threading.Event()
    opened = [0]
    closed = {"header": [], "json": [], "upload": []}  # seconds until the server closed each
    still_open = {"header": 0, "json": 0, "upload": 0}
    lock = threading.Lock()

    def trickle(kind):
        try:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        except OSError:
            return
        with lock:
            opened[0] += 1
        if kind == "json":
            s.sendall(b"POST /datasets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100000\r\n\r\n")
            data = b"{" + b" " * 99999
        elif kind == "upload":
            s.sendall(b"POST /segment HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                      b"boundary=" + BOUNDARY.encode() + b"\r\nContent-Length: 100000\r\n\r\n--" +
                      BOUNDARY.encode() + b"\r\nContent-Disposition: form-data; name=\"vol\"; "
                      b"filename=\"ct.nii.gz\"\r\n\r\n")
            data = b"\x1f" * 99000
        else:
            data = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 100000
        t0, i, gone = time.time(), 0, False
        try:
            while not stop.is_set() and i < len(data):
                s.sendall(data[i:i + 1])
                i += 1
                s.settimeout(1.0)
                try:
                    if s.recv(1) == b"":
                        gone = True
                        break
                except socket.timeout:
                    pass
        except OSError:
            gone = True
        with lock:
            if gone:
                closed[kind].append(time.time() - t0)
            else:
                still_open[kind] += 1
        s.close()

    kinds = ["header", "json", "upload"]
    th = [threading.Thread(target=trickle, args=(kinds[i % 3],)) for i in range(n)]
    for t in th:
        t.start()
    time.sleep(2)
    lat, ok = [], 0
    end = time.time() + seconds
    while time.time() < end:
        t = time.perf_counter()
        try:
            st, _, _ = srv.request("GET", "/healthz", timeout=30)
            ok += st == 200
            lat.append((time.perf_counter() - t) * 1e3)
        except OSError:
            pass
        time.sleep(0.2)
    stop.set()
    for t in th:
        t.join()
    left = wait_until(lambda: not tmp_parts(srv.data), limit=30)
    rc = srv.stop()
    return {"part": "slowloris", "tricklers": n, "seconds": seconds, "opened": opened[0],
            "body_grace_s": grace, "min_body_rate": rate, "header_timeout_s": header_timeout,
            "closed_by_server": {k: len(v) for k, v in closed.items()},
            "closed_after_s_max": {k: round(max(v), 1) if v else None for k, v in closed.items()},
            "still_open_at_end": still_open, "tmp_files_left": 0 if left else len(tmp_parts(srv.data)),
            "healthz_ok": ok, "healthz_tries": len(lat), "healthz_p99_ms": pct(lat, 0.99),
            "exit_status": rc}


def per_ip(work, limit):
    """limit + 1 connections from one address, each asking /healthz: limit answered, one closed."""
    srv = Server(work, ["--per-ip-connections", str(limit), "--default-model", ""])
    socks, answered, refused = [], 0, 0
    for _ in range(limit + 1):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        socks.append(s)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            got = s.recv(4096)
            if got.startswith(b"HTTP/1.1 200"):
                answered += 1
            else:
                refused += 1
        except OSError:
            refused += 1
    for s in socks:
        s.close()
    rc = srv.stop()
    return {"part": "per_ip", "limit": limit, "connections": limit + 1, "answered": answered,
            "closed_by_server": refused, "exit_status": rc}


def vanishing(work, n):
    img, _ = phantom(work, "ct_vanish", [128, 128, 48])
    body, ctype = multipart([("vol", "ct.nii.gz", open(img, "rb").read())])
    srv = Server(work, ["--default-model", ""])
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        s.sendall(f"POST /segment HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode())
        s.sendall(body[:len(body) * (i + 1) // (n + 1)])
        socks.append(s)
    # every partial upload has its temporary file while its client is there ...
    wait_until(lambda: len(tmp_parts(srv.data)) >= n, limit=60)
    during = len(tmp_parts(srv.data))
    for s in socks:
        s.close()  # ... then the clients are gone mid-upload
    clean = wait_until(lambda: not tmp_parts(srv.data), limit=120)
    st, _, _ = srv.request("GET", "/healthz")
    rc = srv.stop()
    return {"part": "vanishing", "clients": n, "upload_bytes": len(body), "tmp_files_while_uploading": during,
            "tmp_empty_after": clean, "tmp_left": tmp_parts(srv.data), "healthz_after": st, "exit_status": rc}


# ---- faults --------------------------------------------------------------------------------

TINY = {"size": 32, "seg_width": 2, "ngf": 4, "ngen_blocks": 1, "ndf": 4, "batch": 2}


def postgres_restart(work, down_s):
    srv = Server(work, ["--job-lease", "5"])
    img, lab = phantom(work, "pgv", [40, 40, 16])
    st, ds = srv.json("POST", "/datasets", {"name": "pg", "modality": "ct"})
    body, ctype = multipart([("image", "v.nii.gz", open(img, "rb").read()), ("label", "l.nii.gz", open(lab, "rb").read())])
    st, _, _ = srv.request("POST", f"/datasets/{ds['id']}/volumes", body, {"Content-Type": ctype})
    assert st == 201, st
    st, job = srv.json("POST", "/train", {"target_dataset": ds["id"], "method": "baseline",
                                          "config": dict(TINY, iters=300, checkpoint_every=50)})
    assert st == 202, (st, job)
    seg_body, seg_ct = multipart([("vol", "v.nii.gz", open(img, "rb").read())])
    stop, answers = threading.Event(), []

    def seg_loop():
        while not stop.is_set():
            try:
                st, h, _ = srv.request("POST", "/segment", seg_body, {"Content-Type": seg_ct}, timeout=120)
                answers.append((st, h.get("Retry-After")))
            except OSError as e:
                answers.append((-1, str(e)))
            time.sleep(0.1)

    th = threading.Thread(target=seg_loop)
    th.start()
    wait_until(lambda: (srv.json("GET", f"/jobs/{job['id']}")[1] or {}).get("progress", {}).get("iteration", 0) >= 20, 600)
    pg("stop")
    t_down = time.time()
    ready_503 = wait_until(lambda: srv.request("GET", "/readyz")[0] == 503, 60)
    time.sleep(down_s)
    pg("start")
    ready_200 = wait_until(lambda: srv.request("GET", "/readyz")[0] == 200, 120)
    t_back = time.time() - t_down
    final = wait_until(lambda: srv.json("GET", f"/jobs/{job['id']}")[1]["state"] in ("succeeded", "failed", "cancelled"), 1800, 1)
    stop.set()
    th.join()
    st, j = srv.json("GET", f"/jobs/{job['id']}")
    _, models = srv.json("GET", "/models")
    mine = [m for m in models["models"] if m.get("job_id") == job["id"]]
    by = {}
    for s, _ in answers:
        by[str(s)] = by.get(str(s), 0) + 1
    rc = srv.stop()
    return {"part": "postgres", "down_s": down_s, "readyz_503_while_down": ready_503, "readyz_200_after": ready_200,
            "seconds_until_ready_again": round(t_back, 1), "job_state": j["state"], "job_attempts": j["attempts"],
            "job_final": final, "model_rows_for_job": len(mine), "segment_answers": by,
            "segment_503_without_retry_after": sum(1 for s, ra in answers if s == 503 and not ra),
            "exit_status": rc}


def sigterm_upload(work):
    img, _ = phantom(work, "ct_term", [192, 192, 64])
    body, ctype = multipart([("vol", "ct.nii.gz", open(img, "rb").read())])
    srv = Server(work, ["--shutdown-timeout", "120"])
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
    s.sendall(f"POST /segment HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode())
    half = len(body) // 2
    s.sendall(body[:half])
    srv.p.send_signal(signal.SIGTERM)
    logged = wait_until(lambda: "shutting down" in open(srv.log).read(), 60)
    s.sendall(body[half:])
    got = b""
    try:
        while True:
            k = s.recv(65536)
            if not k:
                break
            got += k
    except OSError:
        pass
    s.close()
    rc = srv.p.wait(120)
    srv.logf.close()
    status = int(got[9:12]) if got.startswith(b"HTTP/1.1 ") else None
    return {"part": "sigterm_upload", "upload_bytes": len(body), "shutdown_logged": logged, "answer_status": status,
            "answer": (got.split(b"\r\n\r\n", 1)[-1][:200].decode(errors="replace") if status != 200
                       else f"{len(got)} bytes (a label map)"), "exit_status": rc,
            "tmp_left": tmp_parts(srv.data)}


def blobs_consistent(data):
    bad, n = [], 0
    for root, _, files in os.walk(os.path.join(data, "blobs")):
        for f in files:
            n += 1
            h = hashlib.sha256(open(os.path.join(root, f), "rb").read()).hexdigest()
            if h != f:
                bad.append(f)
    return n, bad


def enospc(work):
    mnt = os.path.join(work, "small")
    os.makedirs(mnt)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt], capture_output=True).returncode:
        return {"part": "enospc", "skipped": "cannot mount a tmpfs (needs root)"}
    try:
        srv = Server(work, ["--default-model", ""], data_dir=os.path.join(mnt, "data"))
        st, ds = srv.json("POST", "/datasets", {"name": "full", "modality": "ct"})
        answers = []
        for i in range(40):
            img, lab = phantom(work, f"f{i}", [96, 96, 32], seed=i + 1)
            body, ctype = multipart([("image", f"f{i}.nii.gz", open(img, "rb").read())])
            st, h, d = srv.request("POST", f"/datasets/{ds['id']}/volumes", body, {"Content-Type": ctype})
            answers.append({"status": st, "retry_after": h.get("Retry-After"),
                            "code": (json.loads(d).get("error") or {}).get("code") if st >= 400 else None})
            if st >= 400 and len([a for a in answers if a["status"] >= 400]) >= 3:
                break
        full_status = sorted({a["status"] for a in answers if a["status"] >= 400})
        clean_after_full = wait_until(lambda: not tmp_parts(srv.data), 60)
        nblobs, bad = blobs_consistent(srv.data)
        _, vols = srv.json("GET", f"/datasets/{ds['id']}")
        # space comes back: the same upload now succeeds
        subprocess.run(["mount", "-o", "remount,size=64m", mnt], check=True)
        img, _ = phantom(work, "after", [96, 96, 32], seed=99)
        body, ctype = multipart([("image", "after.nii.gz", open(img, "rb").read())])
        st_after, _, _ = srv.request("POST", f"/datasets/{ds['id']}/volumes", body, {"Content-Type": ctype})
        rc = srv.stop()
        return {"part": "enospc", "tmpfs": "6 MiB", "uploads": len(answers),
                "accepted_before_full": sum(1 for a in answers if a["status"] == 201),
                "statuses_when_full": full_status, "codes_when_full": sorted({a["code"] for a in answers if a["code"]}),
                "retry_after_on_507": all(a["retry_after"] for a in answers if a["status"] == 507),
                "tmp_empty_after": clean_after_full, "blobs": nblobs, "blobs_not_matching_sha256": bad,
                "status_after_space_back": st_after, "exit_status": rc}
    finally:
        subprocess.run(["umount", "-l", mnt])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["load", "faults", "all"])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=120, help="how long the uploads are held")
    ap.add_argument("--shape", default="256,256,96", help="the CT phantom uploaded by held_uploads")
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--only", help="comma-separated part names")
    ap.add_argument("--out")
    a = ap.parse_args()
    shape = [int(x) for x in a.shape.split(",")]
    parts = []
    if a.what in ("load", "all"):
        parts += [("held_uploads", lambda w: held_uploads(w, a.clients, a.seconds, shape)),
                  ("idle_keepalive", lambda w: idle_keepalive(w, a.idle)),
                  ("slowloris", lambda w: slowloris(w, 42, 30)),
                  ("per_ip", lambda w: per_ip(w, 8)),
                  ("vanishing", lambda w: vanishing(w, 20))]
    if a.what in ("faults", "all"):
        parts += [("postgres", lambda w: postgres_restart(w, 10)), ("sigterm_upload", sigterm_upload),
                  ("enospc", enospc)]
    only = set(a.only.split(",")) if a.only else None
    out = []
    for name, fn in parts:
        if only and name not in only:
            continue
        work = tempfile.mkdtemp(prefix=f"mkdseg-rel-{name}-")
        t = time.time()
        try:
            r = fn(work)
        except Exception as e:  # a part that breaks is reported, the others still run
            r = {"part": name, "error": repr(e)}
        r["wall_s"] = round(time.time() - t, 1)
        print(json.dumps(r), flush=True)
        out.append(r)
        shutil.rmtree(work, ignore_errors=True)
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        json.dump(out, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    sys.exit(main())
