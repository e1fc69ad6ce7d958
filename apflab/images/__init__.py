"""Guest images apflab builds from Debian's packages: firmware, agents, kernels, initramfs.

Each recipe registers itself in :data:`RECIPES`; ``apflab images [NAME ...]`` builds
what is missing or stale into the cache (``$APFLAB_CACHE``, else
``$XDG_CACHE_HOME/apflab``, else ``~/.cache/apflab``) and shows progress. Recipes fetch
Debian packages only through :mod:`apflab.images.apt`, an APT configuration of their
own: the machine's apt setup and its dpkg architectures are never touched.
"""

from __future__ import annotations

import abc
import os
import sys
from collections.abc import Callable
from pathlib import Path

Progress = Callable[[str], None]


class ImageError(Exception):
    """A recipe could not build its image; the message says what to do."""


def cache_dir() -> Path:
    explicit = os.environ.get("APFLAB_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "apflab"


def print_progress(message: str) -> None:
    print(f"apflab images: {message}", file=sys.stderr, flush=True)


class Recipe(abc.ABC):
    """One image: where it goes, whether it is up to date, how to build it."""

    name: str
    description: str

    @abc.abstractmethod
    def outputs(self, cache: Path) -> list[Path]:
        """The files this recipe produces (all must exist for the image to count as built)."""

    def fresh(self, cache: Path) -> bool:
        return all(p.exists() for p in self.outputs(cache))

    @abc.abstractmethod
    def build(self, cache: Path, progress: Progress) -> None:
        """Build into ``cache``; raise ImageError with a remedy on failure."""


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    RECIPES[recipe.name] = recipe
    return recipe


def _load_recipes() -> None:
    """Import the modules that define recipes (each registers on import)."""
    import importlib

    for module in ("apflab.images.tfa", "apflab.images.agent", "apflab.images.linux", "apflab.images.kvm"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def ensure(
    names: list[str] | None = None,
    *,
    force: bool = False,
    progress: Progress = print_progress,
    cache: Path | None = None,
) -> dict[str, list[Path]]:
    """Build the named images (all when None) unless fresh; return their output files."""
    _load_recipes()
    cache = cache or cache_dir()
    chosen = names or list(RECIPES)
    unknown = [n for n in chosen if n not in RECIPES]
    if unknown:
        raise ImageError(f"unknown image(s) {', '.join(unknown)}; known: {', '.join(sorted(RECIPES)) or 'none'}")
    built: dict[str, list[Path]] = {}
    for name in chosen:
        recipe = RECIPES[name]
        if force or not recipe.fresh(cache):
            progress(f"{name}: building ({recipe.description})")
            recipe.build(cache, progress)
            if not recipe.fresh(cache):
                missing = [str(p) for p in recipe.outputs(cache) if not p.exists()]
                raise ImageError(f"{name}: build finished but {', '.join(missing)} is missing")
            progress(f"{name}: done")
        else:
            progress(f"{name}: up to date in {cache}")
        built[name] = recipe.outputs(cache)
    return built
