"""``publish-hf-artifact`` and ``pull``: an artifact interp-lab wrote (a report, an activation store, an SAE
checkpoint, a study folder) to and from the Hugging Face Hub, with ``huggingface_hub`` (the ``publish`` extra).

Publishing reads the folder's manifest (``api/artifacts.py``), checks its files against the hashes it records,
writes a card from it (``report/hub_card.py``) and a ``SHA256SUMS`` of every file, and commits all of them in
one commit (``create_repo(exist_ok=True)`` + ``create_commit``: the card is added beside the folder's files
without writing into the folder). Pulling downloads a repository at one commit (``snapshot_download``) into a
temporary folder, checks every file against the manifest's hashes and ``SHA256SUMS``, and only then moves it
into place: the cache (``$INTERP_LAB_CACHE/hub/<type>s/<repo>/<commit>``) or ``--out``. The token is
huggingface_hub's own (``HF_TOKEN`` or ``hf auth login``); it is never printed.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from interp_lab._version import __version__
from interp_lab.api.registry import command
from interp_lab.errors import InputError, UsageError
from interp_lab.schemas.command import Progress, option

GROUP = "utilities"
README = "README.md"
DEFAULT_ENDPOINT = "https://huggingface.co"
RepoType = Literal["dataset", "model"]
ENDPOINT_HELP = "The Hub's URL (default $HF_ENDPOINT, else https://huggingface.co)."
INSTALL = 'publishing and pulling need huggingface_hub: pip install "interp-lab[publish]"'


@dataclass
class HubFile:
    """A file of an artifact on the Hub: its path in the repository, size and sha256."""

    path: str
    bytes: int
    sha256: str
    generated: bool = False  # written by publish-hf-artifact (the card, SHA256SUMS), not read from the folder


@dataclass
class PublishResult:
    """What ``publish-hf-artifact`` uploaded (or, with ``dry_run``, would upload)."""

    kind: str  # report, store, sae, study
    path: Path  # the folder
    repo_id: str
    repo_type: str
    revision: str | None  # the branch committed to (None: the default branch)
    files: list[HubFile]  # the folder's files, then the generated card and SHA256SUMS
    card: str  # README.md
    dry_run: bool
    skipped: list[str] = field(default_factory=list)  # hidden files left out (.git, temporary files)
    url: str | None = None  # the repository's page
    commit: str | None = None  # the commit made
    paths: dict[str, Path] = field(default_factory=dict)  # nothing is written locally


@dataclass
class HubPullResult:
    """What ``pull`` downloaded and checked."""

    repo_id: str
    repo_type: str
    commit: str  # the repository's commit that was downloaded
    kind: str  # report, store, sae, study
    path: Path  # where it is
    model: str | None
    revision: str | None  # the model's revision, as the manifest records it
    files: int
    checked: int  # files whose sha256 matched the manifest's or SHA256SUMS
    cached: bool  # already in the cache (checked again, not downloaded)
    parts: list[tuple[str, str]] = field(default_factory=list)  # a study's (folder, kind)
    paths: dict[str, Path] = field(default_factory=dict)


@dataclass(kw_only=True)
class PublishOptions:
    repo_id: str = option(help="The Hub repository, OWNER/NAME (created if missing).")
    path: str = option(help="The folder: a report, an activation store, an SAE checkpoint or a study folder.")
    repo_type: RepoType = option("dataset", "Repository type.")
    tags: list[str] = option(default_factory=list, help="A tag for the card (repeat the flag for more); interp-lab "
                             "and the artifact's kind are always there.", flag="--tag")
    revision: str | None = option(None, "Branch to commit to, created from the default branch if missing "
                                  "(default: the default branch).", aliases=("--branch",))
    private: bool = option(False, "Create the repository private (an existing one keeps its visibility).")
    license: str | None = option(None, "License id for the card's metadata (apache-2.0, cc-by-4.0 ...); "
                                 "not stated when omitted.")
    commit_message: str | None = option(None, "The commit's message (default: what is published, from what).")
    endpoint: str | None = option(None, ENDPOINT_HELP)
    dry_run: bool = option(False, "Print the files (path, size, sha256) and the card; upload nothing, "
                           "reach no network.")


@command("publish-hf-artifact", options=PublishOptions, result=PublishResult, group=GROUP, json=True, log=True,
         help="Publish a report, activation store, SAE checkpoint or study folder to the Hugging Face Hub, "
              "with a card written from its manifest.")
def publish_hf_artifact(o: PublishOptions, progress: Progress) -> PublishResult:
    from interp_lab.api.artifacts import check, detect, files, hidden_files
    from interp_lab.report.hub_card import CHECKSUMS, Target, card

    _check_repo_id(o.repo_id, "--repo-id")
    root = Path(o.path)
    art = detect(root)
    upload = [(rel, p) for rel, p in files(root) if rel not in (README, CHECKSUMS)]
    digests = _hash(upload, progress)
    check(root, art.hashes, digests)
    entries = [HubFile(rel, p.stat().st_size, digests[rel]) for rel, p in upload]
    own = _own_readme(root / README)
    to = Target(repo_id=o.repo_id, repo_type=o.repo_type, revision=o.revision, tags=tuple(o.tags),
                license=o.license, tool_version=__version__)
    text = card(art, to, [(e.path, e.bytes, e.sha256) for e in entries], own).encode()
    sums = "".join(f"{e.sha256}  {e.path}\n" for e in entries).encode()
    generated = {README: text, CHECKSUMS: sums}
    entries += [HubFile(name, len(data), _sha(data), generated=True) for name, data in generated.items()]
    res = PublishResult(kind=art.kind, path=root, repo_id=o.repo_id, repo_type=o.repo_type, revision=o.revision,
                        files=entries, card=text.decode(), dry_run=o.dry_run, skipped=hidden_files(root))
    if o.dry_run:
        return res
    hub, api, endpoint = _client(o.endpoint)
    what = f"{o.repo_type} {o.repo_id}"
    if hub.get_token() is None:
        raise UsageError("no Hugging Face token: set HF_TOKEN to a token with write access, or run `hf auth login`")
    ops = [hub.CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(p)) for rel, p in upload]
    ops += [hub.CommitOperationAdd(path_in_repo=name, path_or_fileobj=data) for name, data in generated.items()]
    message = o.commit_message or f"Publish interp-lab {art.kind} {root.name}" + (f" ({art.model})" if art.model else "")
    progress("uploading", 0, None, note=f"{len(ops)} files to {endpoint}")
    with _hub_errors(what, endpoint, o.revision), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "a data file in a model repository": the user chose it
        url = api.create_repo(o.repo_id, repo_type=o.repo_type, private=True if o.private else None, exist_ok=True)
        if o.revision:
            api.create_branch(o.repo_id, branch=o.revision, repo_type=o.repo_type, exist_ok=True)
        info = api.create_commit(o.repo_id, operations=ops, commit_message=message, repo_type=o.repo_type,
                                 revision=o.revision)
    res.url, res.commit = str(url), info.oid
    return res


@dataclass(kw_only=True)
class PullOptions:
    repo_id: str = option(help="The Hub repository, OWNER/NAME.", argument=True)
    repo_type: RepoType = option("dataset", "Repository type.")
    revision: str | None = option(None, "Branch, tag or commit (default: the default branch).")
    out: str | None = option(None, "Folder to download into, new or empty (default: the interp-lab cache, "
                             "$INTERP_LAB_CACHE/hub/<type>s/OWNER/NAME/<commit>).")
    endpoint: str | None = option(None, ENDPOINT_HELP)


@command("pull", options=PullOptions, result=HubPullResult, group=GROUP, json=True, positional=("repo_id",),
         help="Download a report, activation store, SAE or study from the Hugging Face Hub and check its hashes.")
def pull(o: PullOptions, progress: Progress) -> HubPullResult:
    from interp_lab.io.atomic import atomic_dir
    from interp_lab.io.cache import cache_dir

    hub, api, endpoint = _client(o.endpoint)
    _check_repo_id(o.repo_id, "REPO_ID")
    what = f"{o.repo_type} {o.repo_id}"
    with _hub_errors(what, endpoint, o.revision):
        commit = api.repo_info(o.repo_id, repo_type=o.repo_type, revision=o.revision).sha
    if not commit:
        raise InputError(what, f"{endpoint} named no commit for it")
    target = Path(o.out) if o.out else cache_dir() / "hub" / f"{o.repo_type}s" / o.repo_id / commit
    if target.exists() and not target.is_dir():
        raise UsageError(f"--out {target}: a file, not a folder")
    cached = target.is_dir() and any(target.iterdir())
    if cached and o.out:
        raise UsageError(f"--out {target}: exists and is not empty (give a new or empty folder)")
    if cached:
        progress.say(f"{what} at {commit[:12]} is in the cache: checking it")
        art, n, checked = _verify(target, target, progress)
    else:
        with atomic_dir(target) as tmp:
            progress("downloading", 0, None, note=f"{what} at {commit[:12]}")
            with _hub_errors(what, endpoint, o.revision), _quiet(hub):
                hub.snapshot_download(o.repo_id, repo_type=o.repo_type, revision=commit, local_dir=tmp,
                                      endpoint=endpoint, library_name="interp-lab", library_version=__version__)
            import shutil

            shutil.rmtree(tmp / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping of the download
            art, n, checked = _verify(tmp, o.repo_id, progress)
    return HubPullResult(repo_id=o.repo_id, repo_type=o.repo_type, commit=commit, kind=art.kind, path=target,
                         model=art.model, revision=art.revision, files=n, checked=checked, cached=cached,
                         parts=[(rel, a.kind) for rel, a in art.parts], paths={"artifact": target})


# ------------------------------------------------------------------------------------------------ helpers


def _check_repo_id(repo_id: str, flag: str) -> None:
    """The Hub's rules for a repository id (huggingface_hub's check, when it is installed)."""
    try:
        from huggingface_hub.utils import HFValidationError, validate_repo_id
    except ImportError:
        return
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise UsageError(f"{flag} {repo_id!r}: {str(exc).splitlines()[0]}") from None


def _own_readme(path: Path) -> str:
    """The folder's README.md, kept at the end of the card; "" when there is none, or when it is a card
    interp-lab wrote (a pulled artifact published again gets a new card, not two)."""
    if not path.is_file():
        return ""
    import yaml

    text = path.read_text(encoding="utf-8", errors="replace")
    if text.startswith("---\n"):
        try:
            meta = yaml.safe_load(text.split("---\n", 2)[1])
        except yaml.YAMLError:
            meta = None
        if isinstance(meta, dict) and meta.get("library_name") == "interp-lab":
            return ""
    return text


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _hash(listing: list[tuple[str, Path]], progress: Progress) -> dict[str, str]:
    from interp_lab.io.hashing import sha256_file

    out = {}
    for i, (rel, p) in enumerate(listing):
        progress("hashing files", i, len(listing))
        out[rel] = sha256_file(p)
    progress("hashing files", len(listing), len(listing))
    return out


def _verify(root: Path, shown: str | os.PathLike, progress: Progress):
    """(the artifact in ``root``, its files, how many were checked): every file against the manifest's sha256
    and SHA256SUMS; InputError naming the first that differs."""
    from interp_lab.api.artifacts import check, detect, files
    from interp_lab.report.hub_card import CHECKSUMS

    art = detect(root, shown)
    listing = files(root)
    digests = _hash(listing, progress)
    sums = _checksums(root / CHECKSUMS, Path(shown) / CHECKSUMS) if CHECKSUMS in digests else {}
    check(root, art.hashes, digests, shown)
    check(root, sums, digests, shown)
    return art, len(listing), len(set(art.hashes) | set(sums))


def _checksums(path: Path, shown: Path) -> dict[str, tuple[str, str]]:
    """SHA256SUMS (``<sha256>  <file>`` per line, as sha256sum writes it): file -> (sha256, where)."""
    import re

    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        m = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line)
        if not m:
            raise InputError(shown.as_posix(), "expected '<sha256>  <file>'", line=n)
        out[m.group(2)] = (m.group(1), f"{path.name} line {n}")
    return out


def _client(endpoint: str | None):
    """(the huggingface_hub module, an HfApi at the endpoint, the endpoint)."""
    try:
        import huggingface_hub as hub
    except ImportError:
        raise UsageError(INSTALL) from None
    url = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    return hub, hub.HfApi(endpoint=url, library_name="interp-lab", library_version=__version__), url


@contextlib.contextmanager
def _quiet(hub) -> Iterator[None]:
    """huggingface_hub's own progress bars off (the command shows its stages)."""
    was = hub.utils.are_progress_bars_disabled()
    hub.utils.disable_progress_bars()
    try:
        yield
    finally:
        if not was:
            hub.utils.enable_progress_bars()


