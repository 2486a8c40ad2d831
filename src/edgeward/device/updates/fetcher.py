"""Downloads for the TUF client over mutual TLS, and target downloads that resume.

:class:`MtlsFetcher` is python-tuf's ``FetcherInterface`` over httpx with the
gateway's factory certificate. :func:`download` fetches a target into a
``.part`` file on the data area: after a broken connection (or a power cut) it
asks only for the missing bytes (HTTP ``Range``), never accepts more than the
signed length (endless-data attack) and leaves hash checking to TUF.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from tuf.api import exceptions as tuf_errors
from tuf.ngclient import FetcherInterface

from edgeward.errors import IntegrityError, Unreachable

CHUNK = 1 << 20
RETRIES = 5


class MtlsFetcher(FetcherInterface):
    def __init__(self, context: ssl.SSLContext, timeout: float = 30.0) -> None:
        self.http = httpx.Client(verify=context, timeout=timeout)
        self.last_url = ""  # what a refusal was about (ngclient's errors do not say)

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.last_url = url
        try:
            request = self.http.build_request("GET", url)
            response = self.http.send(request, stream=True)
        except httpx.TransportError as e:
            raise tuf_errors.DownloadError(f"{url}: {type(e).__name__}: {e}") from e
        if response.status_code != 200:
            response.close()
            raise tuf_errors.DownloadHTTPError(f"{url}: HTTP {response.status_code}",
                                               response.status_code)
        return self._chunks(response)

    @staticmethod
    def _chunks(response: httpx.Response) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes(CHUNK)
        except httpx.TransportError as e:
            raise tuf_errors.DownloadError(f"connection broken: {e}") from e
        finally:
            response.close()

    def close(self) -> None:
        self.http.close()


def download(http: httpx.Client, url: str, part: Path, length: int,
             progress: Callable[[int, int], None] | None = None,
             retries: int = RETRIES, pause: float = 1.0) -> Path:
    """Fetch ``url`` into ``part`` (resuming what is there) until it has ``length`` bytes."""
    failures = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        if have > length:
            part.unlink()  # not what is signed: start over
            have = 0
        if have == length:
            return part
        try:
            _append(http, url, part, have, length, progress)
            failures = 0
        except (httpx.TransportError, _Broken) as e:
            failures += 1
            if failures > retries:
                raise Unreachable(f"download of {url} failed {failures} times: {e}") from e
            time.sleep(pause * failures)


class _Broken(Exception):
    pass


def _append(http: httpx.Client, url: str, part: Path, have: int, length: int,
            progress: Callable[[int, int], None] | None) -> None:
    headers = {"range": f"bytes={have}-"} if have else {}
    with http.stream("GET", url, headers=headers) as response:
        if response.status_code == 416:
            part.unlink(missing_ok=True)
            raise _Broken("server refused the range: restarting")
        if response.status_code not in (200, 206):
            raise Unreachable(f"download of {url}: HTTP {response.status_code}")
        if response.status_code == 200 and have:
            have = 0  # the server ignored the range: start over
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW
                     | (0 if have else os.O_TRUNC), 0o600)
        try:
            os.lseek(fd, have, os.SEEK_SET)
            for chunk in response.iter_bytes():  # as received: a break loses nothing
                have += len(chunk)
                if have > length:
                    raise IntegrityError(f"{url} sends more than its signed {length} bytes: "
                                         "refused (endless data)")
                os.write(fd, chunk)
                if progress is not None:
                    progress(have, length)
            os.fsync(fd)
        finally:
            os.close(fd)
        if have < length:
            raise _Broken(f"connection closed after {have} of {length} bytes")
