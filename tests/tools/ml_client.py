#!/usr/bin/python3
"""A MONAI Label client the way 3D Slicer's module is built: http.client for the requests and
the standard library's cgi.FieldStorage for the multipart answer, read straight from the
socket with the headers' Content-Length. Run by tests/http/test_http_slicer.c.

  ml_client.py PORT PREFIX NAME FILE OUT
      PUT PREFIX/datastore/?image=NAME (FILE), POST PREFIX/infer/default?image=NAME, writes the
      answer's file part to OUT and prints one JSON line: the file part's name and the params.
      Exits 1 (with the status and body) on any non-200 answer.
"""
import http.client
import json
import sys
import warnings
from urllib.parse import quote_plus

warnings.simplefilter("ignore", DeprecationWarning)
import cgi  # noqa: E402  (deprecated, still what the module's parser is built on)

LIMIT = "----------lImIt_of_THE_fIle_eW_$"


def body_of(fields, files):
    """Each line ends in CRLF, the closing delimiter too, then one empty line."""
    out = bytearray()
    lines = []
    for k, v in fields.items():
        lines += ["--" + LIMIT, 'Content-Disposition: form-data; name="%s"' % k, "", v]
    for k, path in files.items():
        with open(path, "rb") as f:
            data = f.read()
        lines += ["--" + LIMIT, 'Content-Disposition: form-data; name="%s"; filename="%s"' % (k, path),
                  "Content-Type: application/octet-stream", "", data]
    lines += ["--" + LIMIT + "--", ""]
    for line in lines:
        out += line if isinstance(line, bytes) else line.encode()
        out += b"\r\n"
    return out


def call(port, method, path, fields, files):
    body = body_of(fields, files)
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request(method, path, body, {"content-type": "multipart/form-data; boundary=" + LIMIT,
                                      "content-length": str(len(body))})
    resp = conn.getresponse()
    if resp.status != 200:
        sys.stderr.write("%s %s: %d %s\n" % (method, path, resp.status, resp.read()[:500]))
        sys.exit(1)
    if "multipart" not in resp.getheader("content-type", ""):
        return json.loads(resp.read()), {}
    fs = cgi.FieldStorage(fp=resp.fp, environ={"REQUEST_METHOD": "POST"}, headers=resp.msg,
                          keep_blank_values=True)
    form, got = {}, {}
    for part in fs.list:
        if part.filename:
            got[part.filename] = part.value
        else:
            form[part.name] = part.value
    return form, got


def main():
    port, prefix, name, path, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
    call(port, "PUT", "%s/datastore/?image=%s" % (prefix, quote_plus(name)),
         {"params": json.dumps({"client_id": "ml-client"})}, {"file": path})
    form, got = call(port, "POST", "%s/infer/default?image=%s" % (prefix, quote_plus(name)),
                     {"params": json.dumps({"result_extension": ".nrrd", "result_dtype": "uint8",
                                            "client_id": "ml-client"})}, {})
    if len(got) != 1:
        sys.stderr.write("expected one file part, got %r\n" % list(got))
        return 1
    (fname, data), = got.items()
    with open(out, "wb") as f:
        f.write(data)
    params = form.get("params")
    print(json.dumps({"filename": fname, "params": json.loads(params)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
