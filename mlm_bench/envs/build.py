"""Environments of other version sets for `mlm-bench upgrade`: a version set resolved with uv, then built fresh in
a cache keyed by exactly what it holds, and checked to hold it and nothing else.

A set is never made by installing one version over another: a package the old version pulled in stays behind
(measured: `kernels` 0.19.1, left by transformers 5.25.0 when 5.0.0 was installed over it, broke `import
transformers`). torch alone is installed by pip, without its dependencies, as the user installed it (`torch==` the
running version, local part included, which pip finds on the user's index or, here, as the local CPU wheel; or any
pip arguments given); uv then installs every other pin, torch's requirements among them.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from filelock import FileLock, Timeout
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from mlm_bench.envs.lock import WITHOUT_TORCH, pins, step, uv_binary
from mlm_bench.errors import BuildError, UsageError

DONE = "mlm-bench-env.json"  # written last: a folder without it is half-built and is built again
# What an environment with the checkout must import before it counts as built.
IMPORTS = "import torch, transformers, datasets, tokenizers, accelerate, mlm_bench"
# Never pinned with the rest: torch comes first by pip, and these are the installer's own.
NOT_PINNED = {"torch", "pip", "setuptools", "wheel", "mlm-bench"}


@dataclass(frozen=True)
class VersionSet:
    """Every package of one side by name and exact version, with the torch requirement pip installs first (None:
    no torch, for a set that needs none)."""

    pins: tuple[tuple[str, str], ...]
    torch: str | None

    @classmethod
    def of(cls, pins: dict[str, str], torch: str | None) -> VersionSet:
        return cls(tuple(sorted((canonicalize_name(n), v) for n, v in pins.items() if canonicalize_name(n) not in
                                NOT_PINNED)), torch)  # fmt: skip

    def as_dict(self) -> dict[str, str]:
        return dict(self.pins)

    def key(self, root: Path | None = None) -> str:
        """The cache folder's name: a hash of the interpreter, torch, every pin and the checkout installed with them
        (its path and its pyproject, whose extras it installs)."""
        checkout = [str(root), hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()] if root else None
        text = json.dumps([platform.python_version(), sys.platform, self.torch, self.pins, checkout])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def current() -> VersionSet:
    """The running environment's packages, frozen (the base an upgrade is measured against): each by the first
    distribution of its name on the path, as import finds it; refused where a version cannot say what is installed."""
    if sys.prefix == sys.base_prefix:
        raise UsageError("this Python is not a virtual environment, so its packages are the system's: run from a "
                         "venv, or pass --base-lock FILE")  # fmt: skip
    pins: dict[str, str] = {}
    unpinnable = []
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"] or "")
        if not name or name in pins or name in NOT_PINNED:
            continue
        pins[name] = dist.version
        if dist.read_text("direct_url.json"):  # installed from a path or URL: no index serves that version
            unpinnable.append(name)
    if unpinnable:
        raise UsageError(f"installed from a path or URL, which no version pin can rebuild: {', '.join(unpinnable)}: "
                         "install them from an index, or pass --base-lock FILE")  # fmt: skip
    return VersionSet.of(pins, f"torch=={metadata.version('torch')}")


def from_lock(path: Path, torch: str | None) -> VersionSet:
    """A lock file's pins (locks/*.txt: every package but torch) with the given torch."""
    try:
        return VersionSet.of(pins(path), torch)
    except OSError as err:
        raise UsageError(f"cannot read lock {path} ({err.strerror}): pass an existing file as --base-lock") from err


def frozen_base(base_lock: Path | None, torch: str | None) -> VersionSet:
    """The base every verb that builds environments starts from: the lock's pins or this environment frozen, with
    the given torch (default: torch== the running version)."""
    torch = torch or f"torch=={metadata.version('torch')}"
    frozen = from_lock(base_lock, torch) if base_lock else current()
    return VersionSet(frozen.pins, torch)


def parse_spec(words: list[str]) -> list[Requirement]:
    """The packages an upgrade asks for, each `name==version` (or any requirement uv takes), names unique."""
    found = []
    for word in words:
        try:
            found.append(Requirement(word))
        except InvalidRequirement as err:
            raise UsageError(
                f"cannot read {word!r} as a package spec ({err}): write e.g. transformers==5.25.0"
            ) from err
    names = [canonicalize_name(r.name) for r in found]
    if len(set(names)) != len(names):
        raise UsageError(f"a package is named twice in {' '.join(words)}: name each once")
    if "torch" in names:
        raise UsageError("torch is installed by pip as you install it, not resolved with the rest: pass --torch "
                         "'torch==X' (any pip arguments) instead")  # fmt: skip
    kept = sorted(set(names) & NOT_PINNED)
    if kept:
        raise UsageError(f"{', '.join(kept)} cannot be upgraded here (the installer's own, or this checkout)")
    return found


