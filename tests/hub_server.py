"""A Hugging Face Hub on loopback: the part of the Hub's HTTP API that huggingface_hub 2.x calls to create a
repository, commit files and download them back (read from its source: hf_api.py create_repo / create_branch /
create_commit, _commit_api.py _fetch_upload_modes / _send_commit, _snapshot_download.py, file_download.py).

    POST /api/repos/create                            {name, organization, type} -> {url}; 409 when it exists
    POST /api/validate-yaml                           a README's front matter -> {errors, warnings}
    POST /api/{type}s/{owner}/{name}/branch/{branch}  a branch from the default one; 409 when it exists
    POST /api/{type}s/{owner}/{name}/preupload/{rev}  {files: [{path, sample, size}]} -> every file "regular"
    POST /api/{type}s/{owner}/{name}/commit/{rev}     NDJSON: a header line, then a line per file (base64)
    GET  /api/{type}s/{owner}/{name}[/revision/{rev}] {id, sha, siblings}
    GET  /api/{type}s/{owner}/{name}/tree/{rev}       [{type: file, path, size, oid}], one page
    HEAD|GET /[datasets/]{owner}/{name}/resolve/{rev}/{file}   the bytes; ETag (git blob sha1), X-Repo-Commit

Every upload is answered "regular" (no LFS, no Xet), so the files travel inside the commit. Errors carry the
Hub's X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound), which huggingface_hub turns into its
exceptions. Writes need ``Authorization: Bearer <token>``; ``auth`` records what each request sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import yaml

API = re.compile(r"^/api/(models|datasets)/([^/]+/[^/]+)(?:/(preupload|commit|branch|revision|tree)/([^/]+)(?:/.*)?)?$")
RESOLVE = re.compile(r"^/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


def blob_id(data: bytes) -> str:
    """git's id of a blob, the ETag the Hub gives a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self) -> None:
        self.commits: dict[str, dict[str, bytes]] = {}
        self.branches: dict[str, str] = {}
        self.commit("main", {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"})

    def commit(self, branch: str, files: dict[str, bytes]) -> str:
        parent = self.branches.get(branch, "")
        sha = hashlib.sha1(parent.encode() + json.dumps(sorted((k, blob_id(v)) for k, v in files.items())).encode()
                           ).hexdigest()
        self.commits[sha], self.branches[branch] = files, sha
        return sha

    def resolve(self, rev: str) -> str | None:
        return self.branches.get(rev) or (rev if rev in self.commits else None)


class HubServer:
    """``HubServer(token)`` serves on 127.0.0.1 at ``url`` until ``close()``; ``repos`` by (type, id)."""

    def __init__(self, token: str) -> None:
        self.token, self.repos, self.auth = token, {}, []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def files(self, repo_type: str, repo_id: str, rev: str = "main") -> dict[str, bytes]:
        repo = self.repos[(repo_type, repo_id)]
        return repo.commits[repo.resolve(rev)]


def _handler(hub: HubServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes | dict | list = b"", headers: dict | None = None) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            for k, v in {"Content-Type": "application/json", **(headers or {}), "Content-Length": str(len(data))}.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _error(self, status: int, code: str, message: str, **headers: str) -> None:
            self._send(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message, **headers})

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _writer(self) -> bool:
            sent = self.headers.get("Authorization", "")
            hub.auth.append(sent)
            if sent != f"Bearer {hub.token}":
                self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
                return False
            return True

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            if path == "/api/validate-yaml":
                text = json.loads(self._body())["content"]
                front = text.split("---\n")[1] if text.startswith("---\n") else ""
                ok = isinstance(yaml.safe_load(front), dict)
                return self._send(200 if ok else 400, {"errors": [] if ok else [{"message": "bad YAML"}], "warnings": []})
            if not self._writer():
                return
            if path == "/api/repos/create":
                p = json.loads(self._body())
                key = ((p.get("type") or "model") + "s", f"{p['organization']}/{p['name']}")
                prefix = "" if key[0] == "models" else f"{key[0]}/"
                if key in hub.repos:
                    return self._error(409, "Conflict", "You already created this repo")
                hub.repos[key] = Repo()
                return self._send(200, {"url": f"{hub.url}/{prefix}{key[1]}"})
            m = API.match(path)
            repo = hub.repos.get((m.group(1), m.group(2))) if m and m.group(3) else None
            if repo is None:
                return self._error(404, "RepoNotFound", "Repository not found")
            action, rev = m.group(3), unquote(m.group(4))
            if action == "branch":
                if rev in repo.branches:
                    return self._error(409, "Conflict", "Branch already exists")
                repo.branches[rev] = repo.branches["main"]
                return self._send(200, {})
            if rev not in repo.branches:
                return self._error(404, "RevisionNotFound", "Invalid rev id")
            if action == "preupload":
                files = json.loads(self._body())["files"]
                return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                  for f in files]})
            lines = [json.loads(x) for x in self._body().splitlines() if x.strip()]
            files = dict(repo.commits[repo.branches[rev]])
            for line in lines[1:]:
                if line["key"] != "file":
                    return self._error(400, "BadRequest", f"this hub takes regular files only, not {line['key']}")
                files[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
            sha = repo.commit(rev, files)
            return self._send(200, {"commitOid": sha, "commitUrl": f"{hub.url}/{m.group(2)}/commit/{sha}",
                                    "success": True})

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            m, r = API.match(path), RESOLVE.match(path)
            if m:  # /api/{type}s/{id} alone: the default branch's revision
                key, action, rev = (m.group(1), m.group(2)), m.group(3) or "revision", unquote(m.group(4) or "main")
            elif r:
                key, action, rev = ("datasets" if r.group(1) else "models", r.group(2)), "resolve", unquote(r.group(3))
            else:
                return self._error(404, "NotFound", "no such route")
            repo = hub.repos.get(key)
            if repo is None:
                return self._error(404, "RepoNotFound", "Repository not found")
            sha = repo.resolve(rev)
            if sha is None:
                return self._error(404, "RevisionNotFound", "Invalid rev id")
            files = repo.commits[sha]
            if action == "revision":
                return self._send(200, {"id": key[1], "sha": sha, "private": False,
                                        "siblings": [{"rfilename": p} for p in sorted(files)]})
            if action == "tree":
                return self._send(200, [{"type": "file", "path": p, "size": len(b), "oid": blob_id(b)}
                                        for p, b in sorted(files.items())])
            name = unquote(r.group(4))
            if name not in files:
                return self._error(404, "EntryNotFound", "Entry not found", **{"X-Repo-Commit": sha})
            data = files[name]
            self._send(200, data, {"Content-Type": "application/octet-stream", "ETag": f'"{blob_id(data)}"',
                                   "X-Repo-Commit": sha})

        do_HEAD = do_GET

    return Handler