@contextlib.contextmanager
def _hub_errors(what: str, endpoint: str, revision: str | None) -> Iterator[None]:
    """huggingface_hub's errors as one line naming the repository (the token never in it)."""
    from huggingface_hub import errors
    from huggingface_hub.utils import OfflineModeIsEnabled, httpx

    try:
        yield
    except errors.RepositoryNotFoundError:
        raise InputError(what, f"not found at {endpoint} (a private repository needs HF_TOKEN set to a token "
                               "that can read it)") from None
    except errors.RevisionNotFoundError:
        raise InputError(what, f"revision {revision!r} not found at {endpoint}") from None
    except errors.GatedRepoError:
        raise InputError(what, "gated: accept its conditions on the Hub and set HF_TOKEN") from None
    except errors.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise InputError(what, f"the Hub refused the request (HTTP {status}): HF_TOKEN is missing, wrong or "
                                   "cannot write to it") from None
        said = (exc.server_message or "").strip().splitlines()
        raise InputError(what, f"HTTP {status} from {endpoint}" + (f": {said[0]}" if said else "")) from None
    except OfflineModeIsEnabled:
        raise InputError(what, "HF_HUB_OFFLINE is set: the Hub is not reached") from None
    except errors.LocalEntryNotFoundError as exc:  # snapshot_download's word for a Hub it could not reach
        cause = exc.__cause__ or exc
        raise InputError(what, f"cannot reach {endpoint} ({type(cause).__name__})") from None
    except httpx.HTTPError as exc:
        raise InputError(what, f"cannot reach {endpoint} ({type(exc).__name__}: {exc})") from None
