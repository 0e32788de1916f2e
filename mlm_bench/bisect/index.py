"""Index: a package's published releases between two versions, read from the package index's JSON simple API
(PEP 691; PEP 700's `versions`), so a mirror or private index works as PyPI does.

Final releases only unless pre-releases are asked for; a release whose every file is yanked is left out unless
asked for too (pip does not pick yanked files either).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from bisect import bisect_left
from collections import defaultdict
from typing import Any

from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from mlm_bench.errors import UsageError

PYPI = "https://pypi.org/simple"
ACCEPT = "application/vnd.pypi.simple.v1+json"


def fetch(package: str, index: str = PYPI) -> dict[str, Any]:
    """The index's JSON page of `package`."""
    url = f"{index.rstrip('/')}/{package}/"
    request = urllib.request.Request(url, headers={"Accept": ACCEPT})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as err:
        raise UsageError(f"cannot list {package}'s releases from {url} ({err}): check the index URL and the "
                         "network, or pass --index-url") from err  # fmt: skip


def releases(page: dict[str, Any], prereleases: bool = False, yanked: bool = False) -> list[Version]:
    """The versions the page lists, oldest first, without pre-releases and fully yanked ones unless asked for."""
    files: dict[Version, list[bool]] = defaultdict(list)
    for entry in page.get("files", []):
        version = _file_version(entry["filename"])
        if version is not None:
            files[version].append(bool(entry.get("yanked")))
    listed = {_version(v) for v in page.get("versions", [])} - {None} or set(files)
    return sorted(v for v in listed if (prereleases or not v.is_prerelease)
                  and (yanked or not files.get(v) or not all(files[v])))  # fmt: skip


def listed(found: list[Version], release: str, flag: str) -> Version:
    """`release` as one of the versions the index lists, refused with the nearest ones otherwise."""
    version = _version(release)
    if version is None or version not in found:
        at = bisect_left(found, version) if version is not None else len(found)
        near = ", ".join(str(v) for v in found[max(at - 1, 0) : at + 1])
        raise UsageError(f"{flag} {release} is not a release the index lists (nearest: {near}); pass one of them")
    return version


def between(found: list[Version], good: str, bad: str) -> list[str]:
    """The releases from good to bad, both included, oldest first (good is the older end, as git bisect's old:
    a fix is bisected with the broken release as --good)."""
    older, newer = listed(found, good, "--good"), listed(found, bad, "--bad")
    if older >= newer:
        raise UsageError(f"--good {good} is not older than --bad {bad}: --good is the older release (for a fix, "
                         "the broken one)")  # fmt: skip
    return [str(v) for v in found if older <= v <= newer]


def _file_version(filename: str) -> Version | None:
    """A distribution file's version, or None for a name that is neither a wheel nor an sdist."""
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None
