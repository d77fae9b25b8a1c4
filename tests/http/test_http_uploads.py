#!/usr/bin/env python3
"""End-to-end tests of the upload methods of audiopipe-httpd on the file
store: put with its ETag, the signed form POST (within the cap, past it,
tampered), and a multipart upload of a 12 MiB WAV whose part 2 drops
mid-body and is sent again, with listing, completion, abort and owner
isolation. Hostile input: form parts without a name, a field sent twice,
fields streamed after the file, and a completion ETag cut by a NUL.

Usage: test_http_uploads.py --httpd PATH --cases DIR

Builds nothing. Every check prints one line; the exit status is 1 when any
check failed.
"""

import argparse
import hashlib
import json
import math
import os
import shutil
import socket
import struct
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_http  # noqa: E402  (shares the server and curl helpers)
from test_http import ALICE_KEY, BOB_KEY, auth, check, curl  # noqa: E402

PART_SIZE = 5 * 1024 * 1024


def write_wav(path, data_bytes):
    """Writes a 440 Hz stereo tone, 16-bit at 44.1 kHz."""
    frames = data_bytes // 4
    period = [int(0.3 * 32767 * math.sin(2 * math.pi * 440 * i / 44100))
              for i in range(44100)]
    with open(path, "wb") as handle:
        handle.write(b"RIFF" + struct.pack("<I", 36 + frames * 4) + b"WAVE")
        handle.write(b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, 44100,
                                           44100 * 4, 4, 16))
        handle.write(b"data" + struct.pack("<I", frames * 4))
        second = b"".join(struct.pack("<hh", s, s) for s in period)
        written = 0
        while written < frames:
            count = min(44100, frames - written)
            handle.write(second[:count * 4])
            written += count


def json_post(server, path, key, body):
    return curl(server.url(path), "POST",
                dict(auth(key), **{"Content-Type": "application/json"}),
                data=json.dumps(body))


def create(server, key, filename, size, content_type, method=None):
    body = {"filename": filename, "size_bytes": size,
            "content_type": content_type}
    if method is not None:
        body["method"] = method
    return json_post(server, "/v1/uploads", key, body)


def post_form(ticket, path, fields=None):
    """POSTs the ticket's form fields, then the file, as a browser does."""
    extra = []
    for name, value in (fields or ticket["fields"]).items():
        extra += ["--form-string", "%s=%s" % (name, value)]
    extra += ["-F", "file=@%s" % path]
    return curl(ticket["url"], "POST", {"Expect": ""}, extra=extra)


def put_bytes(url, headers, data, directory):
    path = os.path.join(directory, "part.bin")
    with open(path, "wb") as handle:
        handle.write(data)
    return curl(url, "PUT", dict(headers, Expect=""), data_file=path)


