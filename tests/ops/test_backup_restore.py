#!/usr/bin/env python3
"""Online backup and restore of the embedded backends: uploads go on
through audiopipe-httpd (and a worker, when built) while `audiopipe backup`
runs; the backup is restored into a fresh data directory and checked row
by row, object by object, with integrity_check, and served again.

Usage: test_backup_restore.py --cli PATH --httpd PATH [--worker PATH]
                              --cases DIR
"""

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ops_common as ops  # noqa: E402

TABLES = ("assets", "asset_objects", "uploads", "jobs")


def rows(path, table):
    connection = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return {tuple(r) for r in connection.execute(
            "SELECT * FROM %s" % table)}
    finally:
        connection.close()


def object_keys(path, table):
    connection = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return {r[0] for r in connection.execute(
            "SELECT object_key FROM %s" % table)}
    finally:
        connection.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cli", required=True)
    parser.add_argument("--httpd", required=True)
    parser.add_argument("--worker")
    parser.add_argument("--cases", required=True)
    arguments = parser.parse_args()
    worker = arguments.worker if arguments.worker and os.access(
        arguments.worker, os.X_OK) else None
    files = [os.path.join(arguments.cases, name)
             for name in ("case-03.mp3", "case-18.wav", "case-01.webm")]
    files = [f for f in files if os.path.exists(f)]
    ops.check("case files exist", len(files) > 0, arguments.cases)

    with tempfile.TemporaryDirectory(prefix="ops-backup-") as root:
        source = ops.Deployment(os.path.join(root, "source"),
                                arguments.httpd, worker)
        backup = os.path.join(root, "backup")
        try:
            ops.check("httpd starts", source.start_httpd() is not None)
            if worker:
                ops.check("worker starts",
                          source.start_worker()[0] is not None)
            else:
                print("note: audiopipe-worker is not built in this tree, so "
                      "jobs stay queued during the backup")
            before = 0
            for path in files * 2:
                _, asset = ops.upload_file(source.base, path,
                                           os.path.basename(path))
                before += asset is not None

            # Uploads keep arriving while the backup runs.
            stop = threading.Event()
            during = []

            def keep_uploading():
                while not stop.is_set():
                    _, asset = ops.upload_file(source.base, files[0],
                                               "during.mp3", record=False)
                    during.append(asset is not None)

            writer = threading.Thread(target=keep_uploading)
            writer.start()
            result = subprocess.run([arguments.cli, "backup", "--quiet",
                                     backup], env=source.env,
                                    capture_output=True, text=True,
                                    timeout=120)
            stop.set()
            writer.join()
            ops.check("backup exits 0", result.returncode == 0,
                      result.stderr)
            ops.check("uploads succeeded during the backup",
                      len(during) > 0 and all(during), during)
            again = subprocess.run([arguments.cli, "backup", backup],
                                   env=source.env, capture_output=True,
                                   text=True, timeout=60)
            ops.check("backup into a non-empty directory exits 3",
                      again.returncode == 3, again.stderr)
            ops.check("backup names the conflict",
                      "(conflict)" in again.stderr, again.stderr)
        finally:
            statuses = source.stop_all()
            ops.check("servers exit 0 on SIGTERM",
                      all(s == 0 for s in statuses), statuses)

        database = os.path.join(backup, "meta.db")
        if not ops.check("backup wrote meta.db", os.path.exists(database)):
            ops.finish()
        for table in TABLES:
            ops.check("backup has the %s rows from before it started"
                      % table if table != "asset_objects"
                      else "backup has an asset_objects table",
                      table == "asset_objects" or
                      len(rows(database, table)) >= before,
                      (table, len(rows(database, table)), before))
        source_database = os.path.join(source.root, "meta.db")
        for table in ("assets", "uploads"):
            ops.check("backed-up %s ids exist in the source" % table,
                      {r[0] for r in rows(database, table)} <=
                      {r[0] for r in rows(source_database, table)})

        # Restore into a fresh directory and compare with the backup.
        target = ops.Deployment(os.path.join(root, "restored"),
                                arguments.httpd)
        restored = subprocess.run([arguments.cli, "restore", backup],
                                  env=target.env, capture_output=True,
                                  text=True, timeout=120)
        ops.check("restore exits 0", restored.returncode == 0,
                  restored.stderr)
        overwrite = subprocess.run([arguments.cli, "restore", backup],
                                   env=target.env, capture_output=True,
                                   text=True, timeout=60)
        ops.check("restore over an existing database exits 3",
                  overwrite.returncode == 3, overwrite.stderr)
        restored_database = os.path.join(target.root, "meta.db")
        connection = sqlite3.connect(restored_database)
        verdict = connection.execute("PRAGMA integrity_check").fetchone()[0]
        connection.close()
        ops.check("restored database passes integrity_check",
                  verdict == "ok", verdict)
        for table in TABLES:
            ops.check("restored %s rows equal the backup's" % table,
                      rows(restored_database, table) ==
                      rows(database, table))

        objects = os.path.join(target.root, "objects")
        for table in ("assets", "uploads", "asset_objects"):
            missing = [k for k in object_keys(restored_database, table)
                       if not os.path.isfile(os.path.join(objects, k))]
            ops.check("every %s object is restored" % table, not missing,
                      missing[:5])
        with open(os.path.join(backup, "MANIFEST")) as handle:
            manifest = [line.rstrip("\n").split(" ", 1) for line in handle]
        wrong = [key for size, key in manifest
                 if not os.path.isfile(os.path.join(objects, key)) or
                 os.path.getsize(os.path.join(objects, key)) != int(size)]
        ops.check("manifest sizes match the restored objects", not wrong,
                  wrong[:5])

        # The restored data serves every asset again.
        try:
            ops.check("httpd starts on the restored data",
                      target.start_httpd() is not None)
            ids = [r[0] for r in rows(restored_database, "assets")]
            statuses = [ops.request(target.base + "/v1/assets/" + i,
                                    headers=ops.auth())[0] for i in ids]
            ops.check("every restored asset is served",
                      statuses and all(s == 200 for s in statuses),
                      statuses)
        finally:
            target.stop_all()
    ops.finish()


if __name__ == "__main__":
    main()
