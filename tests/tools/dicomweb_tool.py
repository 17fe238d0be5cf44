#!/usr/bin/python3
"""A DICOMweb client for the tests, on Python's standard library only (independent of mkdseg's
libcurl client):

  dicomweb_tool.py stow ROOT SERIES.zip          store every file of the zip (STOW-RS)
  dicomweb_tool.py qido ROOT STUDY MODALITY      print the SeriesInstanceUIDs of that modality
  dicomweb_tool.py wado ROOT STUDY SERIES OUT    save the series' first instance (WADO-RS)
"""
import json
import sys
import urllib.request
import uuid
import zipfile


def stow(root, zpath):
    bd = uuid.uuid4().hex
    parts = []
    with zipfile.ZipFile(zpath) as z:
        for n in z.namelist():
            if not n.endswith("/"):
                parts.append(b"--" + bd.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + z.read(n) + b"\r\n")
    body = b"".join(parts) + b"--" + bd.encode() + b"--\r\n"
    req = urllib.request.Request(root + "/studies", data=body, method="POST", headers={
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=' + bd,
        "Accept": "application/dicom+json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200, r.status


def qido(root, study, modality):
    req = urllib.request.Request("%s/studies/%s/series?Modality=%s" % (root, study, modality),
                                 headers={"Accept": "application/dicom+json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        body = r.read()
    for s in json.loads(body) if body else []:
        print(s["0020000E"]["Value"][0])


def wado(root, study, series, out):
    req = urllib.request.Request("%s/studies/%s/series/%s" % (root, study, series),
                                 headers={"Accept": 'multipart/related; type="application/dicom"'})
    with urllib.request.urlopen(req, timeout=60) as r:
        ctype, body = r.headers["Content-Type"], r.read()
    bd = ctype.split("boundary=")[1].split(";")[0].strip('"').encode()
    part = body.split(b"--" + bd)[1]
    data = part.split(b"\r\n\r\n", 1)[1]
    if data.endswith(b"\r\n"):
        data = data[:-2]
    with open(out, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    cmd = sys.argv[1]
    {"stow": stow, "qido": qido, "wado": wado}[cmd](*sys.argv[2:])