def drop_put(url, headers, data):
    """Sends the request head and half the body, then closes the socket, as
    a client whose connection drops mid-upload."""
    parsed = urllib.parse.urlsplit(url)
    head = "PUT %s?%s HTTP/1.1\r\nHost: %s\r\n" % (parsed.path, parsed.query,
                                                   parsed.netloc)
    for name, value in headers.items():
        head += "%s: %s\r\n" % (name, value)
    head += "\r\n"
    with socket.create_connection((parsed.hostname, parsed.port),
                                  timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))
        sock.sendall(data[:len(data) // 2])
        # Linger 0 resets the connection, as a dropped network does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))


def presign_part(server, key, upload_id, number):
    return curl(server.url("/v1/uploads/%s/parts/%s" % (upload_id, number)),
                "POST", auth(key))


def test_put_method(server, cases):
    path = os.path.join(cases, "case-03.mp3")
    size = os.path.getsize(path)
    created = create(server, ALICE_KEY, "case-03.mp3", size, "audio/mpeg",
                     "put")
    check("put: create is 201", created.status == 201, created.body)
    ticket = created.json() or {}
    check("put: ticket names its upload method",
          ticket.get("upload_method") == "put", ticket)
    put = test_http.put_ticket(ticket, path)
    check("put: PUT is 200", put.status == 200, put.body)
    with open(path, "rb") as handle:
        digest = hashlib.md5(handle.read()).hexdigest()
    check("put: PUT answers the MD5 as ETag",
          put.header("ETag") == '"%s"' % digest, put.headers)
    done = test_http.complete(server, ALICE_KEY, ticket["upload_id"])
    check("put: complete is 200", done.status == 200, done.body)

    # The URL is still within its expiry: used again, it must not replace
    # the object that completion validated.
    other = os.path.join(server.directory, "replayed.bin")
    with open(other, "wb") as handle:
        handle.write(os.urandom(size))
    replay = test_http.put_ticket(ticket, other)
    check("put: the URL used again is 409", replay.status == 409, replay.body)
    key = ticket["url"].split("/v1/objects/")[1].split("?")[0]
    stored = os.path.join(server.directory, "objects", key)
    with open(stored, "rb") as handle:
        check("put: the validated object is unchanged",
              hashlib.md5(handle.read()).hexdigest() == digest)


def test_method_validation(server):
    bad = create(server, ALICE_KEY, "a.wav", 1000, "audio/wav", "chunked")
    check("unknown method is 400", bad.status == 400, bad.body)
    check("unknown method names the field",
          test_http.error_message(bad).startswith("method:"), bad.body)
    small = create(server, ALICE_KEY, "a.wav", 1000, "audio/wav", "multipart")
    check("multipart under 5 MiB is 400", small.status == 400, small.body)
    check("multipart under 5 MiB names the field",
          test_http.error_message(small).startswith("method:"), small.body)
    large = create(server, ALICE_KEY, "a.wav", 12 * 1024 * 1024, "audio/wav",
                   "put")
    check("put over the threshold is 400", large.status == 400, large.body)
    check("put over the threshold points to multipart",
          "multipart" in test_http.error_message(large), large.body)
    typed = create(server, ALICE_KEY, "a.wav", 1000, "audio/wav", 3)
    check("non-string method is 400", typed.status == 400, typed.body)


def test_post_method(server, cases, scratch):
    path = os.path.join(cases, "case-03.mp3")
    size = os.path.getsize(path)
    created = create(server, ALICE_KEY, "case-03.mp3", size, "audio/mpeg",
                     "post")
    check("post: create is 201", created.status == 201, created.body)
    ticket = created.json() or {}
    check("post: ticket is a POST to the form URL",
          ticket.get("method") == "POST" and
          ticket.get("url") == server.url("/v1/objects"), ticket)
    fields = ticket.get("fields") or {}
    check("post: ticket lists the form fields",
          sorted(fields) == ["Content-Type", "key", "policy",
                             "x-ap-signature"], fields)

    tampered = dict(fields, **{"Content-Type": "audio/wav"})
    forged = post_form(ticket, path, tampered)
    check("post: a changed Content-Type field is rejected",
          forged.status in (400, 403), forged.body)
    check("post: the rejection names the field",
          "Content-Type" in test_http.error_message(forged), forged.body)

    posted = post_form(ticket, path)
    check("post: form POST is 200", posted.status == 200, posted.body)
    check("post: POST answers the stored size",
          (posted.json() or {}).get("size_bytes") == size, posted.body)
    done = test_http.complete(server, ALICE_KEY, ticket["upload_id"])
    check("post: complete is 200", done.status == 200, done.body)
    check("post: asset has the file's size",
          (done.json() or {}).get("size_bytes") == size, done.body)

    short = create(server, ALICE_KEY, "case-03.mp3", size - 1000,
                   "audio/mpeg", "post")
    short_ticket = short.json() or {}
    over = post_form(short_ticket, path)
    check("post: a file over the cap is 400", over.status == 400, over.body)
    check("post: the error says EntityTooLarge",
          "EntityTooLarge" in test_http.error_message(over), over.body)
    stored = [f for f in test_http.object_files(server)
              if f.endswith(short_ticket.get("upload_id", "?"))]
    check("post: nothing is stored past the cap", stored == [], stored)

    empty = curl(server.url("/v1/objects"), "POST", {}, data="x=1")
    check("post: a body that is not a form is 400", empty.status == 400,
          empty.body)


def test_multipart_method(server, scratch):
    wav = os.path.join(scratch, "tone.wav")
    write_wav(wav, 12 * 1024 * 1024)
    with open(wav, "rb") as handle:
        data = handle.read()
    size = len(data)
    created = create(server, ALICE_KEY, "tone.wav", size, "audio/wav",
                     "multipart")
    check("multipart: create is 201", created.status == 201, created.body)
    ticket = created.json() or {}
    upload_id = ticket.get("upload_id", "")
    check("multipart: ticket has 3 parts of 5 MiB",
          ticket.get("part_count") == 3 and
          ticket.get("part_size_bytes") == PART_SIZE, ticket)
    check("multipart: ticket has no single URL", "url" not in ticket, ticket)

    bad_number = presign_part(server, ALICE_KEY, upload_id, 0)
    check("multipart: part 0 is 400", bad_number.status == 400,
          bad_number.body)
    check("multipart: part 0 names the field",
          test_http.error_message(bad_number).startswith("part_number:"),
          bad_number.body)
    past = presign_part(server, ALICE_KEY, upload_id, 4)
    check("multipart: part 4 of 3 is 400", past.status == 400, past.body)

    pieces = [data[i * PART_SIZE:(i + 1) * PART_SIZE] for i in range(3)]
    etags = {}
    for number in (1, 2, 3):
        presigned = presign_part(server, ALICE_KEY, upload_id, number)
        check("multipart: part %d URL is 200" % number,
              presigned.status == 200, presigned.body)
        part = presigned.json() or {}
        check("multipart: part %d ticket names its number" % number,
              part.get("part_number") == number, part)
        if number == 2:
            drop_put(part["url"], part["headers"], pieces[1])
            continue
        put = put_bytes(part["url"], part["headers"], pieces[number - 1],
                        scratch)
        check("multipart: part %d PUT is 200" % number, put.status == 200,
              put.body)
        etags[number] = put.header("ETag")

    listed = curl(server.url("/v1/uploads/%s/parts" % upload_id),
                  headers=auth(ALICE_KEY))
    check("multipart: list is 200", listed.status == 200, listed.body)
    numbers = [p.get("number") for p in (listed.json() or {}).get("parts", [])]
    check("multipart: the dropped part is not listed", numbers == [1, 3],
          listed.body)

    parts = [{"number": n, "etag": etags.get(n, '"0"')} for n in (1, 2, 3)]
    early = json_post(server, "/v1/uploads/%s/complete" % upload_id,
                      ALICE_KEY, {"parts": parts})
    check("multipart: complete without part 2 is 400", early.status == 400,
          early.body)
    check("multipart: the error names parts",
          test_http.error_message(early).startswith("parts:"), early.body)

    malformed = json_post(server, "/v1/uploads/%s/complete" % upload_id,
                          ALICE_KEY, {"parts": [{"number": "one"}]})
    check("multipart: a malformed part is 400 naming it",
          malformed.status == 400 and
          test_http.error_message(malformed).startswith("parts[0].number"),
          malformed.body)
    plain = test_http.complete(server, ALICE_KEY, upload_id)
    check("multipart: complete without a part list is 400",
          plain.status == 400 and
          test_http.error_message(plain).startswith("parts:"), plain.body)

    for method, path in (("POST", "/parts/1"), ("GET", "/parts"),
                         ("DELETE", "")):
        other = curl(server.url("/v1/uploads/" + upload_id + path), method,
                     auth(BOB_KEY))
        check("multipart: %s %s by another owner is 404" % (method, path),
              other.status == 404, other.body)

    again = presign_part(server, ALICE_KEY, upload_id, 2).json() or {}
    put = put_bytes(again["url"], again["headers"], pieces[1], scratch)
    check("multipart: part 2 sent again is 200", put.status == 200, put.body)
    etags[2] = put.header("ETag")
    listed = curl(server.url("/v1/uploads/%s/parts" % upload_id),
                  headers=auth(ALICE_KEY)).json() or {}
    check("multipart: the list has the ETags of the PUTs",
          [p.get("etag") for p in listed.get("parts", [])] ==
          [etags[1], etags[2], etags[3]], listed)
    check("multipart: the ETag is the part's MD5",
          etags[2] == '"%s"' % hashlib.md5(pieces[1]).hexdigest(), etags)

    parts = [{"number": n, "etag": etags[n]} for n in (1, 2, 3)]
    done = json_post(server, "/v1/uploads/%s/complete" % upload_id,
                     ALICE_KEY, {"parts": parts})
    check("multipart: complete is 200", done.status == 200, done.body)
    asset = done.json() or {}
    check("multipart: asset has the file's size",
          asset.get("size_bytes") == size, done.body)
    probe = asset.get("probe") or asset.get("media") or {}
    check("multipart: asset was probed as stereo 44.1 kHz",
          "44100" in json.dumps(probe) or "44100" in done.body.decode(),
          done.body[:300])
    leftovers = [f for f in test_http.object_files(server)
                 if ".parts" in f and upload_id in f]
    check("multipart: no parts remain", leftovers == [], leftovers)


def test_abort(server, scratch):
    wav = os.path.join(scratch, "tone.wav")
    with open(wav, "rb") as handle:
        data = handle.read()
    created = create(server, ALICE_KEY, "tone.wav", len(data), "audio/wav",
                     "multipart")
    upload_id = (created.json() or {}).get("upload_id", "")
    part = presign_part(server, ALICE_KEY, upload_id, 1).json() or {}
    put = put_bytes(part["url"], part["headers"], data[:PART_SIZE], scratch)
    check("abort: part 1 PUT is 200", put.status == 200, put.body)
    aborted = curl(server.url("/v1/uploads/" + upload_id), "DELETE",
                   auth(ALICE_KEY))
    check("abort: DELETE is 204", aborted.status == 204, aborted.body)
    leftovers = [f for f in test_http.object_files(server) if upload_id in f]
    check("abort: nothing of the upload remains", leftovers == [], leftovers)
    listed = curl(server.url("/v1/uploads/%s/parts" % upload_id),
                  headers=auth(ALICE_KEY))
    check("abort: listing an aborted upload is 409", listed.status == 409,
          listed.body)
    twice = curl(server.url("/v1/uploads/" + upload_id), "DELETE",
                 auth(ALICE_KEY))
    check("abort: a second DELETE is 204", twice.status == 204, twice.body)


def raw_form(url, parts, directory, boundary="hostile"):
    """POSTs a hand-made multipart/form-data body of (headers, value)
    parts, values as Latin-1 text."""
    body = ""
    for headers, value in parts:
        body += "--%s\r\n%s\r\n\r\n%s\r\n" % (boundary, headers, value)
    body += "--%s--\r\n" % boundary
    path = os.path.join(directory, "form.bin")
    with open(path, "wb") as handle:
        handle.write(body.encode("latin-1"))
    content_type = "multipart/form-data; boundary=" + boundary
    return curl(url, "POST", {"Content-Type": content_type, "Expect": ""},
                data_file=path)


def test_hostile_forms(server, cases, scratch):
    path = os.path.join(cases, "case-03.mp3")
    with open(path, "rb") as handle:
        audio = handle.read().decode("latin-1")
    created = create(server, ALICE_KEY, "case-03.mp3", len(audio),
                     "audio/mpeg", "post")
    ticket = created.json() or {}
    fields = [('Content-Disposition: form-data; name="%s"' % name, value)
              for name, value in (ticket.get("fields") or {}).items()]
    file_part = ('Content-Disposition: form-data; name="file"; '
                 'filename="a.mp3"\r\nContent-Type: audio/mpeg', audio)

    nameless = raw_form(ticket["url"], [("Content-Type: text/plain", "x")],
                        scratch)
    check("hostile form: a part without a name is 400",
          nameless.status == 400, (nameless.status, nameless.body))
    check("hostile form: the error names the missing name",
          "no name" in test_http.error_message(nameless), nameless.body)
    alive = curl(server.url("/healthz"))
    check("hostile form: the server still answers", alive.status == 200,
          alive.status)

    trailing = ('Content-Disposition: form-data; name="comment"',
                "x" * (64 * 1024))
    long_tail = raw_form(ticket["url"], fields + [file_part, trailing],
                         scratch)
    check("hostile form: 64 KiB of fields after the file is 400",
          long_tail.status == 400, (long_tail.status, long_tail.body))
    stored = [f for f in test_http.object_files(server)
              if f.endswith(ticket.get("upload_id", "?"))]
    check("hostile form: nothing is stored after a long tail",
          stored == [], stored)

    key_name, key_value = fields[0]
    half = len(key_value) // 2
    split_key = [(key_name, key_value[:half]), (key_name, key_value[half:])]
    repeated = raw_form(ticket["url"], split_key + fields[1:] + [file_part],
                        scratch)
    check("hostile form: a repeated field is 400", repeated.status == 400,
          (repeated.status, repeated.body))
    check("hostile form: the error says repeated",
          "repeated" in test_http.error_message(repeated), repeated.body)

    short_tail = ('Content-Disposition: form-data; name="comment"', "ok")
    accepted = raw_form(ticket["url"], fields + [file_part, short_tail],
                        scratch)
    check("hostile form: a short field after the file is ignored",
          accepted.status == 200, (accepted.status, accepted.body))


def test_nul_etag(server, scratch):
    wav = os.path.join(scratch, "tone.wav")
    with open(wav, "rb") as handle:
        data = handle.read()
    created = create(server, ALICE_KEY, "tone.wav", len(data), "audio/wav",
                     "multipart")
    ticket = created.json() or {}
    upload_id = ticket.get("upload_id", "")
    parts = []
    for number in range(1, ticket.get("part_count", 0) + 1):
        part = presign_part(server, ALICE_KEY, upload_id, number).json() or {}
        chunk = data[(number - 1) * PART_SIZE:number * PART_SIZE]
        put = put_bytes(part["url"], part["headers"], chunk, scratch)
        parts.append({"number": number, "etag": put.headers.get("etag", "")})
    if not check("nul etag: every part PUT has an ETag",
                 parts and all(part["etag"] for part in parts), parts):
        return
    cut = [dict(parts[0], etag=parts[0]["etag"] + "\u0000junk")] + parts[1:]
    path = "/v1/uploads/%s/complete" % upload_id
    rejected = json_post(server, path, ALICE_KEY, {"parts": cut})
    check("nul etag: an ETag with a NUL is 400", rejected.status == 400,
          (rejected.status, rejected.body))
    check("nul etag: the error names parts[0].etag",
          "parts[0].etag" in test_http.error_message(rejected),
          rejected.body)
    done = json_post(server, path, ALICE_KEY, {"parts": parts})
    check("nul etag: the right ETags still complete", done.status == 200,
          (done.status, done.body))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--httpd", required=True)
    parser.add_argument("--cases", required=True)
    arguments = parser.parse_args()

    root = tempfile.mkdtemp(prefix="audiopipe-http-uploads-")
    scratch = os.path.join(root, "scratch")
    os.makedirs(scratch)
    server = test_http.Server(arguments.httpd, root, "uploads", {
        "AUDIOPIPE_UPLOADS_MAX_BYTES": "64M",
        "AUDIOPIPE_UPLOADS_MULTIPART_THRESHOLD": "8M",
        "AUDIOPIPE_UPLOADS_PART_SIZE": "5M",
        "AUDIOPIPE_HTTP_RATE_LIMIT": "10000",
        "AUDIOPIPE_HTTP_RATE_LIMIT_BURST": "10000",
    })
    try:
        if check("server starts", server.start(), server.log_path):
            test_put_method(server, arguments.cases)
            test_method_validation(server)
            test_post_method(server, arguments.cases, scratch)
            test_multipart_method(server, scratch)
            test_abort(server, scratch)
            test_hostile_forms(server, arguments.cases, scratch)
            test_nul_etag(server, scratch)
            server.stop()
            check("server exits 0", server.process.returncode == 0,
                  server.process.returncode)
            check("server log has no sanitizer report",
                  "Sanitizer" not in server.log_text() and
                  "runtime error" not in server.log_text())
    finally:
        server.stop()
        if not test_http.failures:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print("kept test directory " + root)
    failed = test_http.failures
    print("%d check(s) failed" % len(failed) if failed else
          "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