def resolve(base: VersionSet, spec: list[Requirement], root: Path | None, prune: bool = False) -> VersionSet:
    """The base's pins with `spec` applied, and what the checkout at `root` needs (pyproject with its test extra):
    uv resolves all of it, preferring every base pin it can keep, so only what the spec or the checkout forces
    moves. Both sides of an upgrade are resolved so (the base with no spec), and so are made alike. With `prune`, a
    base package stays only where something still needs it: bisect and history go back to releases older than some
    of the base's packages (kernels 0.19.1, which 5.25.0 pulls in, breaks importing BERT on 5.4.0)."""
    asked = {canonicalize_name(r.name): r for r in spec}
    kept = {name: version for name, version in base.pins if name not in asked}
    wanted = [*(name for name in kept if not prune or name in _torch_needs()), *(str(r) for r in asked.values())]
    checkout = [str(root / "pyproject.toml"), "--extra", "test"] if root else []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "wanted.txt").write_text("\n".join(wanted) + "\n", encoding="utf-8")
        (folder / "overrides.txt").write_text(WITHOUT_TORCH, encoding="utf-8")
        # uv keeps an existing output file's pins where it can: the base's versions are its preferences.
        out = folder / "resolved.txt"
        out.write_text("".join(f"{name}=={version}\n" for name, version in kept.items()), encoding="utf-8")
        command = [uv_binary(), "pip", "compile", str(folder / "wanted.txt"), *checkout, "--override",
                   str(folder / "overrides.txt"), "--python", sys.executable, "--no-header", "--no-annotate",
                   "--quiet", "--output-file", str(out), *(f"--upgrade-package={name}" for name in asked)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, cwd=root)
        if done.returncode:
            asked_for = " ".join(map(str, spec)) or "the base"
            raise BuildError(f"cannot resolve {asked_for} with the base's packages: {conflict(done.stderr)}")
        return from_lock(out, base.torch)


def _torch_needs() -> set[str]:
    """What the running torch requires on this platform (pip installs it without them; they are resolved with the
    rest, so pruning keeps them)."""
    needs = [Requirement(text) for text in metadata.requires("torch") or []]
    return {canonicalize_name(r.name) for r in needs if r.marker is None or r.marker.evaluate({"extra": ""})}


def conflict(stderr: str) -> str:
    """uv's reason a resolution failed, in one line: the first clause of its cause ("Because A depends on B and
    you require C"), else its last words."""
    text = " ".join(stderr.split())
    found = re.search(r"(?:cause:|╰─▶) (.+?)(?:, we can conclude| And because| hint:|$)", text)
    return (found.group(1) if found else text[-300:]).strip()


def build(versions: VersionSet, root: Path | None, cache: Path, say: Callable[[str], None] = print) -> Path:
    """The python of an environment holding exactly `versions` and the checkout at `root` (editable, with its test
    extra; None: no checkout): the cached one, or one built now; a failed build leaves nothing in the cache."""
    key = versions.key(root)
    folder = cache / key
    cache.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(cache / f"{key}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say(f"environment {folder}: another process is building it; waiting")
        lock.acquire()
    try:
        if (folder / DONE).is_file():
            say(f"environment {folder}: cached")
            return folder / "bin" / "python"
        shutil.rmtree(folder, ignore_errors=True)  # a build a kill cut short
        try:
            _install(versions, root, folder, say)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    finally:
        lock.release()
    return folder / "bin" / "python"


def _install(versions: VersionSet, root: Path | None, folder: Path, say: Callable[[str], None]) -> None:
    """Build the environment in `folder`; mark it done once it holds `versions` and nothing else, and imports."""
    python = folder / "bin" / "python"
    say(f"environment {folder}: creating" + (f", {versions.torch} by pip" if versions.torch else ""))
    # pip is only there to install torch (uv installs the rest): a set without torch skips its ~3 s of seeding.
    seed = () if versions.torch else ("--without-pip",)
    step([sys.executable, "-m", "venv", *seed, str(folder)], f"creating {folder}", BuildError)
    if versions.torch:  # its dependencies come with the pins, at the versions they were verified with
        step([str(python), "-m", "pip", "install", "-q", "--no-deps", *shlex.split(versions.torch)],
             f"installing {versions.torch}", BuildError)  # fmt: skip
    pinned = folder / "pins.txt"
    pinned.write_text("".join(f"{name}=={version}\n" for name, version in versions.pins), encoding="utf-8")
    say(f"environment {folder}: installing {len(versions.pins)} pinned packages by uv")
    checkout = ("-e", f"{root}[test]") if root else ()
    # Bytecode compiled as pip does, so the suite's first run here is timed as in a pip-built environment.
    step([uv_binary(), "pip", "install", "--quiet", "--compile-bytecode", "--python", str(python), "-r", str(pinned),
          *checkout], f"installing {pinned}", BuildError)  # fmt: skip
    _check_exact(versions, python, folder)
    if root:
        step([str(python), "-c", IMPORTS], f"importing the libraries in {folder}", BuildError)
    (folder / DONE).write_text(json.dumps({"torch": versions.torch, "pins": dict(versions.pins)}), encoding="utf-8")
    # An index that sends no cache headers makes uv keep a new build of every sdist per environment (measured here:
    # 55 GB of snownlp and jieba builds after a day of bisect and history runs); pruning drops the unreferenced ones.
    step([uv_binary(), "cache", "prune", "--quiet"], "pruning uv's cache", BuildError)


def _check_exact(versions: VersionSet, python: Path, folder: Path) -> None:
    """Refuse an environment that lacks a pin, holds another version, or holds a package nothing asked for."""
    held = installed(python)
    wrong = [f"{n} pinned {v}, installed {held.get(n, 'none')}" for n, v in versions.pins if held.get(n) != v]
    stray = sorted(set(held) - set(versions.as_dict()) - NOT_PINNED)
    if wrong or stray:
        extra = [f"{n} {held[n]} not pinned" for n in stray]
        raise BuildError(f"the environment built in {folder} does not hold its pins: {', '.join(wrong + extra)}")


def installed(python: Path) -> dict[str, str]:
    """Every package installed in the environment of `python`, by normalized name."""
    code = ("import importlib.metadata as m, json; "
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")  # fmt: skip
    found = json.loads(step([str(python), "-c", code], "reading the installed packages", BuildError))
    return {canonicalize_name(name): version for name, version in found.items() if name}
