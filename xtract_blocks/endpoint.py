"""The XtractEndpoint block: one repository to crawl and where its metadata goes."""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, field_validator

from xtract_blocks.credentials import GlobusCredentials
from xtract_blocks.http import FsspecFilesystem, HttpCredentials

#: The built-in habitats; a plugin adds its own through the ``xtract.habitats`` entry point.
BUILTIN_REPO_TYPES = ("local", "globus", "https", "fsspec")
Grouper = Literal["file_is_group", "directory", "related"]


class XtractEndpoint(Block):
    """A file repository (a local directory tree or a Globus collection) and its metadata home.

    Field names follow xtract-sdk's XtractEndpoint so ported scripts keep working.
    """

    _block_type_name = "Xtract Endpoint"
    _block_type_slug = "xtract-endpoint"
    _description = "A repository to crawl and extract metadata from, and where the metadata is written."

    repo_type: str = Field(
        default="local", description="'local' (this machine), 'globus' (a collection), 'https' (web server "
        "directory listings or file lists), 'fsspec' (any fsspec filesystem: s3, gcs, ...), or a habitat a plugin "
        "registers. Case does not matter.", json_schema_extra={"examples": list(BUILTIN_REPO_TYPES)},
    )
    globus_ep_id: str | None = Field(
        default=None, description="Globus collection id holding the data (repo_type 'globus')."
    )
    funcx_ep_id: str | None = Field(
        default=None,
        description="Globus Compute endpoint id that runs the extractors near the data; none means local workers.",
    )
    dirs: list[str] = Field(default_factory=list, description="Directories (or files) to crawl.")
    grouper: Grouper = Field(
        default="file_is_group",
        description="How files become groups: one per file, one per directory, or related files by stem.",
    )
    local_mdata_path: str = Field(
        default="xtract-metadata", description="Directory where group JSON, index.parquet and state are written."
    )
    follow_symlinks: bool = Field(default=False, description="Follow symbolic links while crawling (loop-safe).")
    exclude: list[str] = Field(
        default_factory=list,
        description="Glob patterns of paths the crawl skips ('.git', '__pycache__', '*.tmp'; a pattern with '/' "
        "matches the whole path). The metadata directory is never crawled.",
    )
    credentials: GlobusCredentials | None = Field(
        default=None, description="Globus credentials, needed for repo_type 'globus' and Globus Compute."
    )
    local_ep_id: str | None = Field(
        default=None,
        description="Globus collection exposing this machine's disk: the target of staging and the source of "
        "offload by transfer (repo_type 'globus').",
    )
    local_ep_root: str = Field(
        default="/", description="The local directory that local_ep_id's '/' maps to."
    )
    staging_dir: str | None = Field(
        default=None,
        description="Local directory for staged copies of a globus collection's files (default: under the "
        "metadata directory); copies are deleted after extraction.",
    )
    http: HttpCredentials | None = Field(
        default=None, description="Credentials for repo_type 'https' (bearer token, basic auth, Globus HTTPS)."
    )
    file_lists: list[str] = Field(
        default_factory=list,
        description="repo_type 'https': URLs of text files listing one file URL per line (optionally size, mtime).",
    )
    filesystem: FsspecFilesystem | None = Field(
        default=None, description="repo_type 'fsspec': the protocol and storage options; dirs are its paths."
    )
    search_index_id: str | None = Field(
        default=None, description="Globus Search index to ingest the metadata into (optional)."
    )

    @field_validator("repo_type", mode="before")
    @classmethod
    def _repo_type_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("dirs", "exclude", mode="before")
    @classmethod
    def _one_dir_is_a_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    def identity_digest(self) -> str:
        """A digest of what makes this endpoint's output distinct: which files, where they run, where metadata goes.

        Two endpoints differing in any of these (the compute endpoint and the metadata directory
        included) are two endpoints: their state and offloaded folders stay apart. How the same
        files are crawled and grouped (grouper, exclude, follow_symlinks) is not identity: a rerun
        with another grouper or more excludes replaces that endpoint's metadata rather than adding
        a second copy beside it. Never a digest of a secret.
        """
        fields = {
            "repo_type": self.repo_type, "globus_ep_id": self.globus_ep_id, "funcx_ep_id": self.funcx_ep_id,
            "dirs": self.dirs, "file_lists": self.file_lists,
            "filesystem": self.filesystem.protocol if self.filesystem is not None else None,
            "local_mdata_path": os.path.abspath(os.path.expanduser(self.local_mdata_path)),
        }
        return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    def slug(self) -> str:
        """The endpoint's identity, readable: a saved block's name, else the first dir's last component + a digest.

        It names the endpoint's state in a shared metadata directory, its flow runs, its artifact
        keys and its offloaded folder, so it is artifact-key-safe (lower case, digits, dashes).
        """
        name = getattr(self, "_block_document_name", None)
        if name:
            slug = _key_safe(name)
            if slug:
                return slug[:40]
        first = (self.dirs or self.file_lists or [self.globus_ep_id or self.repo_type])[0]
        base = _key_safe(os.path.basename(first.rstrip("/")))[:28] or self.repo_type
        return f"{base}-{self.identity_digest()[:10]}"


def _key_safe(text: str) -> str:
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]+", "-", text.lower())).strip("-")
