"""Where the dataset is: a local path as given, or an http(s) URL downloaded once into the cache."""

from __future__ import annotations

import http.client
import logging
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tqdm import tqdm

from tasks.core.errors import ReviewflowError, one_line
from tasks.core.files import atomic_write, remove_stale_temporaries

log = logging.getLogger("reviewflow")

DOWNLOAD_TIMEOUT_S = 60


def is_url(source: str) -> bool:
    """Whether `source` is a URL to download (http or https)."""
    return re.match(r"https?://", source, re.IGNORECASE) is not None


def local_path(source: str) -> Path:
    """The existing local file or folder `source` names; other URL schemes are refused."""
    if re.match(r"[a-z][a-z0-9+.-]*://", source, re.IGNORECASE):
        raise ReviewflowError(f"unsupported dataset URL {source}: only http(s) URLs can be downloaded")
    path = Path(source).expanduser()
    if not path.exists():
        raise ReviewflowError(f"dataset not found: {path}")
    return path


def download(url: str, target: Path) -> Path:
    """Fetch `url` once into `target`; the file appears under its own name only when complete."""
    if target.is_file():
        log.info("using downloaded %s", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent)
    try:
        with atomic_write(target) as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            expected = _content_length(response)
            received = _copy_with_progress(response, out, expected, target.name)
            if expected is not None and received != expected:
                raise ReviewflowError(
                    f"download of {url} stopped early ({received:,} of {expected:,} bytes); run again to retry"
                )
    except urllib.error.HTTPError as exc:
        raise ReviewflowError(f"cannot download {url}: HTTP {exc.code} {one_line(exc.reason)}") from None
    except urllib.error.URLError as exc:
        raise ReviewflowError(f"cannot download {url}: {one_line(exc.reason)}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise ReviewflowError(f"cannot download {url}: {one_line(exc)}") from None
    log.info("downloaded %s to %s", url, target)
    return target


def download_name(url: str) -> str:
    """The last path segment of the URL, safe as a file name."""
    name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    return name if name not in ("", ".", "..") else "download"


def _content_length(response: http.client.HTTPResponse) -> int | None:
    """The announced size, when the server gives a usable one."""
    value = response.headers.get("Content-Length", "")
    return int(value) if value.strip().isdigit() else None


def _copy_with_progress(response: BinaryIO, out: BinaryIO, total: int | None, name: str) -> int:
    """Copy the response body to `out` with a progress bar on stderr; the byte count."""
    received = 0
    with tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"downloading {name}", file=sys.stderr
    ) as bar:
        while chunk := response.read(1 << 20):
            out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    return received
