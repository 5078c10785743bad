"""Neuronpedia's feature API over HTTP (``requests``): timeouts, retries with backoff, the API key, an on-disk
cache.

``GET {base}/api/feature/{model}/{source}/{index}``. Each try waits at most ``timeout`` seconds to connect
and as long for the answer; a timeout, a failed connection, 429 or a 5xx is tried again, ``tries`` times in
all, after ``backoff`` seconds doubling each time, or after the server's ``Retry-After`` when it gives one,
never longer than ``max_wait``. A 404, a refusal (401 / 403) or another 4xx is final. The loop is written
out rather than left to urllib3's ``Retry`` so that each retry can be reported and the error after the last
one names the failure that ended it (a timeout or a status), not urllib3's wrapper of it.

The key is ``$NEURONPEDIA_API_KEY`` (sent as ``x-api-key``; never printed, and dropped on a redirect to
another host). Reads need none; a key lifts Neuronpedia's rate limits and opens private sources.

A feature that decodes is cached as its response bytes under ``<cache>/neuronpedia/<host>-<hash of the
base URL>/<model>/<source>/<index>.json`` (written atomically); ``cache=False`` neither reads nor writes it.
A cached file that no longer decodes is fetched again.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import time
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from interp_lab.errors import InputError, RemoteError, UsageError
from interp_lab.providers.neuronpedia_format import FeatureResponse, decode
from interp_lab.schemas.command import Progress, as_progress

if TYPE_CHECKING:
    from interp_lab.providers.neuronpedia import NeuronpediaRef

DEFAULT_URL = "https://www.neuronpedia.org"
KEY_ENV = "NEURONPEDIA_API_KEY"
KEY_HEADER = "x-api-key"


def base_url(url: str | None) -> str:
    """``url`` (default the public site) without a trailing slash; ``UsageError`` unless http(s)."""
    url = (url or DEFAULT_URL).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--neuronpedia-url {url!r}: expected an http:// or https:// address "
                         f"(default {DEFAULT_URL})")
    return url


def _session():
    """A ``requests`` session that drops the API key on a redirect to another host or port."""
    try:
        import requests
    except ImportError:
        raise UsageError("the Neuronpedia client needs requests: pip install 'interp-lab[neuronpedia]'") from None

    class Session(requests.Session):
        def rebuild_auth(self, prepared_request, response):
            if self.should_strip_auth(response.request.url, prepared_request.url):
                prepared_request.headers.pop(KEY_HEADER, None)
            super().rebuild_auth(prepared_request, response)

    return Session()


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class NeuronpediaClient:
    """Fetches feature responses from one Neuronpedia (``url``: default the public site)."""

    def __init__(self, url: str | None = None, *, timeout: float = 20.0, tries: int = 4, backoff: float = 1.0,
                 max_wait: float = 30.0, cache: bool = True, progress: Any = None) -> None:
        if timeout <= 0 or tries < 1 or backoff < 0 or max_wait < 0:
            raise UsageError("the Neuronpedia client needs timeout > 0, tries >= 1, backoff >= 0 and max_wait >= 0")
        self.base = base_url(url)
        self.timeout, self.tries, self.backoff, self.max_wait = float(timeout), int(tries), backoff, max_wait
        self.cache = cache
        self.progress: Progress = as_progress(progress)
        self._http = None

    def api_url(self, ref: NeuronpediaRef) -> str:
        return self.base + ref.api_path

    def cache_path(self, ref: NeuronpediaRef) -> Path:
        from interp_lab.io.cache import cache_dir

        host = urlsplit(self.base).netloc.replace(":", "_")
        digest = hashlib.sha256(self.base.encode()).hexdigest()[:12]
        return cache_dir() / "neuronpedia" / f"{host}-{digest}" / ref.model / ref.source / f"{ref.index}.json"

    def fetch(self, ref: NeuronpediaRef) -> tuple[FeatureResponse, dict[str, Any]]:
        """The feature ``ref`` (typed, and the whole JSON object): from the cache, else from the API."""
        url = self.api_url(ref)
        path = self.cache_path(ref)
        if self.cache and path.is_file():
            try:
                got = decode(path.read_bytes(), str(path))
                if got[0].key == ref.key:
                    return got
            except InputError as exc:
                self.progress.say(f"neuronpedia: cached {ref.key} is unreadable ({exc}); fetching it again")
        raw = self._get(url, ref)
        resp, body = decode(raw, url)
        if resp.key != ref.key:
            raise InputError(url, f"answered the feature {resp.key}, not {ref.key}")
        if self.cache:
            from interp_lab.io.atomic import write_bytes_atomic

            write_bytes_atomic(path, raw)
        return resp, body

    def _get(self, url: str, ref: NeuronpediaRef) -> bytes:
        import requests

        if self._http is None:
            self._http = _session()
        headers = {"Accept": "application/json", "User-Agent": _user_agent()}
        key = os.environ.get(KEY_ENV, "").strip()
        if key:
            headers[KEY_HEADER] = key
        last = ""
        for attempt in range(1, self.tries + 1):
            wait = self.backoff * 2 ** (attempt - 1)
            try:
                r = self._http.get(url, headers=headers, timeout=(self.timeout, self.timeout))
            except requests.Timeout:
                last = f"no answer within {self.timeout:g} s"
            except requests.ConnectionError as exc:
                last = f"connection failed ({_first_line(exc)[:200]})"
            else:
                if r.status_code == 200:
                    return r.content
                if r.status_code == 404:
                    raise RemoteError(f"no such feature on Neuronpedia: {ref.key} ({url})")
                if r.status_code in (401, 403):
                    hint = f"check ${KEY_ENV}" if key else f"a private source needs an API key in ${KEY_ENV}"
                    raise RemoteError(f"Neuronpedia refused {ref.key} (HTTP {r.status_code}; {hint}) ({url})")
                if r.status_code != 429 and r.status_code < 500:
                    raise RemoteError(f"Neuronpedia answered HTTP {r.status_code} for {ref.key} ({url}): "
                                      f"{_first_line(r.text)[:200]}")
                last = f"HTTP {r.status_code}"
                asked = retry_after(r.headers.get("Retry-After"))
                wait = wait if asked is None else asked
            if attempt < self.tries:
                wait = min(wait, self.max_wait)
                self.progress.say(f"neuronpedia: {ref.key}: {last}; try {attempt + 1} of {self.tries} in {wait:.1f} s")
                time.sleep(wait)
        raise RemoteError(f"Neuronpedia did not give {ref.key} after {self.tries} tries ({url}); the last: {last}")


def _first_line(obj: Any) -> str:
    text = str(obj).strip()
    return text.splitlines()[0] if text else type(obj).__name__


def _user_agent() -> str:
    from interp_lab._version import __version__

    return f"interp-lab/{__version__} (+https://github.com/interp-lab/interp-lab)"
